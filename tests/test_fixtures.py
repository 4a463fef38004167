"""Tests for the synthetic fixture generators in ``fixtures/``."""

from __future__ import annotations

import io
import json
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fixtures
from fixtures import EDITS, KINDS, MODES
from tests.conftest import oracle

SIZES = [(1, 1), (2, 3), (4, 9), (9, 4), (64, 48), (37, 301), (300, 1)]


def _open(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def _frames(img: Image.Image) -> list[np.ndarray]:
    out = []
    for i in range(getattr(img, "n_frames", 1)):
        img.seek(i)
        out.append(np.asarray(img.convert("RGB"), dtype=np.int16))
    return out


# ------------------------------------------------------------------ scenes


@pytest.mark.parametrize("kind", KINDS)
def test_scene_deterministic_and_seed_dependent(kind: str) -> None:
    a, b = fixtures.scene(7, 96, 64, kind), fixtures.scene(7, 96, 64, kind)
    assert a.tobytes() == b.tobytes()
    assert fixtures.scene(8, 96, 64, kind).tobytes() != a.tobytes()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", SIZES)
def test_scene_sizes(kind: str, size: tuple[int, int]) -> None:
    img = fixtures.scene(1, *size, kind=kind)
    assert img.mode == "RGB" and img.size == size


def test_kinds_differ_and_have_texture() -> None:
    arrays = {k: np.asarray(fixtures.scene(3, 128, 96, k), dtype=np.float32) for k in KINDS}
    assert len({a.tobytes() for a in arrays.values()}) == len(KINDS)
    assert arrays["landscape"].std() > 20 and arrays["plasma"].std() > 20
    assert arrays["lowtexture"].std(axis=(0, 1)).max() < 2


def test_same_seed_same_picture_at_two_resolutions() -> None:
    small = np.asarray(fixtures.scene(4, 160, 120), dtype=np.float32)
    big = np.asarray(fixtures.scene(4, 640, 480).resize((160, 120), Image.Resampling.BOX), dtype=np.float32)
    other = np.asarray(fixtures.scene(5, 160, 120), dtype=np.float32)
    assert np.abs(small - big).mean() < 0.5 * np.abs(small - other).mean()


def test_pdq_quality() -> None:
    pdqhash = oracle("pdqhash")  # skips without it, fails in CI
    quality = lambda kind: pdqhash.compute(np.asarray(fixtures.scene(2, 256, 192, kind)))[1]  # noqa: E731
    assert quality("landscape") >= 80 and quality("shapes") >= 80 and quality("text") >= 80
    assert quality("lowtexture") < 20


def test_large_scene_is_fast() -> None:
    start = time.perf_counter()
    img = fixtures.scene(0, 4000, 3000, "landscape")
    assert img.size == (4000, 3000)
    assert time.perf_counter() - start < 2.0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        fixtures.scene(0, 10, 10, "nope")
    with pytest.raises(ValueError):
        fixtures.scene(0, 0, 10)
    with pytest.raises(ValueError):
        fixtures.image(0, 10, 10, mode="XYZ")


# ------------------------------------------------------------------- modes


@pytest.mark.parametrize("mode", MODES)
def test_image_modes(mode: str) -> None:
    img = fixtures.image(5, 80, 60, "landscape", mode)
    assert img.mode == mode and img.size == (80, 60)
    assert fixtures.image(5, 80, 60, "landscape", mode).tobytes() == img.tobytes()
    if mode in ("LA", "PA", "RGBA"):
        lo, hi = img.getchannel("A").getextrema()
        assert lo == 0 and hi == 255
        alpha = np.asarray(img.getchannel("A"))
        assert ((alpha > 0) & (alpha < 255)).any()


def test_sixteen_bit_has_real_16_bit_values() -> None:
    arr = np.asarray(fixtures.image(1, 64, 64, mode="I;16")).astype(np.int64)
    assert arr.max() > 255 and (arr % 257 != 0).mean() > 0.9
    assert np.array_equal(np.asarray(fixtures.image(1, 64, 64, mode="I")), arr)
    f = np.asarray(fixtures.image(1, 64, 64, mode="F"))
    assert f.dtype == np.float32 and 0 <= f.min() and f.max() <= 255 and (f % 1 != 0).any()


def test_palette_transparency() -> None:
    img = fixtures.image(2, 120, 90, "shapes", "P", transparency=True)
    index = img.info["transparency"]
    assert (np.asarray(img) == index).any()
    assert len(img.getpalette()) // 3 <= 256
    back = _open(fixtures.encode(img, "PNG"))
    assert back.mode == "P" and back.info["transparency"] == index


# ---------------------------------------------------------------- encoding


@pytest.mark.parametrize("mode", MODES)
def test_encode_every_mode(mode: str) -> None:
    src = fixtures.image(3, 24, 16, "shapes", mode)
    for fmt in ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP"):
        img = _open(fixtures.encode(src, fmt))
        img.load()
        assert img.format == fmt and img.size == (24, 16), fmt


def test_encode_roundtrips_and_params() -> None:
    img = fixtures.scene(9, 64, 48, "plasma")
    assert fixtures.encode(img, "PNG") == fixtures.encode(img, "PNG")
    assert np.array_equal(np.asarray(_open(fixtures.encode(img, "PNG"))), np.asarray(img))
    assert np.array_equal(
        np.asarray(_open(fixtures.encode(img, "WEBP", lossless=True)).convert("RGB")), np.asarray(img)
    )
    assert len(fixtures.encode(img, "JPEG", quality=20)) < len(fixtures.encode(img, "JPEG", quality=95))
    for orientation in range(1, 9):
        jpeg = _open(fixtures.encode(img, "JPEG", quality=80, exif_orientation=orientation))
        assert jpeg.getexif()[0x0112] == orientation and jpeg.size == (64, 48)
    with pytest.raises(ValueError):
        fixtures.encode(img, "JPEG", exif_orientation=9)
    sixteen = _open(fixtures.encode(fixtures.image(1, 32, 32, mode="I;16"), "PNG"))
    assert sixteen.mode.startswith("I") and sixteen.getextrema()[1] > 255


# ------------------------------------------------------------------- edits


def _expected_size(name: str, w: int, h: int) -> tuple[int, int]:
    half = lambda v: max(1, round(v * 0.5))  # noqa: E731
    crop = {"crop5": 0.05, "crop10": 0.10, "crop10_offcentre": 0.10, "crop5_jpeg75": 0.05}
    if name in crop:
        return w - round(w * crop[name]), h - round(h * crop[name])
    return {
        "resize0.5": (half(w), half(h)),
        "resize2": (2 * w, 2 * h),
        "rotate90": (h, w),
        "rotate270": (h, w),
        "pad20_black": (w, h + round(0.2 * h)),
        "pad20_white": (w, h + round(0.2 * h)),
        "pillarbox20_black": (w + round(0.2 * w), h),
        "pad20_resize0.5": (half(w), half(h + round(0.2 * h))),
    }.get(name, (w, h))


def test_edit_names() -> None:
    assert set(EDITS) == {
        "jpeg75",
        "jpeg30",
        "resize0.5",
        "resize2",
        "greyscale",
        "blur2",
        "gamma0.7",
        "mirror",
        "flip",
        "rotate90",
        "rotate180",
        "rotate270",
        "crop5",
        "crop10",
        "crop10_offcentre",
        "pad20_black",
        "pad20_white",
        "pillarbox20_black",
        "caption",
        "rotate4",
        "crop5_jpeg75",
        "pad20_resize0.5",
    }
    assert all(fn.__doc__ for fn in EDITS.values())
    with pytest.raises(ValueError):
        fixtures.edit(fixtures.scene(0, 8, 8), "nope")


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    """An odd-sized landscape to edit."""
    return fixtures.scene(11, 201, 150, "landscape")


@pytest.mark.parametrize("name", sorted(EDITS))
def test_edits(name: str, photo: Image.Image) -> None:
    before = photo.tobytes()
    out = fixtures.edit(photo, name)
    assert out.mode == "RGB" and out.size == _expected_size(name, *photo.size)
    assert fixtures.edit(photo, name).tobytes() == out.tobytes()
    if out.size == photo.size:
        assert out.tobytes() != before
    assert photo.tobytes() == before  # input untouched


def test_edit_geometry() -> None:
    img = fixtures.scene(12, 60, 40, "shapes")
    a = np.asarray(img)
    assert np.array_equal(np.asarray(fixtures.edit(img, "mirror")), a[:, ::-1])
    assert np.array_equal(np.asarray(fixtures.edit(img, "flip")), a[::-1])
    assert np.array_equal(np.asarray(fixtures.edit(img, "rotate180")), a[::-1, ::-1])
    assert np.array_equal(np.asarray(fixtures.edit(img, "rotate90")), np.rot90(a))
    assert np.array_equal(np.asarray(fixtures.edit(img, "crop10_offcentre")), a[4:, 6:])
    assert np.array_equal(np.asarray(fixtures.edit(img, "crop10")), a[2:38, 3:57])
    pad = np.asarray(fixtures.edit(img, "pad20_black"))
    assert np.array_equal(pad[4:44], a) and not pad[:4].any() and not pad[44:].any()
    assert (np.asarray(fixtures.edit(img, "pad20_white"))[:4] == 255).all()
    pillar = np.asarray(fixtures.edit(img, "pillarbox20_black"))
    assert np.array_equal(pillar[:, 6:66], a) and not pillar[:, :6].any()
    grey = np.asarray(fixtures.edit(img, "greyscale"))
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    cap = np.asarray(fixtures.edit(img, "caption"))
    assert np.array_equal(cap[:35], a[:35]) and not np.array_equal(cap[35:], a[35:])
    rot = np.asarray(fixtures.edit(img, "rotate4"))
    assert not rot[0, 0].any() and np.abs(rot[20, 30].astype(int) - a[20, 30]).max() < 40


def test_edits_accept_other_modes() -> None:
    for mode in ("L", "RGBA", "P", "CMYK"):
        img = fixtures.image(1, 40, 30, mode=mode)
        for name in EDITS:
            assert fixtures.edit(img, name).size == _expected_size(name, 40, 30)


# ------------------------------------------------------------ multi-frame


@pytest.mark.parametrize(
    "fn,fmt",
    [
        (fixtures.animated_gif, "GIF"),
        (fixtures.animated_webp, "WEBP"),
        (fixtures.animated_png, "PNG"),
        (fixtures.multipage_tiff, "TIFF"),
    ],
)
@pytest.mark.parametrize("count", [2, 3, 5])
def test_multi_frame(fn, fmt: str, count: int) -> None:  # type: ignore[no-untyped-def]
    data = fn(3, 48, 32, count)
    assert data == fn(3, 48, 32, count)
    img = _open(data)
    assert img.format == fmt and img.n_frames == count and img.size == (48, 32)
    frames = _frames(img)
    for a, b in zip(frames, frames[1:]):
        assert np.abs(a - b).mean() > 10  # clearly different


# ------------------------------------------------------------- bad inputs


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The bad_inputs() files, written once for this module."""
    return fixtures.bad_inputs(tmp_path_factory.mktemp("bad"))


def test_bad_inputs(bad: dict[str, Path]) -> None:
    paths, tmp_path = bad, bad["bomb.png"].parent
    assert set(paths) == {
        "zero_byte.jpg",
        "truncated.jpg",
        "truncated.png",
        "text_named.jpg",
        "jpeg_named.png",
        "bomb.png",
        "one_pixel.png",
        "four_by_nine.png",
        "cmyk.jpg",
        "sixteen_bit.png",
        "palette_transparent.png",
        "animated.gif",
    }
    for name, path in paths.items():
        assert path.parent == tmp_path and path.name == name
        assert path.stat().st_size < 1_000_000
    data = {name: path.read_bytes() for name, path in paths.items()}

    assert data["zero_byte.jpg"] == b""
    for name, fmt in (("truncated.jpg", "JPEG"), ("truncated.png", "PNG")):
        full = fixtures.encode(fixtures.scene(1, 640, 480), fmt, **({"quality": 85} if fmt == "JPEG" else {}))
        assert data[name] == full[: len(full) // 2]
        img = _open(data[name])
        assert img.size == (640, 480)
        with pytest.raises(OSError):
            img.load()
    with pytest.raises(Image.UnidentifiedImageError):
        Image.open(paths["text_named.jpg"])
    assert data["text_named.jpg"].decode("ascii")
    assert _open(data["jpeg_named.png"]).format == "JPEG"
    assert _open(data["one_pixel.png"]).size == (1, 1)
    assert _open(data["four_by_nine.png"]).size == (4, 9)
    cmyk = _open(data["cmyk.jpg"])
    assert cmyk.format == "JPEG" and cmyk.mode == "CMYK"
    sixteen = _open(data["sixteen_bit.png"])
    assert data["sixteen_bit.png"][24:26] == b"\x10\x00"  # IHDR: bit depth 16, greyscale
    values = np.asarray(sixteen).astype(np.int64)
    assert values.max() > 255 and (values % 257 != 0).any()
    pal = _open(data["palette_transparent.png"])
    assert pal.mode == "P" and "transparency" in pal.info
    gif = _open(data["animated.gif"])
    assert gif.format == "GIF" and gif.n_frames == 3


def test_bomb_png(bad: dict[str, Path]) -> None:
    data = bad["bomb.png"].read_bytes()
    assert len(data) < 10_000 and data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body)
        chunks.append((kind, body))
        pos += 12 + length
    assert [k for k, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    assert struct.unpack(">II", chunks[0][1][:8]) == (30000, 30000)
    try:
        with Image.open(io.BytesIO(data)) as img:
            assert img.size == (30000, 30000)
    except Image.DecompressionBombError:
        pass


# ------------------------------------------------------------ example set


def test_example_set(tmp_path: Path) -> None:
    start = time.perf_counter()
    paths = fixtures.example_set(tmp_path / "a", count=4, seed=1)
    assert time.perf_counter() - start < 3.0
    assert all(p.is_file() for p in paths) and len(set(paths)) == len(paths)
    known = sorted((tmp_path / "a" / "known").iterdir())
    evidence = sorted((tmp_path / "a" / "evidence").iterdir())
    assert len(known) == 4 and set(known) | set(evidence) <= set(paths)
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert set(manifest) == {p.name for p in evidence}
    kinds = [m["kind"] for m in manifest.values()]
    assert kinds.count("edited copy") >= 8 and kinds.count("unrelated") >= 2
    assert kinds.count("not an image") == 1 and kinds.count("corrupt") == 1
    for name, truth in manifest.items():
        if truth["kind"] == "edited copy":
            assert (tmp_path / "a" / "known" / truth["source"]).is_file() and truth["edit"] in EDITS
        if truth["kind"] in ("edited copy", "unrelated"):
            Image.open(tmp_path / "a" / "evidence" / name).load()


def test_example_set_deterministic(tmp_path: Path) -> None:
    a, b = (fixtures.example_set(tmp_path / d, count=1, seed=5) for d in "ab")
    assert [p.relative_to(tmp_path / "a") for p in a] == [p.relative_to(tmp_path / "b") for p in b]
    assert all(p.read_bytes() == q.read_bytes() for p, q in zip(a, b))


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fixtures.__main__ import main

    assert main([str(tmp_path / "out"), "--count", "1", "--seed", "2"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("wrote ") and "1 in known/" in line and "\n" not in line
    assert len(list((tmp_path / "out" / "known").iterdir())) == 1
