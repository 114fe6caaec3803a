"""Fetching: download, verify and extract a dataset's files, convert them once into the cache
that the sources read, and publish the result atomically.

``core`` obtains, verifies and publishes (locks, trust on first use, the MANIFEST); ``convert``
is the one table of converters (registry ``converter`` name -> function) over
``imagecache`` (decoding and resizing images into the memory-mapped cache) and the
raw-format readers ``convert_metadataset``, ``convert_pqsar`` and ``convert_pose``.

May import: the ``trlearner.data`` top-level modules, ``trlearner.data.sources`` (the cache
layouts the sources read, the generated regression test sets), ``trlearner.engine``,
``trlearner.util``. Nothing in ``trlearner.data.sources`` imports this package.

The names below are the public entry points (the cache checks come from
:mod:`trlearner.data.store`, re-exported here so ``from trlearner.data.fetch import require``
keeps working)::

    >>> from trlearner.data.fetch import fetch, is_fetched
    >>> fetch("omniglot_small")          # doctest: +SKIP
    PosixPath('data/raw/omniglot_small')
"""

from __future__ import annotations

from trlearner.data.fetch.core import (LOCK_TIMEOUT, LOCK_TIMEOUT_ENV, MIRROR_ENV, PUBLISHED, RECORDED,
                                       ResumableDownloader, checksum_origin, checksum_status, fetch, fetch_lock,
                                       looks_like_html, manifest, mirrors, obtain, pins_path, read_pins, verify)
from trlearner.data.store import (MANIFEST, MANIFEST_FORMAT, cache_dir, check_cache, file_hash, forget_verified,
                                  is_fetched, manual_dir, raw_dir, read_manifest, require, status)

__all__ = ["LOCK_TIMEOUT", "LOCK_TIMEOUT_ENV", "MANIFEST", "MANIFEST_FORMAT", "MIRROR_ENV", "PUBLISHED", "RECORDED",
           "ResumableDownloader", "cache_dir", "check_cache", "checksum_origin", "checksum_status", "fetch",
           "fetch_lock", "file_hash", "forget_verified", "is_fetched", "looks_like_html", "manifest", "manual_dir",
           "mirrors", "obtain", "pins_path", "raw_dir", "read_manifest", "read_pins", "require", "status", "verify"]
