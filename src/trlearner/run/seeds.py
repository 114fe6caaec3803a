"""The range of a run's seed: ``0 <= seed < 2**31`` (:data:`SEED_LIMIT`).

Training hashes the seed with its purpose into every generator's seed (``stable_key(...) %
2**63``), so any integer trains; the readers of the results do not take any integer: the report
reads the seeds into a pandas ``Int64`` column (``OverflowError`` from 2**63, after the run has
trained), ``torch.Generator.manual_seed`` takes less than 2**64, and numpy's default integer is
32-bit on some platforms. The range fits them all and is checked where a seed enters:
``trlearner train --seed``, ``python -m trlearner.run.stacked --seeds`` and the config schema
(``seeds`` items, ``maximum: 2147483647``; ``tests/test_faults_folder.py`` checks they agree).

Example::

    >>> seed_arg("7")
    7
    >>> seed_arg("2147483648")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be 0 <= seed < 2**31 (2147483648), got 2147483648
"""

from __future__ import annotations

import argparse

SEED_LIMIT = 2**31


def check_seed(seed) -> None:
    """Refuse a seed outside ``0 <= seed < SEED_LIMIT`` (or not an integer).

    Raises:
        ValueError: naming the seed and the range.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"seed {seed!r}: allowed: an integer, 0 <= seed < 2**31 ({SEED_LIMIT})")


def seed_arg(text: str) -> int:
    """``argparse`` type of ``--seed``/``--seeds``: an integer in the seed range.

    Raises:
        argparse.ArgumentTypeError: not an integer, or outside the range (argparse exits 2 with
            ``argument --seed: ...``).
    """
    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 0 <= seed < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"must be 0 <= seed < 2**31 ({SEED_LIMIT}), got {text}")
    return seed
