"""Tests for matcher.imaging. Every image here is synthetic (seeded noise, gradients, flat colours)."""

from __future__ import annotations

import gzip
import io
import logging
import struct
import subprocess
import sys
import warnings
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile, features

from matcher.errors import (
    DecodeError,
    ImageTooLargeError,
    TruncatedImageError,
    UnsupportedFormatError,
    UsageError,
)
from matcher.imaging import (
    DecodeOptions,
    Frame,
    MediaType,
    extension_mismatch,
    iter_frames,
    open_image,
    sniff,
    to_rgb,
)

# --------------------------------------------------------------------------------------------------
# synthetic image helpers


def noise(width: int = 64, height: int = 48, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def gradient(width: int, height: int) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    channels = [np.broadcast_to(c, (height, width)) for c in (x, y, (x + y) / 2)]
    return Image.fromarray(np.stack(channels, axis=-1).astype(np.uint8))


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def animation(fmt: str, count: int = 3, **params: object) -> bytes:
    frames = [noise(32, 24, seed=i) for i in range(count)]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], **params)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body + b"\x00" * 64


def pixel(frame: Frame, xy: tuple[int, int] = (0, 0)) -> tuple[int, int, int]:
    return frame.image.getpixel(xy)


def close_to(a: tuple[int, ...], b: tuple[int, ...], tolerance: int = 6) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


# --------------------------------------------------------------------------------------------------
# sniffing

IMAGE_SAMPLES = {
    "jpeg": (lambda: encode(noise(), "JPEG"), "image/jpeg"),
    "png": (lambda: encode(noise(), "PNG"), "image/png"),
    "apng": (lambda: animation("PNG"), "image/png"),
    "gif": (lambda: encode(noise(), "GIF"), "image/gif"),
    "bmp": (lambda: encode(noise(), "BMP"), "image/bmp"),
    "tiff-le": (lambda: encode(noise(), "TIFF"), "image/tiff"),
    "tiff-be": (lambda: b"MM\x00*\x00\x00\x00\x08" + b"\x00" * 64, "image/tiff"),
    "bigtiff": (lambda: b"II+\x00\x08\x00\x00\x00" + b"\x00" * 64, "image/tiff"),
    "webp": (lambda: encode(noise(), "WEBP"), "image/webp"),
    "heic": (lambda: ftyp(b"heic", b"mif1", b"heic"), "image/heic"),
    "heic-mif1": (lambda: ftyp(b"mif1", b"mif1", b"heic"), "image/heic"),
    "heif": (lambda: ftyp(b"mif1", b"mif1"), "image/heif"),
    "avif": (lambda: ftyp(b"avif", b"mif1", b"miaf"), "image/avif"),
    "avif-mif1": (lambda: ftyp(b"mif1", b"avif"), "image/avif"),
    "ico": (lambda: encode(noise(32, 32), "ICO"), "image/vnd.microsoft.icon"),
    "jp2": (lambda: b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"\x00" * 64, "image/jp2"),
}


@pytest.mark.parametrize("name", sorted(IMAGE_SAMPLES))
def test_sniff_images(name: str) -> None:
    make, mime = IMAGE_SAMPLES[name]
    media = sniff(make()[:64])
    assert media is not None and media.mime == mime
    if mime != "image/jp2":
        assert media.is_image


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.txt", "synthetic")
    return buffer.getvalue()


NON_IMAGE_SAMPLES = {
    "pdf": (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n" + b"\x00" * 40, "application/pdf"),
    "zip": (zip_bytes(), "application/zip"),
    "gzip": (gzip.compress(b"synthetic" * 20), "application/gzip"),
    "7z": (b"7z\xbc\xaf\x27\x1c\x00\x04" + b"\x00" * 60, "application/x-7z-compressed"),
    "rar": (b"Rar!\x1a\x07\x01\x00" + b"\x00" * 60, "application/vnd.rar"),
    "mp4": (ftyp(b"isom", b"isom", b"iso2", b"mp41"), "video/mp4"),
    "mov": (ftyp(b"qt  ", b"qt  "), "video/quicktime"),
    "mkv": (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x88matroska" + b"\x00" * 50, "video/x-matroska"),
    "webm": (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm" + b"\x00" * 50, "video/webm"),
    "elf": (b"\x7fELF\x02\x01\x01" + b"\x00" * 60, "application/x-executable"),
    "pe": (b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 56, "application/vnd.microsoft.portable-executable"),
    "sqlite": (b"SQLite format 3\x00\x10\x00\x01\x01" + b"\x00" * 48, "application/vnd.sqlite3"),
    "mp3-id3": (b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\x00" * 60, "audio/mpeg"),
    "mp3-sync": (b"\xff\xfb\x90\x64" + b"\x00" * 60, "audio/mpeg"),
    "ogg": (b"OggS\x00\x02" + b"\x00" * 60, "application/ogg"),
    "text": (("Synthetic notes: grüße, 日本語 and ASCII.\n" * 4).encode(), "text/plain"),
}


@pytest.mark.parametrize("name", sorted(NON_IMAGE_SAMPLES))
def test_sniff_non_images(name: str) -> None:
    data, mime = NON_IMAGE_SAMPLES[name]
    media = sniff(data[:64])
    assert media is not None and media.mime == mime and not media.is_image


def test_sniff_text_cut_mid_character_is_still_text() -> None:
    data = "é".encode() * 40
    assert sniff(data[:65]) is not None and sniff(data[:65]).mime == "text/plain"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x01\x02\x03" * 16,
        bytes(range(256)),
        b"BM" + b"\xff" * 62,  # "BM" without a plausible DIB header size
        b"\x00\x00\x01\x00\x00\x00" + b"\x01" * 58,  # ICO signature with zero images
    ],
)
def test_sniff_unknown(data: bytes) -> None:
    assert sniff(data) is None


def test_sniff_rejects_non_bytes() -> None:
    with pytest.raises(UsageError):
        sniff("not bytes")  # type: ignore[arg-type]


def test_extension_mismatch() -> None:
    jpeg = sniff(encode(noise(), "JPEG"))
    assert extension_mismatch("photo.png", jpeg) is True
    assert extension_mismatch("photo.jpg", jpeg) is False
    assert extension_mismatch("PHOTO.JPEG", jpeg) is False
    assert extension_mismatch("/evidence/dir.v2/photo.jfif", jpeg) is False
    assert extension_mismatch(r"C:\Users\x\photo.gif", jpeg) is True
    assert extension_mismatch("photo", jpeg) is None
    assert extension_mismatch("/evidence/dir.v2/photo", jpeg) is None
    assert extension_mismatch(".hidden", jpeg) is None
    assert extension_mismatch("photo.jpg", None) is None
    assert extension_mismatch("a.bin", MediaType("x/y", ("bin",), False)) is False


# --------------------------------------------------------------------------------------------------
# open_image: identification and limits


def test_open_image_reports_header() -> None:
    info, image = open_image(encode(noise(40, 30), "PNG"))
    assert (info.media.mime, info.format, info.width, info.height, info.frame_count, info.mode) == (
        "image/png",
        "PNG",
        40,
        30,
        1,
        "RGB",
    )
    assert image.size == (40, 30)


def test_text_named_jpg_is_unsupported() -> None:
    data = b"This is a synthetic text file pretending to be a photo.\n" * 3
    assert extension_mismatch("holiday.jpg", sniff(data)) is True
    with pytest.raises(UnsupportedFormatError, match=r"not an image \(text/plain\)"):
        open_image(data)


def test_non_image_is_refused_without_pillow() -> None:
    with pytest.raises(UnsupportedFormatError, match="application/zip"):
        open_image(zip_bytes())


def test_eps_is_not_handed_to_ghostscript() -> None:
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n%%EOF\n"
    with pytest.raises(UnsupportedFormatError):
        open_image(eps)


def test_unrecognised_binary() -> None:
    with pytest.raises(UnsupportedFormatError, match="unrecognised"):
        open_image(b"\x00\x01\x02\x03" * 64)


def test_zero_bytes() -> None:
    with pytest.raises(DecodeError):
        open_image(b"")
    with pytest.raises(DecodeError):
        list(iter_frames(b""))


def test_corrupt_header() -> None:
    with pytest.raises(DecodeError):
        open_image(encode(noise(), "PNG")[:30])


def bomb_png(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def test_huge_declared_size_fails_fast_and_silently(capfd: pytest.CaptureFixture[str]) -> None:
    data = bomb_png(30000, 30000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ImageTooLargeError, match="900000000"):
            open_image(data)
        with pytest.raises(ImageTooLargeError):
            list(iter_frames(data))
    assert caught == []
    assert capfd.readouterr().err == ""


def test_size_under_pillows_warning_threshold_is_silent(capfd: pytest.CaptureFixture[str]) -> None:
    # 10000x10000 is above Pillow's warning threshold but under its error limit: matcher's own limit applies
    data = bomb_png(10000, 10000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ImageTooLargeError, match=r"10000x10000 = 100000000 pixels, over the limit of 5"):
            open_image(data, DecodeOptions(max_pixels=50_000_000))
    assert caught == []
    assert capfd.readouterr().err == ""


def test_configured_max_pixels_rejects_normal_image() -> None:
    data = encode(noise(64, 48), "PNG")
    with pytest.raises(ImageTooLargeError, match=r"64x48 = 3072 pixels, over the limit of 3000"):
        open_image(data, DecodeOptions(max_pixels=3000))
    assert len(list(iter_frames(data, DecodeOptions(max_pixels=3072)))) == 1


@pytest.mark.parametrize(
    "kwargs",
    [{"max_pixels": 0}, {"max_frames": -1}, {"max_frames": 1.5}, {"max_pixels": True}, {"apply_exif_orientation": 1}],
)
def test_decode_options_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        DecodeOptions(**kwargs)  # type: ignore[arg-type]


def test_bad_arguments() -> None:
    with pytest.raises(UsageError):
        open_image("file.jpg")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        list(iter_frames(encode(noise(), "JPEG"), draft_size=(0, 10)))


# --------------------------------------------------------------------------------------------------
# decoding stills


def test_truncated_jpeg_never_yields_frames() -> None:
    data = encode(noise(256, 256), "JPEG", quality=90)
    frames: list[Frame] = []
    with pytest.raises((TruncatedImageError, DecodeError)):
        frames.extend(iter_frames(data[: len(data) // 2]))
    assert frames == []


def test_truncated_png_never_yields_frames() -> None:
    data = encode(noise(256, 256), "PNG")
    frames: list[Frame] = []
    with pytest.raises(TruncatedImageError):
        frames.extend(iter_frames(data[: len(data) * 3 // 4]))
    assert frames == []


def test_load_truncated_images_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(UsageError):
        list(iter_frames(encode(noise(), "PNG")))


def test_one_by_one_pixel() -> None:
    (frame,) = iter_frames(encode(Image.new("RGB", (1, 1), (10, 200, 30)), "PNG"))
    assert (frame.index, frame.width, frame.height, frame.image.mode) == (None, 1, 1, "RGB")
    assert pixel(frame) == (10, 200, 30)


def test_cmyk_jpeg() -> None:
    data = encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95)
    info, _ = open_image(data)
    assert info.mode == "CMYK"
    (frame,) = iter_frames(data)
    assert close_to(pixel(frame, (8, 8)), (255, 0, 0), 8)


def test_16_bit_png_is_scaled_not_clipped() -> None:
    source = Image.fromarray(np.full((4, 4), 32768, dtype=np.uint16))
    data = encode(source, "PNG")
    info, _ = open_image(data)
    assert info.mode.startswith("I")
    (frame,) = iter_frames(data)
    assert pixel(frame) == (128, 128, 128)


def test_palette_png_with_transparency_keeps_colour() -> None:
    image = Image.new("P", (4, 4), 0)
    image.putpalette([200, 40, 10, 0, 0, 255] + [0] * 762)
    image.putpixel((1, 1), 1)
    data = encode(image, "PNG", transparency=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (frame,) = iter_frames(data)
    assert caught == []
    assert pixel(frame) == (200, 40, 10) and pixel(frame, (1, 1)) == (0, 0, 255)


def test_corrupt_exif_is_quiet_and_not_fatal(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    data = encode(noise(16, 16), "JPEG", exif=b"Exif\x00\x00II*\x00\xff\xff\xff\x7f")
    with caplog.at_level(logging.INFO, logger="matcher.imaging"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (frame,) = iter_frames(data, DecodeOptions(apply_exif_orientation=True))
    assert caught == [] and capfd.readouterr().err == ""
    assert (frame.width, frame.height) == (16, 16)
    assert any("EXIF" in record.getMessage() for record in caplog.records)


# --------------------------------------------------------------------------------------------------
# to_rgb: one known input per mode


def _image_of(mode: str, value: object) -> Image.Image:
    return Image.new(mode, (2, 2), value)  # type: ignore[arg-type]


def _palette(mode: str, transparency: bool) -> Image.Image:
    image = Image.new(mode, (2, 2))
    image.putpalette([30, 60, 90] * 256)
    if transparency:
        image.info["transparency"] = b"\x00\x10"  # byte-string transparency: Pillow warns on convert("RGB")
    return image


TO_RGB_CASES = {
    "RGB": (lambda: _image_of("RGB", (1, 2, 3)), (1, 2, 3)),
    "1": (lambda: _image_of("1", 1), (255, 255, 255)),
    "L": (lambda: _image_of("L", 77), (77, 77, 77)),
    "P": (lambda: _palette("P", False), (30, 60, 90)),
    "P+transparency": (lambda: _palette("P", True), (30, 60, 90)),
    "PA": (lambda: _palette("PA", False), (30, 60, 90)),
    "CMYK": (lambda: _image_of("CMYK", (0, 255, 0, 0)), (255, 0, 255)),
    "YCbCr": (lambda: _image_of("YCbCr", (128, 128, 128)), (128, 128, 128)),
    "LAB": (lambda: _image_of("LAB", (0, 0, 0)), None),
    "HSV": (lambda: _image_of("HSV", (0, 255, 255)), (255, 0, 0)),
    "LA": (lambda: _image_of("LA", (90, 10)), (90, 90, 90)),
    "La": (lambda: _image_of("LA", (200, 128)).convert("La"), (199, 199, 199)),
    "RGBA": (lambda: _image_of("RGBA", (9, 8, 7, 0)), (9, 8, 7)),
    "RGBa": (lambda: _image_of("RGBA", (200, 100, 50, 128)).convert("RGBa"), (199, 99, 49)),
    "RGBX": (lambda: _image_of("RGBX", (4, 5, 6, 0)), (4, 5, 6)),
    "I;16": (lambda: _image_of("I;16", 32768), (128, 128, 128)),
    "I;16L": (lambda: _image_of("I;16L", 65535), (255, 255, 255)),
    "I;16B": (lambda: _image_of("I;16B", 257 * 10 + 129), (11, 11, 11)),
    "I;16N": (lambda: _image_of("I;16N", 128), (0, 0, 0)),
    "I": (lambda: _image_of("I", 32768), (128, 128, 128)),
    "I-over": (lambda: _image_of("I", 100_000), (255, 255, 255)),
    "I-negative": (lambda: _image_of("I", -5), (0, 0, 0)),
    "F-unit": (lambda: _image_of("F", 0.5), (128, 128, 128)),
    "F-wide": (lambda: _image_of("F", 300.0), (255, 255, 255)),
}


@pytest.mark.parametrize("case", sorted(TO_RGB_CASES))
def test_to_rgb(case: str) -> None:
    make, expected = TO_RGB_CASES[case]
    source = make()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = to_rgb(source)
    assert caught == []
    assert result.mode == "RGB" and result.size == source.size and result is not source
    if expected is None:  # LAB: whatever Pillow's convert gives
        expected = source.convert("RGB").getpixel((0, 0))
    assert result.getpixel((1, 1)) == expected


def test_to_rgb_float_range_rule() -> None:
    values = np.array([[0.0, 0.25], [1.0, np.nan]], dtype=np.float32)
    assert np.asarray(to_rgb(Image.fromarray(values)))[..., 0].tolist() == [[0, 64], [255, 0]]
    values = np.array([[-3.0, 12.4], [254.6, 1e6]], dtype=np.float32)
    assert np.asarray(to_rgb(Image.fromarray(values)))[..., 0].tolist() == [[0, 12], [255, 255]]


def test_to_rgb_gradient_16_bit() -> None:
    values = np.arange(0, 65536, 257, dtype=np.uint16).reshape(16, 16)
    assert np.array_equal(np.asarray(to_rgb(Image.fromarray(values)))[..., 1], np.arange(256).reshape(16, 16))


# --------------------------------------------------------------------------------------------------
# multi-frame files


def _assert_distinct(frames: list[Frame]) -> None:
    arrays = [np.asarray(f.image) for f in frames]
    for i in range(len(arrays)):
        for j in range(i + 1, len(arrays)):
            assert not np.array_equal(arrays[i], arrays[j])


@pytest.mark.parametrize(
    "fmt, params",
    [("GIF", {}), ("TIFF", {}), ("WEBP", {"lossless": True}), ("PNG", {})],
    ids=["gif", "tiff", "webp", "apng"],
)
def test_multi_frame(fmt: str, params: dict[str, object]) -> None:
    if fmt == "WEBP" and not features.check("webp"):
        pytest.skip("Pillow without WebP")
    data = animation(fmt, 3, **params)
    info, _ = open_image(data)
    assert info.frame_count == 3
    frames = list(iter_frames(data))
    assert [f.index for f in frames] == [0, 1, 2]
    assert all(f.image.mode == "RGB" and (f.width, f.height) == (32, 24) for f in frames)
    _assert_distinct(frames)
    assert [f.index for f in iter_frames(data, DecodeOptions(max_frames=2))] == [0, 1]


def test_frames_before_a_broken_frame_are_yielded() -> None:
    data = animation("GIF", 3)
    seen: list[int | None] = []
    with pytest.raises(TruncatedImageError, match="frame 2"):
        for frame in iter_frames(data[: int(len(data) * 0.9)]):
            seen.append(frame.index)
    assert seen == [0, 1]


def test_multi_page_tiff_pages_of_different_sizes() -> None:
    pages = [noise(20, 10, seed=1), noise(40, 30, seed=2)]
    data = encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    frames = list(iter_frames(data))
    assert [(f.index, f.width, f.height) for f in frames] == [(0, 20, 10), (1, 40, 30)]
    with pytest.raises(ImageTooLargeError, match="frame 1"):
        list(iter_frames(data, DecodeOptions(max_pixels=500)))


@pytest.mark.skipif(not features.check("avif"), reason="Pillow without AVIF")
def test_avif_round_trip() -> None:
    source = gradient(64, 48)
    data = encode(source, "AVIF", quality=90)
    assert sniff(data).mime == "image/avif"  # type: ignore[union-attr]
    (frame,) = iter_frames(data)
    assert (frame.width, frame.height) == (64, 48)
    difference = np.abs(np.asarray(frame.image, dtype=int) - np.asarray(source, dtype=int))
    assert difference.mean() < 8


def test_heic_without_decoder_is_unsupported_or_corrupt() -> None:
    with pytest.raises(DecodeError):
        open_image(ftyp(b"heic", b"mif1", b"heic"))


# --------------------------------------------------------------------------------------------------
# orientation, draft mode, input kinds


def _oriented_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(gradient(60, 40), "JPEG", exif=exif.tobytes(), quality=95)


def test_exif_orientation_default_keeps_stored_pixels() -> None:
    (frame,) = iter_frames(_oriented_jpeg())
    assert (frame.width, frame.height) == (60, 40) and frame.image.size == (60, 40)


def test_exif_orientation_applied_on_request() -> None:
    data = _oriented_jpeg()
    (stored,) = iter_frames(data)
    (rotated,) = iter_frames(data, DecodeOptions(apply_exif_orientation=True))
    assert (rotated.width, rotated.height) == (40, 60) and rotated.image.size == (40, 60)
    expected = stored.image.transpose(Image.Transpose.ROTATE_270)
    assert np.array_equal(np.asarray(rotated.image), np.asarray(expected))


def test_draft_size_reduces_jpeg_decode_only() -> None:
    data = encode(gradient(4000, 3000), "JPEG", quality=80)
    (frame,) = iter_frames(data, draft_size=(500, 400))
    assert (frame.width, frame.height) == (4000, 3000)
    assert frame.image.size == (1000, 750)  # 1/4 scale; 1/8 would be under 400 high
    (half,) = iter_frames(data, draft_size=(2000, 1500))
    assert half.image.size == (2000, 1500)


def test_draft_size_on_multi_picture_jpeg() -> None:
    data = encode(gradient(800, 600), "MPO", save_all=True, append_images=[noise(160, 120)])
    info, _ = open_image(data)
    assert (info.media.mime, info.format, info.frame_count) == ("image/jpeg", "MPO", 2)
    frames = list(iter_frames(data, draft_size=(100, 100)))
    assert [(f.index, f.image.size, f.width, f.height) for f in frames] == [
        (0, (200, 150), 800, 600),
        (1, (160, 120), 160, 120),
    ]


def test_draft_size_has_no_effect_on_png() -> None:
    (frame,) = iter_frames(encode(noise(400, 300), "PNG"), draft_size=(50, 50))
    assert frame.image.size == (400, 300) and (frame.width, frame.height) == (400, 300)


def test_draft_with_orientation_reports_full_rotated_size() -> None:
    exif = Image.Exif()
    exif[0x0112] = 8
    data = encode(gradient(800, 600), "JPEG", exif=exif.tobytes())
    (frame,) = iter_frames(data, DecodeOptions(apply_exif_orientation=True), draft_size=(200, 100))
    assert (frame.width, frame.height) == (600, 800)
    assert frame.image.size == (300, 400)  # draft_size applies to the oriented result


def test_stream_input() -> None:
    data = encode(noise(), "PNG")
    (frame,) = iter_frames(io.BytesIO(data))
    assert frame.image.size == (64, 48)
    stream = io.BytesIO(data)
    info, _ = open_image(stream)  # leaves the stream somewhere past the header
    assert info.width == 64
    assert len(list(iter_frames(stream))) == 1  # a seekable stream is read from its start, as Pillow does


class _Unseekable(io.RawIOBase):
    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        chunk = self._inner.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_unseekable_stream_input() -> None:
    (frame,) = iter_frames(io.BufferedReader(_Unseekable(encode(noise(), "GIF"))))
    assert frame.image.size == (64, 48)


def test_pil_image_input() -> None:
    source = noise()
    (frame,) = iter_frames(source)
    assert frame.index is None and np.array_equal(np.asarray(frame.image), np.asarray(source))
    info, image = open_image(animation("GIF", 3))
    assert [f.index for f in iter_frames(image)] == [0, 1, 2]
    with pytest.raises(ImageTooLargeError):
        list(iter_frames(source, DecodeOptions(max_pixels=100)))


def test_pillow_opens_type_the_sniffer_does_not_know() -> None:
    info, _ = open_image(encode(noise(8, 8), "PPM"))
    assert info.format == "PPM" and info.media.is_image and "ppm" in info.media.extensions


# --------------------------------------------------------------------------------------------------
# hostile input: only matcher errors, nothing on stderr


def _mutations(data: bytes, count: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        mutated = bytearray(data)
        if rng.integers(2):
            mutated = mutated[: int(rng.integers(0, len(mutated)))]
        else:
            for _ in range(int(rng.integers(1, 6))):
                mutated[int(rng.integers(0, len(mutated)))] = int(rng.integers(0, 256))
        out.append(bytes(mutated))
    return out


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "TIFF", "WEBP", "BMP"])
def test_mutated_files_raise_only_decode_errors(fmt: str, capfd: pytest.CaptureFixture[str]) -> None:
    data = animation(fmt, 2) if fmt in ("GIF", "TIFF") else encode(noise(24, 16), fmt)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for sample in _mutations(data, 60, seed=len(fmt)):
            try:
                for frame in iter_frames(sample, DecodeOptions(apply_exif_orientation=True), draft_size=(8, 8)):
                    assert frame.image.mode == "RGB"
            except DecodeError:
                pass
    assert caught == [] and capfd.readouterr().err == ""


_CHILD = """
import sys
from matcher.errors import DecodeError
from matcher.imaging import DecodeOptions, iter_frames
for text in sys.argv[1:]:
    try:
        list(iter_frames(bytes.fromhex(text), DecodeOptions(apply_exif_orientation=True)))
    except DecodeError:
        pass
"""


def test_nothing_reaches_stderr_without_logging_configured() -> None:
    # a fresh interpreter: pytest's own log handlers would hide Python's last-resort handler here
    tiff = encode(Image.new("RGB", (4, 4)), "TIFF")
    spp = b"\x15\x01\x03\x00\x01\x00\x00\x00"  # SamplesPerPixel, SHORT, count 1: Pillow logs an ERROR on 200
    samples = [
        tiff.replace(spp + b"\x03\x00", spp + b"\xc8\x00"),
        bomb_png(30000, 30000),
        bomb_png(10000, 10000),
        encode(noise(16, 16), "JPEG", exif=b"Exif\x00\x00II*\x00\xff\xff\xff\x7f"),
        encode(noise(64, 64), "PNG")[:-300],
    ]
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, *(s.hex() for s in samples)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
