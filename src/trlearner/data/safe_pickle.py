"""Read pickles and ``.npy`` files from a download without running code from it.

``pickle.load`` calls whatever callable a pickle names (``os.system`` included), so a
crafted file on a mirror runs code. :func:`load_pickle` uses a restricted unpickler that
resolves only the globals numpy arrays need (``numpy.ndarray``, ``numpy.dtype``,
``numpy.core.multiarray._reconstruct`` / ``scalar``, ``numpy.core.numeric._frombuffer``,
``_codecs.encode`` for protocol-2 bytes) and a few inert containers (``set``,
``frozenset``, ``bytearray``, ``complex``, ``collections.OrderedDict``). Lists, dicts,
tuples, strings, bytes, numbers, booleans and ``None`` need no global at all. Anything
else is refused with :class:`UnsafePickleError` before it is called.

:func:`load_npy` reads a plain ``.npy`` with ``allow_pickle=False`` and an object array
(``np.save`` of a dict: pQSAR's ``compound_fp.npy``) through the same restricted unpickler.

Example::

    >>> import io, pickle, numpy as np
    >>> blob = pickle.dumps({"image_data": np.zeros((2, 3), np.uint8), "class_dict": {"a": [0, 1]}})
    >>> d = load_pickle(io.BytesIO(blob))
    >>> d["image_data"].shape, d["class_dict"]
    ((2, 3), {'a': [0, 1]})
    >>> load_pickle(io.BytesIO(pickle.dumps(print)))
    Traceback (most recent call last):
    ...
    trlearner.data.safe_pickle.UnsafePickleError: the pickle names builtins.print, which is not ...
"""

from __future__ import annotations

import codecs
import collections
import pickle
from pathlib import Path
from typing import BinaryIO

import numpy as np

try:  # numpy >= 2 moved numpy.core to numpy._core (pickles name either)
    from numpy._core import multiarray as _multiarray, numeric as _numeric
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray, numeric as _numeric

_NUMPY = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("multiarray", "scalar"): _multiarray.scalar,
    ("numeric", "_frombuffer"): _numeric._frombuffer,
}
_OTHER = {
    ("_codecs", "encode"): codecs.encode,  # protocol 2 writes bytes as _codecs.encode(str, "latin1")
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "bytearray"): bytearray,
    ("builtins", "complex"): complex,
    ("collections", "OrderedDict"): collections.OrderedDict,
}
_NUMPY_MODULES = {"numpy.core.multiarray": "multiarray", "numpy._core.multiarray": "multiarray",
                  "numpy.core.numeric": "numeric", "numpy._core.numeric": "numeric"}
_PY2 = {"__builtin__": "builtins", "copy_reg": "copyreg"}


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle names a global outside the allowed set (it would run code when loaded)."""


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds numpy arrays and plain containers only (see the module docstring)."""

    def find_class(self, module: str, name: str):
        module = _PY2.get(module, module)
        key = (module, name)
        if module == "numpy" and key in _NUMPY:
            return _NUMPY[key]
        if module in _NUMPY_MODULES and (_NUMPY_MODULES[module], name) in _NUMPY:
            return _NUMPY[(_NUMPY_MODULES[module], name)]
        if key in _OTHER:
            return _OTHER[key]
        raise UnsafePickleError(
            f"the pickle names {module}.{name}, which is not allowed in a downloaded file (only numpy arrays, "
            "lists, dicts, strings and numbers are): it was refused before anything was called")

    def persistent_load(self, pid):
        raise UnsafePickleError("the pickle uses persistent ids, which a data file never needs")


def load_pickle(src: str | Path | BinaryIO, *, encoding: str = "ASCII"):
    """Unpickle ``src`` (a path or a binary file object) with :class:`RestrictedUnpickler`.

    Arguments:
        src: the file (path or open binary file).
        encoding: how Python 2 ``str`` objects are decoded (``"latin1"`` for py2 numpy pickles).

    Returns:
        The object (arrays, lists, dicts, strings, numbers, ...).

    Raises :class:`UnsafePickleError` for any other global, ``pickle.UnpicklingError`` /
    ``EOFError`` etc. for a corrupt file.
    """
    if isinstance(src, (str, Path)):
        with open(src, "rb") as fh:
            return RestrictedUnpickler(fh, encoding=encoding).load()
    return RestrictedUnpickler(src, encoding=encoding).load()


def load_npy(path: str | Path) -> np.ndarray:
    """``np.load(path)`` for a ``.npy`` file, object arrays read by :func:`load_pickle`.

    Arguments:
        path: a ``.npy`` file (not ``.npz``).

    Returns:
        The array: plain dtypes read with ``allow_pickle=False``; an object array (what
        ``np.save`` writes for a dict, e.g. ``np.save(f, {"CHEMBL1": bits})``) unpickled with
        the restricted unpickler. ``.item()`` gives the dict back.

    Example::

        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "fp.npy")
        >>> np.save(p, np.array({"CHEMBL1": [0, 1]}, dtype=object), allow_pickle=True)
        >>> load_npy(p).item()
        {'CHEMBL1': [0, 1]}
    """
    fmt = np.lib.format
    with open(path, "rb") as fh:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(fh)
        else:
            raise ValueError(f"{Path(path).name}: .npy format version {version} is not supported (1.0 or 2.0)")
        if not dtype.hasobject:
            return np.load(path, allow_pickle=False)
        arr = load_pickle(fh, encoding="latin1")
    if not isinstance(arr, np.ndarray):
        raise ValueError(f"{Path(path).name}: the pickled payload is a {type(arr).__name__}, not an array")
    return arr


__all__ = ["RestrictedUnpickler", "UnsafePickleError", "load_pickle", "load_npy"]
