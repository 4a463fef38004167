"""The `matcher hash` command: records, formats, exit codes, and an untouched evidence tree."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures import bad_inputs, encode, scene
from matcher.cli import main


def snapshot(root: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file under root with its size, mtime (ns) and content."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            content = open(p, "rb").read() if os.path.isfile(p) and not os.path.islink(p) else b""
            out[p] = (st.st_size, st.st_mtime_ns, content)
    return out


@pytest.fixture()
def evidence(tmp_path):
    root = tmp_path / "evidence"
    bad_inputs(root / "bad")
    (root / "good").mkdir()
    (root / "good" / "=cmd.png").write_bytes(encode(scene(1, 120, 90), "PNG"))
    (root / "good" / "b.jpg").write_bytes(encode(scene(2, 120, 90, "shapes"), "JPEG"))
    return root


def run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_jsonl_has_one_record_per_file_and_frame_and_leaves_evidence_untouched(evidence, capsys):
    before = snapshot(evidence)
    code, out, err = run(["hash", str(evidence), "--algorithms", "pdq,phash"], capsys)
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    files = [p for p, v in before.items() if os.path.isfile(p)]
    gif = [r for r in records if r["path"].endswith("animated.gif")]
    assert len(records) == len(files) + len(gif) - 1
    assert {r["path"] for r in records} == set(files)
    required = {
        "path",
        "frame",
        "size",
        "mime",
        "width",
        "height",
        "md5",
        "sha1",
        "sha256",
        "pdq",
        "phash",
        "pdq_quality",
        "error",
    }
    assert all(required <= set(r) for r in records)
    assert [r["frame"] for r in gif] == [0, 1, 2]
    errors = {Path(r["path"]).name: r["error"] for r in records if r["error"]}
    assert set(errors) >= {"zero_byte.jpg", "truncated.jpg", "truncated.png", "bomb.png"}
    notes = {Path(r["path"]).name: r["note"] for r in records if r["note"]}
    assert notes["text_named.jpg"] == "not an image (text/plain); digests only"  # not an error: digests only
    assert all(r["md5"] for r in records)  # every file's bytes were readable here
    assert snapshot(evidence) == before


def test_csv_is_safe_against_formula_injection(evidence, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(evidence / "good")
    out_file = tmp_path / "report.csv"
    code, _, err = run(["hash", "=cmd.png", "b.jpg", "--format", "csv", "--output", str(out_file)], capsys)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out_file.read_text(encoding="utf-8"))))
    assert [r["path"] for r in rows] == ["'=cmd.png", "b.jpg"]
    assert all(len(r["pdq"]) == 64 and r["error"] == "" and r["frame"] == "" for r in rows)


def test_exit_codes_for_bad_usage(evidence, tmp_path, capsys):
    assert run(["hash", str(evidence), "--algorithms", "nope"], capsys)[0] == 2
    with pytest.raises(SystemExit) as exc:
        main(["hash"])
    assert exc.value.code == 2
    code, _, err = run(["hash", str(evidence), "--output", str(evidence / "good" / "out.jsonl")], capsys)
    assert code == 2 and "inside the evidence path" in err
    assert not (evidence / "good" / "out.jsonl").exists()
    code, _, err = run(["hash", str(evidence), "--output", str(tmp_path / "no" / "dir" / "x.jsonl")], capsys)
    assert code == 2 and "cannot write output" in err


def test_hash_output_never_overwrites_an_evidence_file(evidence, capsys):
    target = evidence / "good" / "b.jpg"
    before = target.read_bytes()
    code, _, err = run(["hash", str(target), "--output", str(target)], capsys)
    assert code == 2 and "inside the evidence path" in err
    assert target.read_bytes() == before


def test_module_entry_point_runs(evidence, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "matcher", "hash", str(evidence / "good" / "b.jpg"), "-a", "pdq"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("matcher hash: 1 files, 1 records, 0 errors in ")  # the summary, nothing else
    assert done.stderr.splitlines()[1:] == ["exit 0: hashing completed"]  # and the line saying what the status means
    record = json.loads(done.stdout)
    assert len(record["pdq"]) == 64 and record["pdq_quality"] >= 50


def test_compare_reports_variant_and_exit_code(tmp_path, capsys):
    from fixtures import edit

    original = scene(21, 200, 150, "landscape")
    (tmp_path / "a.png").write_bytes(encode(original, "PNG"))
    (tmp_path / "b.png").write_bytes(encode(edit(original, "mirror"), "PNG"))
    (tmp_path / "c.png").write_bytes(encode(scene(22, 200, 150, "shapes"), "PNG"))
    code, out, _ = run(["compare", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--json"], capsys)
    result = json.loads(out)
    assert code == 1 and result["match"] and result["best"]["pdq"]["variant"] == "flipy"
    code, out, _ = run(["compare", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--no-rotations"], capsys)
    assert code == 0 and "orig" in out
    code, _, _ = run(["compare", str(tmp_path / "a.png"), str(tmp_path / "c.png")], capsys)
    assert code == 0
    code, _, err = run(["compare", str(tmp_path / "a.png"), "not-a-hash-or-file"], capsys)
    assert code == 2 and "neither an existing file nor a hash" in err


def test_scan_exif_orientation_option(tmp_path, capsys):
    from PIL import Image

    original = scene(31, 240, 160, "landscape")
    known = tmp_path / "known"
    known.mkdir()
    (known / "k.png").write_bytes(encode(original, "PNG"))
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    # stored turned a quarter counter-clockwise, with EXIF orientation 6 (display: turn 90 clockwise)
    stored = original.transpose(Image.Transpose.ROTATE_90)
    (evidence / "e.jpg").write_bytes(encode(stored, "JPEG", quality=95, exif_orientation=6))
    index = tmp_path / "idx"
    assert run(["index", "create", str(index)], capsys)[0] == 0
    assert run(["index", "add", str(index), str(known), "--list", "k"], capsys)[0] == 0
    # global hashes only: local features (rotation-invariant) find the turned copy whatever the EXIF says
    base = ["scan", str(evidence), "--index", str(index), "--no-rotations", "--no-local", "--workers", "1", "--quiet"]
    code, out, _ = run(base, capsys)
    assert code == 0 and json.loads(out)["status"] == "no_match"  # the stored pixels are turned
    code, out, _ = run([*base, "--exif-orientation"], capsys)
    record = json.loads(out)
    assert code == 1 and record["status"] == "match" and record["matches"][0]["variant"] == "orig"
    assert (record["width"], record["height"]) == (240, 160)


def test_scan_vics_report_carries_case_fields(tmp_path, capsys):
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    (evidence / "a.png").write_bytes(encode(scene(41, 120, 90), "PNG"))
    index = tmp_path / "idx"
    run(["index", "create", str(index)], capsys)
    report = tmp_path / "report.json"
    code, _, err = run(
        [
            "scan",
            str(evidence),
            "--index",
            str(index),
            "-f",
            "vics",
            "-o",
            str(report),
            "-j",
            "1",
            "--quiet",
            "--case",
            "CaseNumber=2026-17",
            "--case",
            "Examiner=J. Doe",
        ],
        capsys,
    )
    assert code == 0, err
    case = json.loads(report.read_text())["value"][0]
    assert case["CaseNumber"] == "2026-17" and case["Examiner"] == "J. Doe" and len(case["Media"]) == 1
    code, _, err = run(["scan", str(evidence), "--index", str(index), "--case", "CaseNumber=1", "-q"], capsys)
    assert code == 2 and "VICS" in err
