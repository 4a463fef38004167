"""What matcher's VICS documents say about algorithms and categories (issue 16, "one answer per file").

One naming: every algorithm is written by its display name (``PDQ``, ``pHash``, ...) in a VICS
``HashName`` and in the ``Comments`` text, in the hash-list (``#Media``) writer and in the scan
report (``#Cases``) alike. Only a digest match or a strong perceptual match (within the algorithm's
``strong_max_distance``) precategorizes a file; a weaker one is left for review and says so.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from fixtures import EDITS, scene
from matcher.algorithms import registry
from matcher.formats.registry import read_records, write_records
from matcher.formats.scan_report import SCAN_WRITERS
from matcher.formats.vics import precategorizes, review_note
from matcher.hashes import Hash
from matcher.known import KnownRecord
from matcher.scan_records import ScanMatch, ScanRecord
from tests.conftest import run_matcher

DISPLAY = {"pdq": "PDQ", "phash": "pHash", "dhash": "dHash", "ahash": "aHash", "whash": "wHash"}


def some_hash(name: str, seed: int = 1) -> Hash:
    bits = registry.get(name).bit_length
    return Hash(name, ((seed * 0x9E3779B97F4A7C15) % (1 << bits) or 1).to_bytes(bits // 8, "big"))


def scan_media(*records: ScanRecord) -> list[dict]:
    out = io.StringIO()
    with SCAN_WRITERS["vics"](out, list(DISPLAY)) as writer:
        for record in records:
            writer.write(record)
    media: list[dict] = json.loads(out.getvalue())["value"][0]["Media"]
    return media


def matched(*matches: ScanMatch, path: str = "evidence/a.jpg") -> ScanRecord:
    hashes = {name: some_hash(name) for name in DISPLAY}
    return ScanRecord(path, "match", md5="a" * 32, hashes=hashes, matches=matches)


def test_every_algorithm_is_written_by_its_display_name_in_both_vics_writers() -> None:
    hashes = {name: some_hash(name) for name in DISPLAY}
    out = io.BytesIO()
    write_records([KnownRecord(hashes=hashes, md5="0" * 32)], out, "vics")
    listed = json.loads(out.getvalue())["value"][0]["AlternativeHashes"]
    assert [entry["HashName"] for entry in listed] == list(DISPLAY.values())

    (media,) = scan_media(ScanRecord("a.png", "no_match", hashes=hashes))
    assert [entry["HashName"] for entry in media["AlternativeHashes"]] == list(DISPLAY.values())


def test_documents_written_with_registry_names_still_read() -> None:
    value = some_hash("phash")
    for spelling in ("phash", "pHash", "PHASH"):
        media = {"MD5": "0" * 32, "AlternativeHashes": [{"HashName": spelling, "HashValue": str(value)}]}
        text = json.dumps({"@odata.context": "x#Media", "value": [media]}).encode()
        (record,) = read_records(io.BytesIO(text), "vics")
        assert record.hashes == {"phash": value}


def test_comments_name_the_algorithm_as_the_hash_names_do() -> None:
    (media,) = scan_media(matched(ScanMatch("phash", 2, "orig", 7, "known", 1, None)))
    assert "nearest match pHash distance 2 to record 7 of list 'known'" in media["Comments"]
    (media,) = scan_media(matched(ScanMatch("sha256", 0, None, 3, "known", 1, None)))
    assert "nearest match SHA256 (exact)" in media["Comments"]


@pytest.mark.parametrize("name", list(DISPLAY))
def test_a_weak_perceptual_match_goes_to_review(name: str) -> None:
    algorithm = registry.get(name)
    weak = algorithm.strong_max_distance + 1
    assert weak <= algorithm.default_max_distance  # a match, but not a strong one
    (media,) = scan_media(matched(ScanMatch(name, weak, "orig", 7, "known", 1, "Series A")))
    assert media["IsPrecategorized"] is False
    assert media["Category"] is None and "Series" not in media
    assert (
        f"weak {DISPLAY[name]} match (distance {weak}, strong <= {algorithm.strong_max_distance}): "
        "for review, not precategorized (known category 1)"
    ) in media["Comments"]


@pytest.mark.parametrize("name", list(DISPLAY))
def test_a_strong_perceptual_match_precategorizes(name: str) -> None:
    strong = registry.get(name).strong_max_distance
    (media,) = scan_media(matched(ScanMatch(name, strong, "orig", 7, "known", 2, "Series A")))
    assert media["IsPrecategorized"] is True and media["Category"] == 2 and media["Series"] == "Series A"
    assert "for review" not in media["Comments"]


def test_phash_at_the_match_distance_is_not_precategorized() -> None:
    # the case: two different text cards met at pHash distance 8, and were precategorized
    (media,) = scan_media(matched(ScanMatch("phash", 8, "orig", 7, "known", 1, None)))
    assert media["IsPrecategorized"] is False and media["Category"] is None


def test_digest_matches_precategorize() -> None:
    for digest in ("md5", "sha1", "sha256"):
        (media,) = scan_media(matched(ScanMatch(digest, 0, None, 3, "known", 0, None)))
        assert media["IsPrecategorized"] is True and media["Category"] == 0


def test_a_strong_match_precategorizes_even_when_a_weak_one_is_nearer_in_bits() -> None:
    record = matched(
        ScanMatch("phash", 6, "orig", 7, "known", 1, None),
        ScanMatch("pdq", 8, "orig", 9, "known", 3, "S"),
    )
    (media,) = scan_media(record)
    assert media["IsPrecategorized"] is True and media["Category"] == 3 and media["Series"] == "S"
    assert "for review" not in media["Comments"]


def test_frames_precategorize_by_their_strong_match() -> None:
    frames = [
        ScanRecord("anim.gif", "match", frame=0, frame_count=2, matches=(ScanMatch("pdq", 20, "orig", 1, "L", 2),)),
        ScanRecord("anim.gif", "match", frame=1, frame_count=2, matches=(ScanMatch("pdq", 30, "orig", 2, "L", 1),)),
    ]
    (media,) = scan_media(*frames)
    assert media["IsPrecategorized"] is False and media["Category"] is None
    assert "weak PDQ match (distance 20, strong <= 10)" in media["Comments"]


def test_precategorizes_follows_the_algorithm_facts() -> None:
    for algorithm in registry:
        assert precategorizes(algorithm.name, algorithm.strong_max_distance)
        assert not precategorizes(algorithm.name, algorithm.strong_max_distance + 1)
        assert review_note(algorithm.name, algorithm.strong_max_distance, 1) is None
    assert not precategorizes("photodna", 0)  # an algorithm matcher does not know is never strong
    assert review_note("photodna", 3, None) == "weak photodna match (distance 3): for review, not precategorized"


def text_card(seed: int) -> Image.Image:
    """A white card with five lines of random words in the same place (different words per seed)."""
    rng = random.Random(seed)
    words = ["case", "notes", "meeting", "report", "draft", "alpha", "lorem", "ipsum", "review", "agenda"]
    card = Image.new("RGB", (640, 480), (255, 255, 255))
    draw = ImageDraw.Draw(card)
    font = ImageFont.load_default(14)
    for line in range(5):
        draw.text((20, 20 + line * 24), " ".join(rng.choice(words) for _ in range(6)), fill=(0, 0, 0), font=font)
    return card


def test_scan_vics_precategorizes_only_strong_matches(tmp_path: Path) -> None:
    known, evidence = tmp_path / "known", tmp_path / "evidence"
    known.mkdir()
    evidence.mkdir()
    photo = scene(0, 320, 240, "landscape")
    photo.save(known / "photo.png")
    text_card(2).save(known / "card.png")
    EDITS["crop5"](photo).convert("RGB").save(evidence / "photo-crop.png")
    text_card(2).save(evidence / "card-copy.jpg", quality=90)
    text_card(10).save(evidence / "other-card.png")  # other words in the same place
    phash = registry.get("phash")
    crop_distance = phash.hash_image(photo) - phash.hash_image(Image.open(evidence / "photo-crop.png"))
    assert phash.strong_max_distance < crop_distance <= phash.default_max_distance  # a weak pHash match
    assert phash.hash_image(text_card(2)) - phash.hash_image(text_card(10)) <= phash.default_max_distance

    index = tmp_path / "index"
    assert run_matcher("index", "create", index, "-a", "pdq,phash").returncode == 0
    add = ("--list", "known", "--category", "1", "--no-views", "-q")  # the crop meets the photo itself
    assert run_matcher("index", "add", index, known, *add).returncode == 0
    report = tmp_path / "report.json"
    options = ("--no-regions", "--no-trim-borders", "--format", "vics", "--output", report, "-q")
    result = run_matcher("scan", evidence, "--index", index, *options)
    assert result.returncode == 1, result.stderr.decode()
    media = {m["MediaFiles"][0]["FileName"]: m for m in json.loads(report.read_text())["value"][0]["Media"]}

    crop = media["photo-crop.png"]
    assert crop["IsPrecategorized"] is False and crop["Category"] is None
    assert f"weak pHash match (distance {crop_distance}, strong <= 4): for review" in crop["Comments"]
    copy = media["card-copy.jpg"]  # PDQ tells the card apart and finds its copy
    assert copy["IsPrecategorized"] is True and copy["Category"] == 1
    other = media["other-card.png"]  # pHash cannot tell such cards apart: its hash is not matched on
    assert other["IsPrecategorized"] is False and other["Category"] is None
    assert "matcher scan: no_match" in other["Comments"] and "phash not matched: quality" in other["Comments"]
    for one in media.values():
        assert [entry["HashName"] for entry in one["AlternativeHashes"]] == ["PDQ", "pHash"]
