"""Hashing files, streams, images and arrays into records: every input answered, nothing lost."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import threading

import imagehash
import numpy as np
import pdqhash
import pytest
from PIL import Image

import matcher
from fixtures import EDITS, bad_inputs, edit, encode, scene
from matcher import HashOptions, hash_bytes, hash_file, hash_image, hash_paths, hash_stream
from matcher.algorithms import registry

ALL = ["pdq", "phash", "dhash", "ahash", "whash"]


def reference_pdq(image: Image.Image) -> str:
    bits, _ = pdqhash.compute(np.ascontiguousarray(np.asarray(image.convert("RGB"))))
    return np.packbits(bits.astype(np.uint8)).tobytes().hex()


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    return bad_inputs(tmp_path_factory.mktemp("bad"))


def only(records):
    assert len(records) == 1
    return records[0]


# --- the bad inputs of the hashing issue, each with a clear answer -------------------------------


def test_zero_byte_file_gets_a_record_with_digests(bad):
    r = only(hash_file(bad["zero_byte.jpg"], ALL))
    assert r.size == 0 and r.sha256 == hashlib.sha256(b"").hexdigest()
    assert "empty" in r.error and r.hashes == {}


@pytest.mark.parametrize("name", ["truncated.jpg", "truncated.png"])
def test_truncated_images_are_errors_never_partial_hashes(bad, name):
    r = only(hash_file(bad[name], ALL))
    assert r.hashes == {} and r.pdq_quality is None
    assert "truncated" in r.error.lower()
    assert r.md5 == hashlib.md5(bad[name].read_bytes()).hexdigest()


def test_text_named_jpg_is_not_an_image_and_flagged(bad):
    r = only(hash_file(bad["text_named.jpg"]))
    assert r.mime == "text/plain" and r.extension_mismatch is True
    # the pipeline's one rule: not an error, digests only, and a note saying so
    assert r.error is None and r.note == "not an image (text/plain); digests only"
    assert r.sha256 is not None and r.hashes == {}


def test_jpeg_named_png_is_hashed_and_flagged(bad):
    r = only(hash_file(bad["jpeg_named.png"]))
    assert r.mime == "image/jpeg" and r.extension_mismatch is True
    assert r.error is None and r.hashes["pdq"].quality >= 50


def test_decompression_bomb_is_an_error_record(bad, capfd):
    r = only(hash_file(bad["bomb.png"], ALL))
    assert r.hashes == {} and r.sha1 is not None
    assert "pixels" in r.error and "limit" in r.error
    assert capfd.readouterr().err == ""


def test_pixel_limit_is_configurable(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(encode(scene(1, 200, 100), "PNG"))
    assert only(hash_file(path, options=HashOptions(max_pixels=20_000))).error is None
    assert "limit" in only(hash_file(path, options=HashOptions(max_pixels=19_999))).error


@pytest.mark.parametrize("name, size", [("one_pixel.png", (1, 1)), ("four_by_nine.png", (4, 9))])
def test_tiny_images_give_the_zero_pdq_hash_and_quality_zero(bad, name, size):
    r = only(hash_file(bad[name], ALL))
    assert r.error is None and (r.width, r.height) == size
    assert str(r.hashes["pdq"]) == "0" * 64 and r.pdq_quality == 0
    assert str(r.hashes["phash"]) == str(imagehash.phash(Image.open(bad[name]).convert("RGB")))


@pytest.mark.parametrize("name", ["cmyk.jpg", "sixteen_bit.png", "palette_transparent.png"])
def test_unusual_modes_are_hashed(bad, name):
    r = only(hash_file(bad[name], ALL))
    assert r.error is None and set(r.hashes) == set(ALL)


def test_sixteen_bit_png_is_scaled_not_clipped(bad):
    image = Image.open(bad["sixteen_bit.png"])
    eight_bit = (np.asarray(image, dtype=np.float64) / 257).round().clip(0, 255).astype(np.uint8)
    r = only(hash_file(bad["sixteen_bit.png"]))
    assert str(r.hashes["pdq"]) == reference_pdq(Image.fromarray(eight_bit))
    assert r.pdq_quality > 0  # a clipped (all-white) image would have quality 0


def test_animated_gif_gives_one_record_per_frame(bad):
    records = hash_file(bad["animated.gif"], ALL)
    assert [r.frame for r in records] == [0, 1, 2]
    assert all(r.frame_count == 3 and r.error is None for r in records)
    assert len({r.sha256 for r in records}) == 1
    assert len({str(r.hashes["pdq"]) for r in records}) == 3


def test_frame_bound_is_configurable(bad):
    records = hash_file(bad["animated.gif"], options=HashOptions(max_frames=2))
    assert [r.frame for r in records] == [0, 1] and records[0].frame_count == 3


def test_unreadable_file_gets_a_record(tmp_path, monkeypatch):
    path = tmp_path / "locked.jpg"
    path.write_bytes(encode(scene(2, 64, 64), "JPEG"))
    real_open = os.open

    def refuse(p, flags, *args, **kwargs):
        if os.fsencode(p) == os.fsencode(path):
            raise PermissionError(13, "Permission denied")
        return real_open(p, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    r = only(hash_file(path))
    assert "permission denied" in r.error.lower() and r.md5 is None and r.hashes == {}


def test_tree_with_symlink_loop_fifo_socket_and_bad_name(tmp_path):
    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.png").write_bytes(encode(scene(3, 80, 60), "PNG"))
    (root / "sub" / "loop").symlink_to("..")
    os.mkfifo(root / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sock"))
    bad_name = os.fsencode(root) + b"/bad\xff.png"
    with open(bad_name, "wb") as fh:
        fh.write(encode(scene(4, 80, 60), "PNG"))
    try:
        result: list = []
        worker = threading.Thread(target=lambda: result.extend(hash_paths([root])), daemon=True)
        worker.start()
        worker.join(30)
        assert not worker.is_alive(), "the walk blocked (a FIFO opened?) or looped"
    finally:
        sock.close()
    by_name = {os.path.basename(r.path): r for r in result}
    assert set(by_name) == {"a.png", "loop", "pipe", "sock", "bad\\xff.png"}
    assert by_name["a.png"].error is None
    assert "not followed" in by_name["loop"].error
    assert "FIFO" in by_name["pipe"].error and by_name["pipe"].md5 is None
    assert by_name["sock"].error and by_name["sock"].md5 is None
    weird = by_name["bad\\xff.png"]
    assert weird.error is None and bytes.fromhex(weird.path_raw_hex) == bad_name


def test_missing_path_gets_a_record(tmp_path):
    r = only(list(hash_paths([tmp_path / "nope.jpg"])))
    assert "no such file" in r.error


# --- what a user relies on ------------------------------------------------------------------------


def test_file_stream_and_bytes_agree_and_digests_are_right(tmp_path):
    data = encode(scene(5, 300, 200, "shapes"), "JPEG", quality=90)
    path = tmp_path / "x.jpg"
    path.write_bytes(data)
    a = only(hash_file(path, ALL))
    b = only(hash_stream(io.BytesIO(data), ALL, name=str(path)))
    c = only(hash_bytes(data, ALL, name=str(path)))
    assert a == b == c
    assert (a.md5, a.sha1, a.sha256) == tuple(hashlib.new(n, data).hexdigest() for n in ("md5", "sha1", "sha256"))
    assert (a.size, a.mime, a.width, a.height) == (len(data), "image/jpeg", 300, 200)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "TIFF"])
def test_file_hashes_equal_the_references_on_the_decoded_pixels(tmp_path, fmt):
    path = tmp_path / f"x.{fmt.lower()}"
    path.write_bytes(encode(scene(6, 333, 250, "landscape"), fmt))
    r = only(hash_file(path, ALL))
    decoded = Image.open(path).convert("RGB")
    assert str(r.hashes["pdq"]) == reference_pdq(decoded)
    assert str(r.hashes["phash"]) == str(imagehash.phash(decoded))
    assert str(r.hashes["whash"]) == str(imagehash.whash(decoded))


def test_hash_image_and_hash_array():
    image = scene(7, 200, 150, "plasma")
    r = only(hash_image(image, ALL))
    a = matcher.hash_array(np.asarray(image), ALL)
    assert r.hashes == a.hashes and r.pdq_quality == a.pdq_quality
    assert str(a.hashes["pdq"]) == reference_pdq(image)
    with pytest.raises(matcher.UsageError):
        matcher.hash_array(np.zeros((5, 5), dtype=np.float64))
    with pytest.raises(matcher.UnknownAlgorithmError):
        hash_image(image, ["nope"])


def test_exif_orientation_is_applied_only_when_asked(tmp_path):
    image = scene(8, 240, 160, "shapes")
    path = tmp_path / "o.jpg"
    path.write_bytes(encode(image, "JPEG", quality=95, exif_orientation=6))
    stored = only(hash_file(path))
    shown = only(hash_file(path, options=HashOptions(apply_exif_orientation=True)))
    assert (stored.width, stored.height) == (240, 160) and (shown.width, shown.height) == (160, 240)
    upright = Image.open(path).convert("RGB").transpose(Image.Transpose.ROTATE_270)
    assert str(shown.hashes["pdq"]) == reference_pdq(upright)
    assert stored.hashes["pdq"] - shown.hashes["pdq"] > 31


@pytest.mark.parametrize("kind", ["landscape", "shapes", "text", "plasma"])
@pytest.mark.parametrize("size", [(4000, 3000), (1600, 1200)])
def test_fast_jpeg_decode_keeps_pdq_within_10_bits(tmp_path, kind, size):
    path = tmp_path / "big.jpg"
    path.write_bytes(encode(scene(9, *size, kind), "JPEG", quality=90))
    full = only(hash_file(path, ["pdq", "phash"]))
    fast = only(hash_file(path, ["pdq", "phash"], options=HashOptions(fast=True)))
    assert full.pdq_quality >= 80 and (fast.width, fast.height) == size
    assert str(full.hashes["pdq"]) == reference_pdq(Image.open(path))
    assert fast.hashes["pdq"] - full.hashes["pdq"] <= 10
    assert fast.hashes["phash"] - full.hashes["phash"] <= 8


# --- the contract every algorithm keeps -----------------------------------------------------------


@pytest.mark.parametrize("name", registry.names())
def test_algorithm_contract(name):
    algorithm = registry.get(name)
    original = scene(11, 320, 240, "landscape")
    h = algorithm.hash_image(original)
    assert h.bit_length == algorithm.bit_length and h.algorithm == name
    assert algorithm.hash_image(original) == h  # deterministic
    assert matcher.Hash.from_hex(name, str(h)) == h and h - h == 0
    for edit_name in ("jpeg75", "resize0.5", "resize2"):
        copy = edit(original, edit_name).convert("RGB")
        assert algorithm.hash_image(copy) - h <= algorithm.default_max_distance, edit_name
    unrelated = [scene(seed, 320, 240, kind) for seed, kind in ((12, "shapes"), (13, "text"), (14, "plasma"))]
    for other in unrelated:
        assert algorithm.hash_image(other) - h > algorithm.default_max_distance
    assert (algorithm.min_quality is not None) == algorithm.has_quality
    assert "jpeg75" in EDITS


def test_view_hashes_only_when_asked_and_not_in_the_record_dict(tmp_path):
    from matcher.index.importing import known_from_hash_record
    from matcher.views import known_view_hashes

    original = scene(41, 320, 240, "shapes")
    path = tmp_path / "a.png"
    path.write_bytes(encode(edit(original, "pad20_black"), "PNG"))
    plain = only(hash_file(path, "pdq,phash"))
    assert plain.views == {}
    viewed = only(hash_file(path, "pdq,phash", options=HashOptions(views=True)))
    assert viewed.to_dict(["pdq", "phash"]) == plain.to_dict(["pdq", "phash"])  # `matcher hash` output unchanged
    assert viewed.hashes == plain.hashes
    assert set(viewed.views) == {"pdq", "phash"}
    assert viewed.views["pdq"] == known_view_hashes(registry.get("pdq"), Image.open(path).convert("RGB"))
    assert "trim" in viewed.views["pdq"] and "top88" in viewed.views["phash"]
    # hashing the trimmed content on its own gives the original's hash
    assert viewed.views["pdq"]["trim"].bits == only(hash_image(original)).hashes["pdq"].bits
    assert only(hash_image(original, options=HashOptions(views=True))).views["pdq"].keys() == {
        "top88",
        "bottom88",
        "crop5",
        "crop10",
        "crop5tl",
        "crop5tr",
        "crop5bl",
        "crop5br",
        "crop10tl",
        "crop10tr",
        "crop10bl",
        "crop10br",
        "rotl4",
        "rotr4",
    }
    known = known_from_hash_record(viewed)
    assert known.views == viewed.views and known.hashes == viewed.hashes
    with pytest.raises(matcher.errors.UsageError, match="views must be True or False"):
        HashOptions(views="yes")  # type: ignore[arg-type]


def test_a_hash_record_carries_every_algorithms_quality_so_an_imported_list_keeps_the_gate(tmp_path):
    """``matcher hash`` wrote only ``pdq_quality``: a list made from its output lost the pHash
    family's detail quality, and a flat image's pHash was searched as if it had detail."""
    from matcher.formats.exports import MatcherHashJsonlFormat

    flat = encode(Image.new("RGB", (200, 150), (90, 90, 90)), "PNG")
    textured = encode(scene(7, 200, 150, "landscape"), "PNG")
    rows = [hash_bytes(data, algorithms=("pdq", "phash"))[0].to_dict(("pdq", "phash")) for data in (flat, textured)]
    assert [row["phash_quality"] for row in rows][0] < registry.get("phash").min_quality <= rows[1]["phash_quality"]
    path = tmp_path / "list.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    known = list(MatcherHashJsonlFormat().read(str(path), strict=True))
    assert [k.hashes["phash"].quality for k in known] == [row["phash_quality"] for row in rows]
