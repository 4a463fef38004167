"""A decoder that cannot be loaded is reported as unavailable, never as a corrupt file.

Pillow loads its format plugins and codecs lazily. In a process that dropped privileges (or lost a
shared library) that load can fail, and Pillow then either does not know the format at all or raises
ImportError while decoding. An examiner must read "no decoder available", not "corrupt header": the
file is fine, the machine is not. The failures are simulated; the images are synthetic.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageFile, features

from matcher.errors import DecodeError, UnsupportedFormatError
from matcher.imaging import iter_frames, open_image


def encoded(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 12), (200, 30, 90)).save(buffer, fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("fmt", "plugins", "mime"),
    [("JPEG", ("JPEG",), "image/jpeg"), ("PNG", ("PNG",), "image/png"), ("GIF", ("GIF",), "image/gif")],
)
def test_a_plugin_that_failed_to_load_is_no_decoder_not_a_corrupt_header(
    monkeypatch: pytest.MonkeyPatch, fmt: str, plugins: tuple[str, ...], mime: str
) -> None:
    Image.init()
    for name in plugins:  # what Image.init() leaves when importing the plugin raised ImportError
        monkeypatch.delitem(Image.OPEN, name)
    data = encoded(fmt)
    for call in (lambda: open_image(data), lambda: list(iter_frames(data))):
        with pytest.raises(UnsupportedFormatError, match=rf"^no decoder available for {mime}"):
            call()


def test_webp_without_its_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    if not features.check("webp"):
        pytest.fail("this Pillow cannot write WebP; the test needs it")  # never skip in silence
    Image.init()
    data = encoded("WEBP")
    monkeypatch.delitem(Image.OPEN, "WEBP")
    with pytest.raises(UnsupportedFormatError, match=r"^no decoder available for image/webp"):
        open_image(data)


def test_import_error_while_opening_says_the_decoder_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    Image.init()
    _, accept = Image.OPEN["PNG"]

    def factory(fp, filename):  # a plugin whose lazy import fails, as after dropping privileges
        raise ImportError("cannot open shared object file: Permission denied")

    monkeypatch.setitem(Image.OPEN, "PNG", (factory, accept))
    with pytest.raises(UnsupportedFormatError) as caught:
        open_image(encoded("PNG"))
    assert str(caught.value) == (
        "no decoder available for image/png: ImportError: cannot open shared object file: Permission denied"
    )


@pytest.mark.parametrize(
    "failure",
    [ImportError("No module named 'PIL._imaging'"), OSError("decoder zip not available")],
    ids=["import-error", "codec-missing"],
)
def test_decoder_missing_while_decoding_says_unavailable(monkeypatch: pytest.MonkeyPatch, failure: Exception) -> None:
    data = encoded("PNG")

    def load(self):
        raise failure

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    with pytest.raises(UnsupportedFormatError, match=r"^no decoder available for image/png: (ImportError|OSError): "):
        list(iter_frames(data))


def test_a_corrupt_header_is_still_called_corrupt() -> None:
    data = bytearray(encoded("PNG"))
    data[16:24] = b"\xff" * 8  # IHDR width and height
    with pytest.raises(DecodeError) as caught:
        open_image(bytes(data))
    assert not isinstance(caught.value, UnsupportedFormatError)
    assert "no decoder" not in str(caught.value)
