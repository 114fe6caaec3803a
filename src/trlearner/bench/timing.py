"""How the benchmarks time a function: :class:`torch.utils.benchmark.Timer`.

- :func:`function_timer` is a ``Timer`` of ``fn()`` at this process's thread count (``Timer``
  would otherwise set 1 thread while it times) and with the plain clock unless told: the suite's
  cases run on the CPU, where ``Timer``'s default clock would synchronise, and so initialise,
  CUDA on a machine with a GPU. A GPU benchmark passes ``clock=None`` for that default.
- :func:`sample` is one timing sample: ``Timer.blocked_autorange``, which first runs the
  function until a block of calls outlasts the clock's overhead 10,000-fold (that run is also a
  warm-up: after another case ran, the first call is slower), then times blocks of that size
  for at least ``min_run_time`` seconds. The sample is the median time per call over those
  blocks.

As with :mod:`timeit`, the garbage collector is off while a block runs.

Example::

    >>> t = function_timer(lambda: sum(range(1000)))
    >>> seconds, calls = sample(t, 0.01)
    >>> 0 < seconds < 0.01 and calls >= 1
    True
"""

from __future__ import annotations

import logging
import timeit

import torch


def function_timer(fn, clock=timeit.default_timer, threads: int | None = None):
    """A :class:`torch.utils.benchmark.Timer` of ``fn()`` (see the module).

    Arguments:
        fn: the function to time, called without arguments.
        clock: the timer's clock; ``None`` for ``Timer``'s default (synchronises an accelerator).
        threads: torch threads while timing (default: ``torch.get_num_threads()`` now).
    """
    Timer = _timer_class()
    kw = {} if clock is None else {"timer": clock}
    return Timer("fn()", globals={"fn": fn}, num_threads=threads or torch.get_num_threads(), **kw)


def _timer_class():
    # importing torch.utils.benchmark imports torch.utils.cpp_extension, which logs "No CUDA
    # runtime is found, using CUDA_HOME=..." on a machine with nvcc and no GPU: nothing to do
    # with timing Python calls, so not shown
    cpp_extension = logging.getLogger("torch.utils.cpp_extension")
    level = cpp_extension.level
    cpp_extension.setLevel(logging.ERROR)
    try:
        from torch.utils.benchmark import Timer
    finally:
        cpp_extension.setLevel(level)
    return Timer


def sample(timer, min_run_time: float) -> tuple[float, int]:
    """One sample of ``timer`` (:meth:`~torch.utils.benchmark.Timer.blocked_autorange`):
    (median seconds per call, calls timed, the warm-up aside)."""
    m = timer.blocked_autorange(min_run_time=min_run_time)
    return m.median, m.number_per_run * len(m.times)
