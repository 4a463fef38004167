"""`matcher compare KNOWN EVIDENCE` (the installed command) gives the decision `matcher scan` gives for
EVIDENCE against an index holding KNOWN (`matcher index add`): the same match or not, the same best
distance, variant and view, and exit 1 exactly when it matches. Issue 16: compare said "no match"
(exit 0) for a 10 % crop that scan matched. Synthetic images only (fixtures), 200x150."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fixtures import edit, encode, scene
from matcher.hashing import hash_file
from tests.conftest import run_matcher

W, H = 200, 150
#: evidence file -> (known image, whether the scan matches it)
CASES = {
    "crop10.png": ("known.png", True),  # a 10 % centred crop
    "caption.png": ("known.png", True),  # a caption band over the bottom
    "letterbox.png": ("known.png", True),  # black bars top and bottom
    "rotated.png": ("known.png", True),  # rotated 90 degrees
    "unrelated.png": ("known.png", False),
    "flat_copy.jpg": ("flat.png", False),  # the same flat image, kept out by the quality gate
}


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Each known image in its own index (`matcher index add`), its evidence scanned (`matcher scan`)."""
    root = tmp_path_factory.mktemp("compare_cli")
    original = scene(11, W, H, "landscape")
    flat = scene(13, W, H, "lowtexture")
    images = {
        "known.png": encode(original, "PNG"),
        "flat.png": encode(flat, "PNG"),
        "crop10.png": encode(edit(original, "crop10"), "PNG"),
        "caption.png": encode(edit(original, "caption"), "PNG"),
        "letterbox.png": encode(edit(original, "pad20_black"), "PNG"),
        "rotated.png": encode(edit(original, "rotate90"), "PNG"),
        "unrelated.png": encode(scene(12, W, H, "shapes"), "PNG"),
        "flat_copy.jpg": encode(flat, "JPEG", quality=90),
    }
    known_dir, evidence_dirs = root / "known", {}
    known_dir.mkdir()
    for name in ("known.png", "flat.png"):
        (known_dir / name).write_bytes(images[name])
    reports: dict[str, dict[str, Any]] = {}
    for known in ("known.png", "flat.png"):
        evidence = root / f"evidence-{known}"
        evidence.mkdir()
        evidence_dirs[known] = evidence
        for name, (owner, _) in CASES.items():
            if owner == known:
                (evidence / name).write_bytes(images[name])
        index = root / f"index-{known}"
        for args in (
            ("index", "create", index),
            ("index", "add", index, known_dir / known, "--list", "demo", "--quiet"),
        ):
            done = run_matcher(*args)
            assert done.returncode == 0, done.stderr.decode()
        report = root / f"report-{known}.jsonl"
        done = run_matcher("scan", evidence, "--index", index, "--output", report, "--workers", "1", "--quiet")
        assert done.returncode in (0, 1), done.stderr.decode()
        for line in report.read_text().splitlines():
            record = json.loads(line)
            reports[Path(record["path"]).name] = record
    return {"root": root, "known": known_dir, "evidence": evidence_dirs, "reports": reports}


@pytest.mark.parametrize("name", list(CASES))
def test_compare_agrees_with_scan(scanned: dict[str, Any], name: str) -> None:
    known, expected = CASES[name]
    report = scanned["reports"][name]
    assert (report["status"] == "match") is expected  # the scan's own decision, as the case says

    done = run_matcher("compare", scanned["known"] / known, scanned["evidence"][known] / name, "--json")
    assert done.returncode == (1 if expected else 0), done.stderr.decode()
    result = json.loads(done.stdout)
    assert result["match"] is expected
    assert [r["status"] for r in result["scan"]] == [report["status"]]
    best = result["best"]["pdq"]
    if expected:  # the same best pair at the same distance
        scan_best = report["matches"][0]
        assert (best["distance"], best["variant"], best["view"]) == (
            scan_best["distance"],
            scan_best["variant"],
            scan_best["view"],
        )
        assert best["within"] is True and result["reason"].startswith("match: pdq distance")
    else:  # nothing within the threshold, as the scan found nothing
        assert report["matches"] == [] and result["scan"][0]["matches"] == []
        assert best["within"] is False
        assert result["reason"].startswith("no match: ")
    if name == "flat_copy.jpg":
        assert "quality gate" in result["reason"] and not best["searched"]
        assert any("quality" in note for note in report["notes"])
    if name == "unrelated.png":
        assert f"nearest distance {best['distance']} > 31" in result["reason"]


def test_hash_inputs_have_no_views_and_say_so(scanned: dict[str, Any]) -> None:
    """A known hash (HEX or ALGORITHM:HEX) is a record without views: the 10 % crop is not matched against
    it, as a scan against a hash list does not match it; the letterbox still is (borders are trimmed
    on the evidence side)."""
    hex_text = str(hash_file(scanned["known"] / "known.png")[0].hashes["pdq"])
    evidence = scanned["evidence"]["known.png"]
    crop = run_matcher("compare", hex_text, evidence / "crop10.png", "--json")
    assert crop.returncode == 0, crop.stderr.decode()
    result = json.loads(crop.stdout)
    assert result["known"]["kind"] == "hash" and any("no views" in n for n in result["known"]["notes"])
    letterbox = run_matcher("compare", f"pdq:{hex_text}", evidence / "letterbox.png")
    assert letterbox.returncode == 1, letterbox.stderr.decode()
    assert "no views" in letterbox.stdout.decode()
    both = run_matcher("compare", hex_text, hex_text)
    assert both.returncode == 1 and "pdq distance 0 <= 31" in both.stdout.decode()


def test_table_scan_options_and_errors(scanned: dict[str, Any]) -> None:
    known = scanned["known"] / "known.png"
    evidence = scanned["evidence"]["known.png"]
    # the scan's switches: without trimmed borders the letterbox is no longer matched
    done = run_matcher(
        "compare", known, evidence / "letterbox.png", "--no-trim-borders", "--no-local", "--max-distance", "pdq=20"
    )
    assert done.returncode == 0, done.stderr.decode()
    lines = done.stdout.decode().splitlines()
    assert lines[0] == "decision  no match"
    assert lines[1].startswith("reason    no match: pdq: nearest distance ") and "> 20" in lines[1]
    assert (
        "settings  pdq max distance 20; rotations on, trim borders off, regions on, insets on, local features off"
        in lines
    )
    header = lines.index(next(line for line in lines if line.startswith("algorithm")))
    assert lines[header].split() == [
        "algorithm",
        "frame",
        "variant",
        "record",
        "view",
        "distance",
        "max",
        "within",
        "note",
    ]
    assert not any(line.split()[2].startswith("trim") for line in lines[header + 1 :])
    text = scanned["root"] / "notes.txt"
    text.write_text("not an image\n")
    done = run_matcher("compare", known, text)
    assert done.returncode == 2 and "notes.txt: not an image" in done.stderr.decode()
    done = run_matcher("compare", known, "not-a-hash-or-file")
    assert done.returncode == 2 and "neither an existing file nor a hash" in done.stderr.decode()
