"""The one read-and-hash pipeline: one rule for what is not decoded, the same in every command, and
the same frame features whichever command asks.

All inputs are generated here (synthetic images and text).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import matcher
from fixtures import encode, scene
from matcher import files
from matcher.cli import main
from matcher.cluster import cluster_paths
from matcher.compare import compare
from matcher.errors import UnsupportedFormatError
from matcher.index import KnownIndex
from matcher.index.importing import known_from_hash_record
from matcher.pipeline import FeatureRequest, HashOptions, QueryViews, read_entry
from matcher.scan import ScanOptions, scan

NOTE = "not an image (text/plain); digests only"


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    base = tmp_path_factory.mktemp("pipeline")
    evidence = base / "evidence"
    evidence.mkdir()
    image = scene(71, 160, 120, "landscape")
    (evidence / "a.png").write_bytes(encode(image, "PNG"))
    (evidence / "text_named.jpg").write_text("meeting notes, not a picture at all\n")
    (evidence / "empty.jpg").write_bytes(b"")
    index = base / "index"
    known = KnownIndex.create(index, ["pdq"])
    known.add([known_from_hash_record(r) for r in matcher.hash_file(evidence / "a.png")], "agency")
    known.close()
    return {"base": base, "evidence": evidence, "index": index, "image": image}


def by_name(records, key="path"):
    return {Path(getattr(r, key)).name: r for r in records}


def test_a_file_that_is_not_an_image_gets_digests_and_one_note_in_every_command(tree, capsys):
    text = tree["evidence"] / "text_named.jpg"
    hashed = matcher.hash_file(text)
    assert len(hashed) == 1 and hashed[0].error is None and hashed[0].note == NOTE and hashed[0].sha256

    scanned = by_name(scan([str(tree["evidence"])], tree["index"], ScanOptions()))
    record = scanned["text_named.jpg"]
    assert record.status == "no_match" and record.error is None and NOTE in record.notes
    assert record.sha256 == hashed[0].sha256

    clustered = cluster_paths([str(tree["evidence"])])
    member = next(m for m in clustered.members() if Path(m.path).name == "text_named.jpg")
    assert member.status == "skipped" and member.item.error is None and NOTE in member.notes

    with pytest.raises(UnsupportedFormatError, match="text_named.jpg: not an image"):
        compare(text, tree["evidence"] / "a.png")

    code = main(["hash", str(text)])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["error"] is None and out["note"] == NOTE


def test_an_empty_file_is_an_error_in_every_command(tree):
    empty = tree["evidence"] / "empty.jpg"
    assert matcher.hash_file(empty)[0].error == "empty file (0 bytes)"
    record = by_name(scan([str(tree["evidence"])], tree["index"], ScanOptions()))["empty.jpg"]
    assert record.status == "error" and record.error == "empty file (0 bytes)"
    member = next(m for m in cluster_paths([str(tree["evidence"])]).members() if Path(m.path).name == "empty.jpg")
    assert member.status == "error"
    with pytest.raises(UnsupportedFormatError, match="empty"):
        compare(empty, tree["evidence"] / "a.png")


def test_every_command_hashes_a_frame_the_same(tree):
    path = tree["evidence"] / "a.png"
    hashed = matcher.hash_file(path)[0].hashes["pdq"]
    entry = next(files.walk([str(path)]))
    scanned = read_entry(entry, FeatureRequest(("pdq",), query_views=QueryViews()), HashOptions())
    clustered = read_entry(entry, FeatureRequest(("pdq",), variants=True), HashOptions())
    assert scanned.frames[0].hashes["pdq"] == hashed == clustered.frames[0].hashes["pdq"]
    assert scanned.frames[0].variants["pdq"]["orig"] == hashed
    assert set(clustered.frames[0].variants["pdq"]) == set(matcher.variants.VARIANT_NAMES)
    [exact] = [p for p in compare(path, path).pairs if p.variant == "orig"]
    assert exact.distance == 0
    record = by_name(scan([str(path)], tree["index"], ScanOptions()))["a.png"]
    assert record.hashes["pdq"] == hashed and record.status == "match"


def test_no_module_but_the_pipeline_reads_or_decodes_files():
    """Reading (files.read_file/read_stream) and decoding (imaging.open_image/iter_frames) are called
    from matcher/pipeline.py only (files.py and imaging.py define them)."""
    root = Path(matcher.__file__).parent
    callers = []
    for source in sorted(root.rglob("*.py")):
        if source.name in ("pipeline.py", "files.py", "imaging.py"):
            continue
        text = source.read_text(encoding="utf-8")
        for call in ("read_file(", "read_stream(", "open_image(", "iter_frames("):
            if f"files.{call}" in text or f"imaging.{call}" in text:
                callers.append(f"{source.relative_to(root)}: {call}")
    assert callers == []  # hashing hands its reader to pipeline.read_source; it reads nothing itself


def test_a_file_swapped_for_a_link_after_the_walk_is_never_read_by_the_scan(tree, tmp_path, monkeypatch):
    """Bug: a file swapped for a symbolic link between the walk and the read was followed, and the
    target outside the evidence tree was digested and reported under the evidence name."""
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    victim = evidence / "b.png"
    victim.write_bytes((tree["evidence"] / "a.png").read_bytes())
    outside = tmp_path / "outside.png"  # matches the index: it must never be read as b.png
    outside.write_bytes((tree["evidence"] / "a.png").read_bytes())
    real = files.read_entry

    def swap_then_read(entry, **kwargs):
        if entry.path.endswith(b"b.png"):
            victim.unlink()
            victim.symlink_to(outside)
        return real(entry, **kwargs)

    monkeypatch.setattr(files, "read_entry", swap_then_read)
    [record] = list(scan([str(evidence)], tree["index"], ScanOptions()))
    assert record.status == "skipped" and record.sha256 is None and not record.matches
    assert "symbolic link" in record.notes[0]
