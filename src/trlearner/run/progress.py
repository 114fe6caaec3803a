"""Progress of a training loop that reaches a log: a tqdm bar on a terminal, plain lines elsewhere.

A run whose stderr is a file or a pipe (a pipeline job, ``> log 2>&1``, ``| tee``) shows no bar
(tqdm's ``\\r`` updates do not belong in a log); instead, at most every :data:`INTERVAL_S`
seconds of wall time, one plain line -- iteration, it/s, elapsed, ETA -- is logged at INFO (the
run's ``log.txt`` and, under the ``trlearner`` command and the pipeline's jobs, stderr; ``-q``
keeps it in ``log.txt`` only). With the bar on a terminal the same line goes to ``log.txt``
only. ``progress=False`` (``--no-progress``) turns the bar off, not the lines.

Example (a fake clock that advances 20 s per reading)::

    >>> import itertools
    >>> ticks = itertools.count(0, 20)
    >>> lines = []
    >>> for it in Progress(0, 4, "maml/baseline", lambda msg, level: lines.append(msg),
    ...                    progress=False, clock=lambda: next(ticks)):
    ...     pass
    >>> lines[0]
    'maml/baseline: iteration 2/4 (50%), 0.05 it/s, elapsed 0:00:40, ETA 0:00:40'
"""

from __future__ import annotations

import logging
import sys
import time

INTERVAL_S = 30.0  # at most one plain progress line per this many seconds of wall time


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


class Progress:
    """Iterate over ``range(start, total)`` with progress (see the module doc).

    Arguments:
        start, total: the first iteration (a resumed run's) and the number of iterations.
        desc: what runs, e.g. ``maml/trlearner``. log: ``log(msg, level)``, the run's log
            (``trlearner.run.session.RunLog``). progress: show a bar when stderr is a terminal.
        interval: seconds between plain lines (default :data:`INTERVAL_S`, read at each call).
        clock: seconds, monotonic (a fake one in tests).
    """

    def __init__(self, start: int, total: int, desc: str, log, progress: bool = True,
                 interval: float | None = None, clock=time.monotonic):
        self.start, self.total, self.desc, self.log, self.clock = start, total, desc, log, clock
        self.interval = INTERVAL_S if interval is None else interval
        self.bar = None
        if progress and _stderr_is_terminal():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=start, desc=desc, mininterval=1.0, unit="it", dynamic_ncols=True)
        self.postfix: dict = {}

    def set_postfix(self, values: dict) -> None:
        """Values shown with the bar and appended to the plain line (e.g. the loss)."""
        self.postfix = dict(values)
        if self.bar is not None:
            self.bar.set_postfix(values, refresh=False)

    def line(self, done: int, elapsed: float) -> str:
        rate = (done - self.start) / elapsed if elapsed > 0 else 0.0
        eta = _hms((self.total - done) / rate) if rate > 0 else "?"
        extra = "".join(f", {k}={v}" for k, v in self.postfix.items())
        return (f"{self.desc}: iteration {done}/{self.total} ({100 * done // max(self.total, 1)}%), "
                f"{rate:.2f} it/s, elapsed {_hms(elapsed)}, ETA {eta}{extra}")

    def __iter__(self):
        t0 = last = self.clock()
        try:
            for it in range(self.start, self.total):
                yield it
                if self.bar is not None:
                    self.bar.update(1)
                now = self.clock()
                if now - last >= self.interval and it + 1 < self.total:
                    last = now
                    # with a bar on the terminal, the line goes to log.txt only (DEBUG)
                    self.log(self.line(it + 1, now - t0), logging.DEBUG if self.bar is not None else logging.INFO)
        finally:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
