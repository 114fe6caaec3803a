"""The image converters' crop and resize and the Omniglot rotations through
torchvision.transforms.v2 give the pixels of the Pillow/numpy path they replaced, bit for bit.

The fixture is a handful of images in the real formats of the registry's datasets (Omniglot's
1-bit PNGs, JPEGs of several shapes, grey and colour, an Aircraft-style crop box partly outside
the image, palette and RGBA PNGs, GTSRB's PPM, QuickDraw's arrays); the reference is the
converter's Pillow path as it was (:func:`pil_reference`). The resize is Lanczos on PIL
images (docs/DATA.md, "Image decoding and resizing": torchvision's tensor resize has no Lanczos).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from trlearner.data.fetch.imagecache import load_image


def pil_reference(src, size, mode, invert=False, box=None):
    """The converters' ``load_image`` before torchvision (commit of the data restructure)."""
    if isinstance(src, (bytes, bytearray)):
        img = Image.open(io.BytesIO(src))
    elif isinstance(src, Image.Image):
        img = src
    else:
        img = Image.open(src)
    img = img.convert(mode)
    if box is not None:
        img = img.crop(box)
    if size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.LANCZOS)
    arr = np.asarray(img, dtype=np.uint8)
    return 255 - arr if invert else arr


def _smooth(rng, h, w, channels):
    base = (rng.random((h // 8 + 2, w // 8 + 2, channels)) * 255).astype(np.uint8)
    img = Image.fromarray(base.squeeze(-1) if channels == 1 else base).resize((w, h), Image.BICUBIC)
    noise = rng.integers(-20, 21, np.asarray(img).shape)
    return np.clip(np.asarray(img).astype(int) + noise, 0, 255).astype(np.uint8)


def _encode(img: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return out.getvalue()


def fixture_images():
    rng = np.random.default_rng(0)
    stroke = Image.fromarray(((rng.random((105, 105)) > 0.1) * 255).astype(np.uint8)).convert("1")
    rgb = {hw: Image.fromarray(_smooth(rng, *hw, 3)) for hw in ((375, 500), (500, 333), (84, 84), (61, 47))}
    grey = Image.fromarray(_smooth(rng, 120, 90, 1))
    cases = [("omniglot 1-bit png", _encode(stroke, "PNG"), [(28, "L", True), (84, "RGB", True), (None, "L", False)])]
    for hw, im in rgb.items():
        for fmt in ("JPEG", "PNG"):
            cases.append((f"{fmt} {hw}", _encode(im, fmt), [(84, "RGB", False), (84, "L", False), (None, "RGB", False)]))
    cases.append(("grey jpeg", _encode(grey, "JPEG"), [(84, "RGB", False), (84, "L", False), (28, "L", True)]))
    cases.append(("grey png", _encode(grey, "PNG"), [(84, "RGB", False), (84, "L", False)]))
    cases.append(("palette png", _encode(rgb[(61, 47)].quantize(37), "PNG"), [(84, "RGB", False), (84, "L", False)]))
    rgba = rgb[(61, 47)].copy()
    rgba.putalpha(Image.fromarray(_smooth(rng, 61, 47, 1)))
    cases.append(("rgba png", _encode(rgba, "PNG"), [(84, "RGB", False), (84, "L", False)]))
    cases.append(("gtsrb ppm", _encode(rgb[(61, 47)], "PPM"), [(84, "RGB", False)]))
    return cases


CASES = [(name, data, *how) for name, data, hows in fixture_images() for how in hows]


@pytest.mark.parametrize("name,data,size,mode,invert", CASES, ids=[f"{c[0]}-{c[2]}-{c[3]}" for c in CASES])
def test_same_pixels_as_the_pillow_path(name, data, size, mode, invert, tmp_path):
    want = pil_reference(data, size, mode, invert)
    assert np.array_equal(load_image(data, size, mode, invert), want)
    path = tmp_path / "img"
    path.write_bytes(data)
    got = load_image(path, size, mode, invert)
    assert got.dtype == np.uint8 and got.shape == want.shape and np.array_equal(got, want)


@pytest.mark.parametrize("box", [(10, 20, 300, 350), (0, 0, 500, 375), (400, 300, 520, 390)])
def test_crop_box_as_pillow_crops(box):
    """Aircraft crops to ``images_box.txt``; a box reaching past the image is filled with 0 as
    Pillow's ``crop`` fills it."""
    rng = np.random.default_rng(1)
    data = _encode(Image.fromarray(_smooth(rng, 375, 500, 3)), "JPEG")
    assert np.array_equal(load_image(data, 84, "RGB", box=box), pil_reference(data, 84, "RGB", box=box))


def test_tensor_resize_is_not_the_cache_s_lanczos():
    """Why the resize stays Lanczos on PIL images: torchvision's tensor resize has no Lanczos, and
    its antialiased bicubic differs from the cache (docs/DATA.md quotes the measured numbers)."""
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    worst = 0
    for name, data, hows in fixture_images():
        if "1-bit" not in name and "(375, 500)" not in name:
            continue
        for size, mode, invert in hows:
            if size is None:
                continue
            want = pil_reference(data, size, mode)
            img = np.array(Image.open(io.BytesIO(data)).convert(mode))
            t = torch.from_numpy(img[..., None] if img.ndim == 2 else img).permute(2, 0, 1)
            got = F.resize(t, [size, size], interpolation=InterpolationMode.BICUBIC, antialias=True)
            got = got.permute(1, 2, 0).numpy().reshape(want.shape)
            worst = max(worst, int(np.abs(got.astype(int) - want.astype(int)).max()))
    assert 0 < worst <= 26


def test_arrays_and_pil_images_unchanged():
    """QuickDraw bitmaps (arrays made PIL images) and MSCOCO's opened images: the Pillow path."""
    a = (np.random.default_rng(2).random((28, 28)) > 0.8).astype(np.uint8) * 255
    assert np.array_equal(load_image(Image.fromarray(a), 84, "RGB"), pil_reference(Image.fromarray(a), 84, "RGB"))


@pytest.mark.parametrize("side", [28, 84, 105])
def test_omniglot_rotations_as_numpy_rotated(side):
    """The episode-time rotations of Omniglot's rotated classes (torchvision.transforms.v2's
    ``rotate``) equal ``np.rot90`` (counter-clockwise) exactly."""
    from trlearner.data.sources.images import rotate

    imgs = np.random.default_rng(3).integers(0, 256, (7, side, side), dtype=np.uint8)
    for k in (1, 2, 3):
        assert np.array_equal(rotate(imgs, k), np.rot90(imgs, k, axes=(1, 2)))
    assert torch.is_tensor(torch.from_numpy(rotate(imgs, 1)))
