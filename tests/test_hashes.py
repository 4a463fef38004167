"""The Hash value: hex round trip, Hamming distance, equality, and interchange with imagehash."""

from __future__ import annotations

import imagehash
import pytest
from PIL import Image

from matcher import Hash, HashFormatError, hash_image, registry
from tests.conftest import smooth_rgb

PDQ_HEX = "df083a3b12a10d32646ae5944b56cd29f4c0ed4d3ddbc61c2abf167ccc2d15d6"


def test_hex_round_trip_and_case():
    h = Hash.from_hex("pdq", PDQ_HEX)
    assert str(h) == PDQ_HEX == h.hex()
    assert Hash.from_hex("pdq", "  " + PDQ_HEX.upper() + "\n") == h
    assert h.bits == bytes.fromhex(PDQ_HEX)
    assert h.bit_length == 256


def test_distance_and_subtraction():
    a = Hash.from_hex("pdq", "0" * 64)
    b = Hash.from_hex("pdq", "f" + "0" * 62 + "1")
    assert a.distance(b) == b - a == 5
    assert a - a == 0


def test_equality_ignores_quality_and_hashes_alike():
    a = Hash("pdq", bytes(32), quality=90)
    b = Hash("pdq", bytes(32), quality=10)
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != Hash("phash", bytes(32))


@pytest.mark.parametrize(
    "text, why",
    [("", "empty"), ("xyz", "not hex"), ("abc", "odd length"), ("00" * 31, "too short"), ("00" * 33, "too long")],
)
def test_malformed_hex_is_refused_with_a_clear_error(text, why):
    for read in (lambda: registry.hash_from_hex("pdq", text), lambda: Hash.from_hex("pdq", text, bit_length=256)):
        with pytest.raises(HashFormatError) as err:
            read()
        assert "pdq" in str(err.value), why


def test_from_hex_checks_the_length_only_when_told_it():
    """Hash (a leaf module) knows no algorithm: the registry, or the caller, gives the length."""
    assert Hash.from_hex("pdq", "00" * 31).bit_length == 248
    assert registry.hash_from_hex("custom", "00" * 3).bit_length == 24  # not registered: not checked
    assert registry.hash_from_hex("phash", "ab" * 8, 7) == Hash("phash", b"\xab" * 8)
    with pytest.raises(HashFormatError, match="16 hex digits"):
        registry.hash_from_hex("phash", "ab" * 9)


def test_comparing_different_algorithms_or_lengths_is_an_error():
    with pytest.raises(HashFormatError):
        Hash("pdq", bytes(32)).distance(Hash("phash", bytes(8)))
    with pytest.raises(HashFormatError):
        Hash("custom", bytes(8)).distance(Hash("custom", bytes(16)))


def test_imagehash_hex_is_interchangeable():
    image = Image.fromarray(smooth_rgb(3, 120, 160))
    ours = hash_image(image, ["phash", "dhash", "ahash", "whash"])[0].hashes
    for name, function in [
        ("phash", imagehash.phash),
        ("dhash", imagehash.dhash),
        ("ahash", imagehash.average_hash),
        ("whash", imagehash.whash),
    ]:
        theirs = function(image)
        assert str(ours[name]) == str(theirs), name
        assert Hash.from_hex(name, str(theirs)) == ours[name]
        assert imagehash.hex_to_hash(str(ours[name])) == theirs


def test_hex_typed_by_a_user_is_checked_against_the_algorithm(tmp_path, capsys):
    """The command line reads hashes with the registry's length check: a short PDQ hash in a query
    batch is that line's error (the others are answered), and ``compare`` refuses it clearly."""
    import json

    from matcher.cli import main

    assert main(["index", "create", str(tmp_path / "idx")]) == 0
    assert main(["index", "query", str(tmp_path / "idx"), "ab" * 31, "ab" * 32]) == 0
    short, good = (json.loads(line) for line in capsys.readouterr().out.splitlines()[-2:])
    assert "64 hex digits" in short["error"] and good["error"] is None
    image = tmp_path / "a.png"
    Image.fromarray(smooth_rgb(1, 40, 40)).save(image)
    assert main(["compare", str(image), "ab" * 31]) == 2
    assert "64 hex digits" in capsys.readouterr().err
