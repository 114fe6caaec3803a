"""The package's inter-process locks (the GPU claim, one fetch of a dataset at a time, the run
folder) are :class:`filelock.FileLock` objects made by :func:`process_lock`, with the options
all three need:

- a kernel ``flock`` only (``fallback_to_soft=False``): the kernel drops it when its process
  dies, even on SIGKILL, so a killed job never leaves a lock behind. filelock's soft fallback
  (a marker file, on filesystems without ``flock``) would survive a SIGKILL; without it such a
  filesystem raises an ``OSError`` the caller turns into one line;
- one hold per process, not per thread (``thread_local=False``);
- the lock file names its holder: ``on_acquired`` receives the locked descriptor and writes it
  (:func:`write_holder`). filelock opens an existing lock file without truncating it (the
  holder's record stays readable by a waiter) and with ``O_NOFOLLOW`` (a link planted in its
  place is refused with ``ELOOP``).

filelock is imported when a lock is made, not with this module: the commands that take no lock
start without it.

Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x.lock")
    >>> with process_lock(path, lambda fd: write_holder(fd, "me")):
    ...     open(path).read()
    'me'
"""

from __future__ import annotations

import os


def process_lock(path: str | os.PathLike, on_acquired=None):
    """A :class:`filelock.FileLock` on ``path`` (see the module), not yet acquired.

    Arguments:
        path: the lock file (created with mode 0666 minus the umask; its folder too).
        on_acquired: called with the lock file's descriptor once the lock is taken (not on a
            re-entrant acquire); it may read and rewrite the file. Raising releases the lock.
    """
    from filelock import FileLock

    return FileLock(path, thread_local=False, fallback_to_soft=False, on_acquired=on_acquired)


def write_holder(fd: int, text: str) -> None:
    """Replace the content of the lock file open as ``fd`` by ``text`` (who holds it)."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, text.encode(), 0)
