"""Regression tests of scan defects (issue 15): known-good lists counted apart, a failing index search
stops the scan (resumable) instead of passing for per-file errors, a resumed journal keeps every
run's start time and refuses a walk that changed in its scanned part, and query views gated on their
own quality.

All images are synthetic (the repo's ``fixtures`` and generated arrays).
"""

from __future__ import annotations

import errno
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import matcher
from fixtures import encode, scene
from matcher.cli import main
from matcher.errors import IndexStoreError, MatcherError, UsageError
from matcher.hashes import Hash
from matcher.index import KnownIndex
from matcher.index.importing import known_from_hash_record
from matcher.known import KnownRecord
from matcher.scan import JOURNAL_SUFFIX, MANIFEST_SUFFIX, ScanOptions, run_scan, scan
from matcher.scan import driver as scan_driver
from matcher.scan.journal import JOURNAL_VERSION, prepare_journal

ALGORITHMS = ["pdq"]
BOTH = b"a file listed as known-good and on an agency list\n"
AGENCY_ONLY = b"a file on the agency list only\n"
GOOD_ONLY = b"an operating-system file listed as known-good\n"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Evidence (two images whose originals are listed, two unrelated ones, listed and known-good
    files, a text file) and a PDQ index: an agency list (category 1) and a known-good list."""
    base = tmp_path_factory.mktemp("defects")
    evidence, known = base / "evidence", base / "known"
    evidence.mkdir()
    known.mkdir()
    originals = []
    for i, kind in enumerate(("landscape", "shapes")):
        img = scene(700 + i, 240, 180, kind)
        path = known / f"original_{i}.png"
        path.write_bytes(encode(img, "PNG"))
        originals.append(path)
        (evidence / f"img_{i}.jpg").write_bytes(encode(img, "JPEG", quality=80))
    for j, kind in enumerate(("text", "plasma")):
        (evidence / f"unrelated_{j}.jpg").write_bytes(encode(scene(800 + j, 200, 150, kind), "JPEG"))
    (evidence / "a_both.bin").write_bytes(BOTH)
    (evidence / "b_agency.bin").write_bytes(AGENCY_ONLY)
    (evidence / "c_good.bin").write_bytes(GOOD_ONLY)
    (evidence / "d_notes.txt").write_text("meeting notes\n")

    def sha256(data: bytes) -> str:
        return matcher.hash_bytes(data, ALGORITHMS)[0].sha256

    index_path = base / "index"
    with KnownIndex.create(index_path, ALGORITHMS) as index:
        records = [known_from_hash_record(r) for p in originals for r in matcher.hash_file(p, ALGORITHMS)]
        records += [
            KnownRecord(sha256=sha256(BOTH), name="both"),
            KnownRecord(sha256=sha256(AGENCY_ONLY), name="agency"),
        ]
        index.add(records, "agency", category=1)
        index.add(
            [
                KnownRecord(sha256=sha256(data), name=name, extra={"known_good": True})
                for name, data in (("both", BOTH), ("good", GOOD_ONLY))
            ],
            "nsrl",
        )
    reference = base / "reference.jsonl"
    summary = run_scan([str(evidence)], str(index_path), ScanOptions(), str(reference))
    return {"base": base, "evidence": evidence, "index": index_path, "reference": reference, "summary": summary}


def statuses(path: Path) -> dict[str, str]:
    return {Path(r["path"]).name: r["status"] for r in map(json.loads, path.read_text().splitlines())}


# -- 1. known-good lists are counted apart ---------------------------------------------------------


def test_known_good_lists_are_not_counted_as_matches(world, tmp_path):
    assert statuses(world["reference"])["a_both.bin"] == "match"  # the agency list matched it
    assert statuses(world["reference"])["c_good.bin"] == "known_good"
    summary = world["summary"]
    assert summary.files_by_status["match"] == 4 and summary.files_by_status["known_good"] == 1
    assert summary.matches_by_list == {"agency": 4}  # never "nsrl", though a_both.bin is on it too
    assert summary.matches_by_category == {"1": 4}  # the known-good list has no category: no "none"
    assert summary.known_good_by_list == {"nsrl": 2}
    manifest = json.loads(Path(str(world["reference"]) + MANIFEST_SUFFIX).read_text())
    assert manifest["counts"] == summary.to_dict()
    assert manifest["counts"]["known_good_by_list"] == {"nsrl": 2}
    streamed = run_scan(
        [str(world["evidence"])],
        str(world["index"]),
        ScanOptions(),
        None,
        stream=io.StringIO(),
        manifest_path=str(tmp_path / "m.json"),
    )  # no journal: the same counts
    assert (streamed.matches_by_list, streamed.matches_by_category, streamed.known_good_by_list) == (
        summary.matches_by_list,
        summary.matches_by_category,
        summary.known_good_by_list,
    )


# -- 3. a failure of the index itself stops the scan ------------------------------------------------


def scan_cli(world, output: Path, *extra: str) -> list[str]:
    return [
        "scan",
        str(world["evidence"]),
        "--index",
        str(world["index"]),
        "--output",
        str(output),
        "--workers",
        "1",
        "--quiet",
        *extra,
    ]


@pytest.mark.parametrize("fault", [MemoryError(), RuntimeError("Error in faiss::IndexBinary: bad alloc")])
def test_a_failing_index_search_stops_the_scan_which_then_resumes(world, tmp_path, monkeypatch, capsys, fault):
    calls = []

    def failing_search(self, queries, max_distance=None, *, view=None):
        calls.append(view)
        raise fault

    output = tmp_path / "report.jsonl"
    journal = Path(str(output) + JOURNAL_SUFFIX)
    with monkeypatch.context() as patch:
        patch.setattr(KnownIndex, "search", failing_search)
        code = main(scan_cli(world, output))
        err = capsys.readouterr().err
        assert code == 2, err
        assert calls and "the index pdq search failed" in err and "--resume" in err
        assert ("out of memory" if isinstance(fault, MemoryError) else "faiss") in err
        assert journal.exists() and not output.exists()
        # at most the files before the first image (entries are matched in batches: a batch is journaled whole)
        assert len(journal.read_bytes().splitlines()) <= 1 + 4
        # the library says the same, with no journal
        with pytest.raises(IndexStoreError, match="search failed"):
            list(scan([str(world["evidence"])], str(world["index"])))
        with pytest.raises(IndexStoreError):
            run_scan([str(world["evidence"])], str(world["index"]), ScanOptions(), None, stream=io.StringIO())
    code = main(scan_cli(world, output, "--resume"))  # the fault is gone
    assert code == 1, capsys.readouterr().err
    assert output.read_bytes() == world["reference"].read_bytes()
    assert not journal.exists()


def test_a_failing_record_lookup_stops_the_scan(world, monkeypatch):
    def failing_records(self, ids):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(KnownIndex, "records", failing_records)
    with pytest.raises(IndexStoreError, match="record lookup failed"):
        list(scan([str(world["evidence"] / "img_0.jpg")], str(world["index"])))


# -- 4. resume: every run listed, a changed walk refused --------------------------------------------


def interrupted_after(monkeypatch, entries: int) -> None:
    """The journal's write of this run's ``entries + 1``-th entry fails with ENOSPC (a full disk)."""
    real = scan_driver.write_all
    count = [0]

    def write_all(handle, data):
        count[0] += data.startswith(b'{"seq":')
        if count[0] > entries:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(handle, data)

    monkeypatch.setattr(scan_driver, "write_all", write_all)


def test_a_scan_interrupted_twice_lists_all_three_runs(world, tmp_path, monkeypatch):
    output = tmp_path / "report.jsonl"
    args = ([str(world["evidence"])], str(world["index"]), ScanOptions(), str(output))
    with monkeypatch.context() as patch:
        interrupted_after(patch, 2)
        with pytest.raises(MatcherError, match="--resume"):
            run_scan(*args)
    with monkeypatch.context() as patch:
        interrupted_after(patch, 2)
        with pytest.raises(MatcherError, match="--resume"):
            run_scan(*args, resume=True)
    summary = run_scan(*args, resume=True)
    assert summary.resumed_files == 4
    assert output.read_bytes() == world["reference"].read_bytes()
    manifest = json.loads(Path(str(output) + MANIFEST_SUFFIX).read_text())
    runs = manifest["runs_started_at"]
    assert len(runs) == 3 and runs == sorted(set(runs))
    assert runs[0] == manifest["started_at"]


def copy_tree(world, tmp_path: Path) -> Path:
    evidence = tmp_path / "evidence"
    shutil.copytree(world["evidence"], evidence)
    return evidence


def test_resume_refuses_a_walk_changed_in_its_scanned_part(world, tmp_path, monkeypatch):
    evidence = copy_tree(world, tmp_path)
    output = tmp_path / "report.jsonl"
    args = ([str(evidence)], str(world["index"]), ScanOptions(), str(output))
    with monkeypatch.context() as patch:
        interrupted_after(patch, 5)  # a_both, b_agency, c_good, d_notes, img_0 journaled
        with pytest.raises(MatcherError):
            run_scan(*args)
    # one scanned file replaced by a new one at the same place in the walk: the 5th entry is still img_0,
    # but b_added.bin was never scanned
    (evidence / "b_agency.bin").unlink()
    (evidence / "b_added.bin").write_bytes(AGENCY_ONLY)
    with pytest.raises(UsageError, match="no longer walks the same way") as refused:
        run_scan(*args, resume=True)
    assert "first 5 entries" in str(refused.value) and "remove the journal" in str(refused.value)
    assert Path(str(output) + JOURNAL_SUFFIX).exists() and not output.exists()
    # restored, the same resume finishes the scan
    (evidence / "b_added.bin").rename(evidence / "b_agency.bin")
    run_scan(*args, resume=True)
    assert statuses(output) == statuses(world["reference"])


def test_resume_refuses_a_journal_of_another_format(world, tmp_path, capsys):
    output = tmp_path / "report.jsonl"
    journal = Path(str(output) + JOURNAL_SUFFIX)
    old = {
        "matcher_scan_journal": JOURNAL_VERSION - 1,
        "matcher_version": "0.9.0",
        "started_at": "x",
        "runs": ["x"],
        "parameters": {},
    }
    journal.write_text(
        json.dumps(old) + "\n" + json.dumps({"seq": 0, "path": "00", "noatime": None, "records": []}) + "\n"
    )
    code = main(scan_cli(world, output, "--resume"))
    err = capsys.readouterr().err
    assert code == 2
    assert f"format {JOURNAL_VERSION - 1}" in err and "0.9.0" in err and "remove the journal" in err
    assert journal.exists()


def test_resume_of_a_journal_from_before_a_parameter_existed_names_it_and_the_version(tmp_path):
    """A journal written before a choice existed (insets came later) cannot be resumed by asking for
    "the original parameters": the message names the missing choice and the matcher that wrote it."""
    journal = tmp_path / "report.jsonl.journal"
    older = {"matcher_scan_journal": JOURNAL_VERSION, "matcher_version": "0.0.9", "started_at": "x", "runs": ["x"]}
    journal.write_text(json.dumps({**older, "parameters": {"algorithms": ["pdq"]}}) + "\n")
    with pytest.raises(UsageError, match="earlier matcher") as refused:
        prepare_journal(str(journal), {"algorithms": ["pdq"], "insets": True}, True, "y")
    message = str(refused.value)
    assert "0.0.9" in message and "insets" in message and "remove the journal" in message
    with pytest.raises(UsageError, match=r"different parameters \(algorithms\)"):
        prepare_journal(str(journal), {"algorithms": ["phash"]}, True, "y")
    assert journal.exists()


# -- 5. query views gated on their own quality ------------------------------------------------------


def flat_above_a_band(seed: int = 1) -> Image.Image:
    """Flat grey but for a band of noise over the bottom 12 %: a good frame (PDQ quality >= 50) whose
    top 88 % is flat (quality under 50)."""
    pixels = np.full((300, 400, 3), 128, np.uint8)
    band = np.random.default_rng(seed).integers(0, 256, (36, 400, 1), dtype=np.uint8)
    pixels[-36:] = band.repeat(3, axis=2)
    return Image.fromarray(pixels)


def code(seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, 32, dtype=np.uint8).tobytes()


def test_a_flat_region_view_of_a_good_frame_is_not_searched(tmp_path, monkeypatch):
    index_path = tmp_path / "ix"
    with KnownIndex.create(index_path, ALGORITHMS) as index:  # records with region views
        index.add(
            [
                KnownRecord(
                    hashes={"pdq": Hash("pdq", code(1), 90)},
                    views={"pdq": {"top88": Hash("pdq", code(2), 90), "bottom88": Hash("pdq", code(3), 90)}},
                )
            ],
            "agency",
        )
    frame = flat_above_a_band()
    path = tmp_path / "evidence" / "band.png"
    path.parent.mkdir()
    path.write_bytes(encode(frame, "PNG"))
    searched: dict[str | None, list[int | None]] = {}
    real = KnownIndex.search

    def spy(self, queries, max_distance=None, *, view=None):
        searched.setdefault(view, []).extend(q.quality for q in queries)
        return real(self, queries, max_distance, view=view)

    monkeypatch.setattr(KnownIndex, "search", spy)
    (record,) = scan([str(path)], str(index_path))
    assert record.pdq_quality is not None and record.pdq_quality >= 50
    assert "top88" not in searched  # flat: its own quality is under the gate
    assert len(searched["bottom88"]) == 1 and len(searched[None]) >= 8  # the good views still are
    assert all(q >= 50 for qualities in searched.values() for q in qualities)
    assert not any("quality" in note for note in record.notes)
