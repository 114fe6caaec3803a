"""The image cache every image dataset shares, and the one decoder that fills it
(:func:`load_image`: Pillow decodes, torchvision.transforms.v2 crops and resizes).

Layout (read by :class:`trlearner.data.sources.images.ImageStore`):

- ``images.npy``  uint8 ``[N, H, W]`` (grey) or ``[N, H, W, 3]`` (RGB), memory-mapped at load;
- ``class_offsets.npy`` int64 ``[K + 1]``: the images of class ``k`` are rows
  ``offsets[k]:offsets[k+1]`` (classes are contiguous);
- ``classes.json``: ``{"classes": [K names], ...}`` plus converter facts.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Callable

import numpy as np

from trlearner.data.errors import DataFetchError

# The most pixels one image of a dataset may have. The largest images of the registry's datasets
# (ILSVRC, COCO, fungi photographs) are under 20 million pixels; a 20000x20000 PNG of 48 KB
# would decode to 400 MB. Checked on the header, before anything is decoded (Pillow's own
# limit, ~179 million pixels, is a second fence).
MAX_IMAGE_PIXELS = 50_000_000


def load_image(src, size: int | None, mode: str, invert: bool = False, box=None) -> np.ndarray:
    """Decode one image (path, bytes or PIL image) -> uint8 [size, size] or [size, size, 3].

    Arguments:
        src: a file path, the file's bytes, or a PIL image.
        size: the side of the square output (None: keep the decoded size).
        mode: ``"L"`` (grey) or ``"RGB"``.
        invert: store ``255 - pixel`` (Omniglot strokes bright on black).
        box: optional ``(left, upper, right, lower)`` crop before resizing (outside the image
            is filled with 0).

    Returns:
        uint8 ``[size, size]`` (``"L"``) or ``[size, size, 3]`` (``"RGB"``).

    Pillow decodes; the crop and the resize are :mod:`torchvision.transforms.v2`'s
    (``crop``, ``resize`` with ``InterpolationMode.LANCZOS``), which on a PIL image run Pillow's
    own, so the cache keeps its pixels bit for bit (tests/test_data_imagecache.py). Why not
    ``torchvision.io`` and tensor resizing: docs/DATA.md, "Image decoding and resizing".

    Example::

        >>> load_image(Path("character01/0101_01.png"), 28, "L", invert=True).shape   # doctest: +SKIP
        (28, 28)
    """
    from PIL import Image
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    try:
        if isinstance(src, (bytes, bytearray)):
            img = Image.open(io.BytesIO(src))
        elif isinstance(src, Image.Image):
            img = src
        else:
            img = Image.open(src)
        width, height = img.size
        if width * height > MAX_IMAGE_PIXELS:
            raise DataFetchError(_too_big(src, f"{width}x{height} = {width * height}"))
        img = img.convert(mode)
    except Image.DecompressionBombError as exc:  # beyond Pillow's own limit: refused on opening
        import re

        found = re.search(r"\((\d+) pixels\)", str(exc))
        raise DataFetchError(_too_big(src, found.group(1) if found else "too many")) from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated, corrupt or not an image (Pillow's errors)
        raise DataFetchError(f"image {_name(src)} cannot be decoded ({type(exc).__name__}: {exc}): the archive "
                             f"holding it is corrupt or truncated") from None
    if box is not None:
        left, top, right, bottom = (int(round(v)) for v in box)  # as Pillow rounds a crop box
        img = F.crop(img, top, left, bottom - top, right - left)
    if size is not None and img.size != (size, size):
        img = F.resize(img, [size, size], interpolation=InterpolationMode.LANCZOS)
    arr = np.asarray(img, dtype=np.uint8)
    return 255 - arr if invert else arr


def _too_big(src, pixels: str) -> str:
    return (f"image {_name(src)} is {pixels} pixels, more than the limit of {MAX_IMAGE_PIXELS} "
            f"(trlearner.data.fetch.imagecache.MAX_IMAGE_PIXELS): refused as a decompression bomb")


def _name(src) -> str:
    """An image's name for messages: its path from the archive's extraction folder on (the
    staging folder is temporary), a tar member's name, or 'from bytes'."""
    if isinstance(src, (str, Path)):
        parts = Path(src).parts
        return "/".join(parts[parts.index("extracted") + 1:]) if "extracted" in parts else str(src)
    return repr(getattr(src, "name", None) or "(in memory)")


def write_image_cache(cache: Path, classes: list[tuple[str, list]], size: int, mode: str,
                      invert: bool = False, extra: dict | None = None,
                      loader: Callable | None = None) -> None:
    """Decode every image of every class (in the given order) into the cache layout."""
    n = sum(len(items) for _, items in classes)
    if n == 0:
        raise DataFetchError("no images found in the extracted files", todo="check that the archive is the "
                             "published one (the registry describes its layout)")
    shape = (n, size, size) if mode == "L" else (n, size, size, 3)
    images = np.lib.format.open_memmap(cache / "images.npy", mode="w+", dtype=np.uint8, shape=shape)
    offsets = np.zeros(len(classes) + 1, dtype=np.int64)
    row = 0
    for k, (_, items) in enumerate(classes):
        for item in items:
            try:
                images[row] = loader(item) if loader else load_image(item, size, mode, invert)
            except DataFetchError as exc:  # name the archive member the loader read from bytes
                if "(in memory)" not in exc.problem or not hasattr(item, "name"):
                    raise
                raise DataFetchError(exc.problem.replace("'(in memory)'", repr(item.name))) from None
            row += 1
        offsets[k + 1] = row
    images.flush()
    del images
    np.save(cache / "class_offsets.npy", offsets)
    meta = {"classes": [c for c, _ in classes], "image_shape": list(shape[1:]), "mode": mode, "invert": invert}
    meta.update(extra or {})
    (cache / "classes.json").write_text(json.dumps(meta, indent=0))
