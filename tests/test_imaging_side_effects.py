"""Importing matcher changes no process-wide state, and decoding leaves none behind.

An application that imports matcher keeps its own warnings filters and logging set-up. Decoding
still keeps Pillow's warnings and corrupt-header logs off stderr (tests/test_imaging.py checks the
clear errors and the silence), only for as long as a decode runs, also with decodes in threads.
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import threading
import warnings

import pytest
from PIL import Image

from matcher.errors import DecodeError, ImageTooLargeError
from matcher.imaging import DecodeOptions, iter_frames, open_image

_IMPORT_CHILD = """
import json, logging, warnings
import numpy, PIL.Image  # numpy adds filters of its own on import: the baseline is taken after it
def state():
    return {
        "filters": [repr(f) for f in warnings.filters],
        "showwarning": repr(warnings.showwarning),
        "pil_handlers": [repr(h) for h in logging.getLogger("PIL").handlers],
        "root_handlers": [repr(h) for h in logging.getLogger().handlers],
    }
before = state()
import matcher, matcher.imaging, matcher.hashing, matcher.scan, matcher.cli  # everything a user may import
print(json.dumps([before, state()]))
"""


def test_importing_matcher_changes_no_warnings_filter_or_logging_handler() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_CHILD], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    before, after = json.loads(result.stdout)
    assert after == before


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 20, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height (Pillow warns above 89,478,485 pixels)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")
    )


def global_state() -> tuple[list[object], object, list[logging.Handler]]:
    return list(warnings.filters), warnings.showwarning, list(logging.getLogger("PIL").handlers)


def test_decoding_leaves_no_state_behind_and_still_refuses_a_bomb() -> None:
    before = global_state()
    with pytest.raises(ImageTooLargeError, match=r"10000x10000 = 100000000 pixels"):
        open_image(bomb_png(10000, 10000), DecodeOptions(max_pixels=50_000_000))
    with pytest.raises(DecodeError):
        list(iter_frames(png(64, 64)[:-300]))
    (frame,) = iter_frames(png(8, 8))
    assert frame.image.size == (8, 8)
    assert global_state() == before


def test_warnings_from_other_code_are_untouched_while_a_decode_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The guard logs Pillow's warnings only: the application's own still reach it, filters and all."""
    from matcher import imaging

    real_to_rgb = imaging.to_rgb

    def to_rgb(image: Image.Image) -> Image.Image:  # runs inside the decode, as other threads' code may
        warnings.warn("the application's own warning", UserWarning, stacklevel=1)
        return real_to_rgb(image)

    monkeypatch.setattr(imaging, "to_rgb", to_rgb)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (frame,) = iter_frames(png(8, 8))
    assert [str(w.message) for w in caught] == ["the application's own warning"]
    assert frame.image.size == (8, 8)


def test_concurrent_decodes_in_threads_leave_no_state_behind() -> None:
    """Overlapping decodes enter and leave the guard in any order; the state comes back once, intact."""
    before = global_state()
    samples = [png(32, 32), bomb_png(10000, 10000), png(64, 64)[:-300]]
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work(seed: int) -> None:
        start.wait()
        for k in range(40):
            data = samples[(seed + k) % len(samples)]
            try:
                list(iter_frames(data, DecodeOptions(max_pixels=50_000_000)))
            except DecodeError:
                pass
            except BaseException as exc:  # noqa: BLE001 - handed to the test
                errors.append(exc)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert global_state() == before
