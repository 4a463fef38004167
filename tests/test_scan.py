"""`matcher scan` and matcher.scan: one record per file, the right matches and variants, an untouched
evidence tree, worker-count independence, resuming after SIGKILL, exit codes and report formats.

All images are synthetic (the repo's ``fixtures``).
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import matcher
from fixtures import bad_inputs, edit, encode, scene
from matcher.cli import main
from matcher.index import KnownIndex
from matcher.index.importing import known_from_hash_record
from matcher.known import KnownRecord
from matcher.scan import JOURNAL_SUFFIX, MANIFEST_SUFFIX, ScanOptions, run_scan, scan
from matcher.scan.engines import local as local_engine
from tests.fault_injection import kill_after_command

ROOT = Path(__file__).resolve().parent.parent
ALGORITHMS = ["pdq", "phash"]
# edit name -> the variant that must match (how the evidence is transformed relative to the original)
EXPECTED_VARIANT = {
    "jpeg75": "orig",
    "resize0.5": "orig",
    "greyscale": "orig",
    "mirror": "flipy",
    "flip": "flipx",
    "rotate90": "rot90",
    "rotate180": "rot180",
    "rotate270": "rot270",
}
KINDS = ("landscape", "shapes", "text")
#: (kind, edit) of copies no algorithm matches: halving a 240 x 180 text card moves its PDQ past 31,
#: and a text card's pHash is not matched on (its detail is finer than pHash sees: quality < 50)
UNMATCHED_EDITS = {("text", "resize0.5")}
KNOWN_FILE = b"a document whose SHA-256 is on a hash list\n" * 3
GOOD_FILE = b"an operating-system file listed as known-good\n"


def snapshot(root: Path) -> dict[str, tuple]:
    """lstat facts (and content of regular files) of everything under root; FIFOs are never opened."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            content = b""
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as handle:
                    content = handle.read()
            out[path] = (st.st_mode, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, content)
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """An evidence tree and an index of its originals; returns a dict of paths and facts."""
    base = tmp_path_factory.mktemp("scan")
    evidence, known = base / "evidence", base / "known"
    (evidence / "edits").mkdir(parents=True)
    (evidence / "other").mkdir()
    known.mkdir()
    originals = []
    for i, kind in enumerate(KINDS):
        img = scene(300 + i, 240, 180, kind)
        path = known / f"original_{i}.png"
        path.write_bytes(encode(img, "PNG"))
        originals.append(path)
        for name in EXPECTED_VARIANT:
            edited = edit(img, name)
            if name == "jpeg75":
                (evidence / "edits" / f"o{i}_{name}.jpg").write_bytes(encode(edited, "JPEG", quality=75))
            else:
                (evidence / "edits" / f"o{i}_{name}.png").write_bytes(encode(edited, "PNG"))
    (evidence / "copy_of_original_0.png").write_bytes(originals[0].read_bytes())
    for j in range(3):
        (evidence / "other" / f"unrelated_{j}.jpg").write_bytes(encode(scene(900 + j, 200, 150, KINDS[j]), "JPEG"))
    (evidence / "other" / "notes.txt").write_text("meeting notes, nothing to see\n")
    (evidence / "other" / "blob.bin").write_bytes(bytes(range(256)) * 4)
    (evidence / "other" / "listed.dat").write_bytes(KNOWN_FILE)
    (evidence / "other" / "system.dll").write_bytes(GOOD_FILE)
    bad = bad_inputs(evidence / "bad")
    os.mkfifo(evidence / "other" / "pipe")
    os.symlink(str(originals[1]), evidence / "other" / "link_out.png")  # leads out of the tree

    index_path = base / "index"
    index = KnownIndex.create(index_path, ALGORITHMS)
    records = [known_from_hash_record(r) for p in originals for r in matcher.hash_file(p, ALGORITHMS)]
    index.add(records, "agency", category=1)
    listed = matcher.hash_bytes(KNOWN_FILE, ALGORITHMS)[0]
    index.add([KnownRecord(sha256=listed.sha256, name="listed.dat")], "hashset", category=2)
    good = matcher.hash_bytes(GOOD_FILE, ALGORITHMS)[0]
    index.add([KnownRecord(sha256=good.sha256, name="system.dll", extra={"known_good": True})], "nsrl")
    ids = {r.name: r.id for r in index.iter_records()}
    index.close()
    return {"base": base, "evidence": evidence, "index": index_path, "originals": originals, "bad": bad, "ids": ids}


def run_report(world, name: str, workers: int, fmt: str = "jsonl", **option_args) -> tuple[Path, object]:
    out = world["base"] / "reports" / name
    out.parent.mkdir(exist_ok=True)
    options = ScanOptions(workers=workers, **option_args)
    summary = run_scan([str(world["evidence"])], str(world["index"]), options, str(out), fmt, False)
    return out, summary


@pytest.fixture(scope="module")
def reference(world):
    """The uninterrupted one-worker JSONL report, and the evidence snapshots around it."""
    before = snapshot(world["evidence"])
    out, summary = run_report(world, "reference.jsonl", workers=1)
    after = snapshot(world["evidence"])
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    return {"path": out, "summary": summary, "records": records, "before": before, "after": after}


def by_name(records):
    out: dict[str, list[dict]] = {}
    for r in records:
        out.setdefault(os.path.basename(r["path"]), []).append(r)
    return out


def test_every_entry_gets_exactly_one_record_per_file_or_frame(world, reference):
    records = reference["records"]
    entries = [p for p in reference["before"] if not os.path.isdir(p) or os.path.islink(p)]
    paths = [r["path"] for r in records]
    assert set(paths) == set(entries)
    gif = [r for r in records if r["path"].endswith("animated.gif")]
    assert [r["frame"] for r in gif] == [0, 1, 2]
    assert len(records) == len(entries) + 2
    assert paths == sorted(paths, key=os.fsencode)  # walk order: path bytes, then frame
    assert reference["summary"].files == len(entries)


def test_edited_copies_match_their_original_with_the_right_variant(world, reference):
    ids = world["ids"]
    named = by_name(reference["records"])
    for i in range(len(KINDS)):
        want = ids[str(world["originals"][i])]
        for name, variant in EXPECTED_VARIANT.items():
            ext = "jpg" if name == "jpeg75" else "png"
            (record,) = named[f"o{i}_{name}.{ext}"]
            if (KINDS[i], name) in UNMATCHED_EDITS:  # PDQ moves past 31; pHash does not match text cards
                assert record["status"] == "no_match", (name, record)
                continue
            assert record["status"] == "match", (name, record)
            assert record["error"] is None
            ids_found = [m["record"] for m in record["matches"]]
            assert ids_found == [want], (name, record["matches"])  # each known record once
            match = record["matches"][0]
            assert match["variant"] == variant, (name, match)
            assert match["list"] == "agency" and match["category"] == 1
            assert match["algorithm"] in ALGORITHMS


def test_unrelated_images_and_awkward_but_valid_images_do_not_match(reference):
    named = by_name(reference["records"])
    for j in range(3):
        (record,) = named[f"unrelated_{j}.jpg"]
        assert record["status"] == "no_match" and record["matches"] == [] and record["error"] is None
        assert record["pdq"] and record["phash"]
    for name in ("cmyk.jpg", "sixteen_bit.png", "palette_transparent.png", "jpeg_named.png", "animated.gif"):
        assert all(r["status"] == "no_match" and r["error"] is None for r in named[name]), name
    assert named["jpeg_named.png"][0]["extension_mismatch"] is True
    (tiny,) = named["one_pixel.png"]
    assert "pdq not matched: quality 0 below 50" in tiny["notes"]


def test_bad_files_get_error_records_and_non_images_digests_only(reference):
    named = by_name(reference["records"])
    for name in ("zero_byte.jpg", "truncated.jpg", "truncated.png", "bomb.png"):
        (record,) = named[name]
        assert record["status"] == "error" and record["error"], name
        assert record["pdq"] is None
    (bomb,) = named["bomb.png"]
    assert bomb["sha256"] and bomb["size"] > 0
    for name in ("notes.txt", "blob.bin", "text_named.jpg"):
        (record,) = named[name]
        assert record["status"] == "no_match" and record["error"] is None, record
        assert record["md5"] and record["sha1"] and record["sha256"]
        assert record["pdq"] is None and any("not an image" in n for n in record["notes"])


def test_fifo_and_symlink_are_skipped_never_opened_or_followed(reference):
    named = by_name(reference["records"])
    (pipe,) = named["pipe"]
    (link,) = named["link_out.png"]
    assert pipe["status"] == "skipped" and "FIFO" in pipe["notes"][0] and pipe["sha256"] is None
    assert link["status"] == "skipped" and "not followed" in link["notes"][0] and link["sha256"] is None


def test_digest_matches_and_known_good(world, reference):
    ids = world["ids"]
    named = by_name(reference["records"])
    (copy,) = named["copy_of_original_0.png"]
    assert copy["status"] == "match"
    assert copy["matches"][0] == {
        "algorithm": "sha256",
        "distance": 0,
        "variant": None,
        "view": None,
        "explanation": "identical file",
        "record": ids[str(world["originals"][0])],
        "list": "agency",
        "category": 1,
        "series": None,
    }
    assert len(copy["matches"]) == 1  # the same record is not reported again for its perceptual match
    (listed,) = named["listed.dat"]
    assert listed["status"] == "match" and listed["error"] is None
    assert [(m["algorithm"], m["record"], m["list"]) for m in listed["matches"]] == [
        ("sha256", ids["listed.dat"], "hashset")
    ]
    (good,) = named["system.dll"]
    assert good["status"] == "known_good"
    assert [(m["algorithm"], m["list"]) for m in good["matches"]] == [("sha256", "nsrl")]


def test_evidence_tree_is_unchanged(reference):
    assert reference["after"] == reference["before"]


def test_summary_and_run_manifest(world, reference):
    summary = reference["summary"]
    manifest = json.loads(Path(str(reference["path"]) + MANIFEST_SUFFIX).read_text())
    assert manifest["counts"] == summary.to_dict()
    copies = 3 * len(EXPECTED_VARIANT) - len(UNMATCHED_EDITS)
    assert summary.matched_files == copies + 2
    assert summary.files_by_status["known_good"] == 1 and summary.errors == 4 and summary.skipped == 2
    assert summary.matches_by_list == {"agency": copies + 1, "hashset": 1}
    assert summary.matches_by_category == {"1": copies + 1, "2": 1}
    assert manifest["parameters"]["max_distances"] == {"pdq": 31, "phash": 8}
    assert manifest["parameters"]["rotations"] is True
    with open(world["index"] / "manifest.json", "rb") as handle:
        import hashlib

        assert manifest["index"]["manifest_sha256"] == hashlib.sha256(handle.read()).hexdigest()
    assert set(manifest["versions"]) >= {"matcher", "python", "numpy", "Pillow", "imagehash", "faiss"}
    reads = manifest["o_noatime"]
    assert reads["files_read_with"] + reads["files_read_without"] == summary.files - 2  # all but FIFO, link
    assert manifest["host"] and manifest["started_at"].endswith("Z") and manifest["finished_at"].endswith("Z")
    assert not Path(str(reference["path"]) + JOURNAL_SUFFIX).exists()


def test_library_scan_yields_the_report_records(world, reference):
    records = [r.to_dict(ALGORITHMS) for r in scan([str(world["evidence"])], world["index"], ScanOptions(workers=1))]
    assert records == reference["records"]


@pytest.mark.parametrize("parent_helps", [False, True], ids=["pool-only", "parent-scans-while-pool-starts"])
def test_two_workers_give_the_same_report(world, reference, monkeypatch, parent_helps):
    monkeypatch.setattr(local_engine, "PARENT_SCANS_WHILE_STARTING", parent_helps)
    out, summary = run_report(world, f"two_workers_{parent_helps}.jsonl", workers=2, chunk_size=3)
    assert out.read_bytes() == reference["path"].read_bytes()
    assert summary.to_dict() == reference["summary"].to_dict()


def test_matches_only_and_no_rotations(world, reference):
    out, summary = run_report(world, "matches.jsonl", workers=1, matches_only=True)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records == [r for r in reference["records"] if r["status"] == "match"]
    assert summary.records == len(records) and summary.files == reference["summary"].files

    plain = [
        r.to_dict(["pdq"])
        for r in scan(
            [str(world["evidence"] / "edits")],
            world["index"],
            ScanOptions(workers=1, rotations=False, algorithms="pdq"),
        )
    ]
    named = by_name(plain)
    assert all(m["variant"] == "orig" for r in plain for m in r["matches"])
    assert named["o0_jpeg75.jpg"][0]["status"] == "match"
    assert named["o0_rotate90.png"][0]["status"] == "no_match"
    assert "phash" not in named["o0_jpeg75.jpg"][0]


def test_max_distance_override_is_applied(world):
    tight = [
        r
        for r in scan(
            [str(world["evidence"] / "edits")],
            world["index"],
            ScanOptions(workers=1, algorithms="pdq", max_distances={"pdq": 0}),
        )
    ]
    assert all(m.distance == 0 for r in tight for m in r.matches)
    assert any(r.status == "no_match" for r in tight)  # the JPEG and resized copies are not exact


def test_csv_and_vics_reports_parse(world, reference):
    out, _ = run_report(world, "report.csv", workers=1, fmt="csv")
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert len(rows) == len(reference["records"])
    assert [row["status"] for row in rows] == [r["status"] for r in reference["records"]]
    out, _ = run_report(world, "report.vics.json", workers=1, fmt="vics")
    document = json.loads(out.read_text(encoding="utf-8"))
    media = document["value"][0]["Media"]
    assert len(media) == reference["summary"].files  # one Media per file (the GIF's frames merged)


# -- command line ---------------------------------------------------------------------------------


def cli(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_exit_codes(world, tmp_path, capsys):
    index = str(world["index"])
    code, out, err = cli(
        ["scan", str(world["evidence"] / "other" / "unrelated_0.jpg"), "--index", index, "--workers", "1"], capsys
    )
    assert code == 0, err
    assert json.loads(out)["status"] == "no_match"
    assert "1 files" in err and "0 matched" in err
    code, out, err = cli(
        [
            "scan",
            str(world["evidence"] / "edits"),
            "--index",
            index,
            "--workers",
            "1",
            "--matches-only",
            "--quiet",
            "--output",
            str(tmp_path / "r.jsonl"),
        ],
        capsys,
    )
    assert code == 1 and err == "" and out == ""
    assert (tmp_path / "r.jsonl.manifest.json").is_file()
    code, _, err = cli(["scan", str(world["evidence"]), "--index", str(tmp_path / "nope"), "--workers", "1"], capsys)
    assert code == 2 and "no such index" in err
    inside = world["evidence"] / "other" / "report.jsonl"
    code, _, err = cli(["scan", str(world["evidence"]), "--index", index, "--output", str(inside)], capsys)
    assert code == 2 and "inside the evidence path" in err
    assert not inside.exists() and not Path(str(inside) + JOURNAL_SUFFIX).exists()
    with pytest.raises(SystemExit) as usage:  # argparse's own usage errors exit with 2
        main(["scan", str(world["evidence"]), "--index", index, "--max-distance", "pdq=x"])
    assert usage.value.code == 2
    code, _, err = cli(["scan", str(world["evidence"]), "--index", index, "--algorithms", "dhash"], capsys)
    assert code == 2 and "holds no dhash" in err


def scan_command(world, output: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "matcher",
        "scan",
        str(world["evidence"]),
        "--index",
        str(world["index"]),
        "--output",
        str(output),
        "--quiet",
        *extra,
    ]


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def test_resume_after_sigkill_gives_the_uninterrupted_report(world, reference, tmp_path):
    output = tmp_path / "killed.jsonl"
    journal = Path(str(output) + JOURNAL_SUFFIX)
    # The scan SIGKILLs itself right after journaling 7 entries (injected by the test).
    first = subprocess.run(
        kill_after_command(7, scan_command(world, output, "--workers", "1")),
        env=child_env(),
        capture_output=True,
        text=True,
    )
    assert first.returncode == -signal.SIGKILL, first.stderr
    assert not output.exists()
    lines = journal.read_bytes().splitlines(keepends=True)
    assert len(lines) == 1 + 7
    with open(journal, "ab") as handle:  # and a torn write of the next entry, as a kill mid-write leaves
        handle.write(lines[-1][: len(lines[-1]) // 2])

    refused = subprocess.run(
        scan_command(world, output, "--workers", "1"), env=child_env(), capture_output=True, text=True
    )
    assert refused.returncode == 2 and "--resume" in refused.stderr
    changed = subprocess.run(
        scan_command(world, output, "--workers", "1", "--resume", "--max-distance", "pdq=20"),
        env=child_env(),
        capture_output=True,
        text=True,
    )
    assert changed.returncode == 2 and "different parameters" in changed.stderr and "max_distances" in changed.stderr
    assert journal.exists()

    resumed = subprocess.run(
        scan_command(world, output, "--workers", "1", "--resume"), env=child_env(), capture_output=True, text=True
    )
    assert resumed.returncode == 1, resumed.stderr
    assert output.read_bytes() == reference["path"].read_bytes()
    assert not journal.exists()
    manifest = json.loads(Path(str(output) + MANIFEST_SUFFIX).read_text())
    assert manifest["counts"]["resumed_files"] == 7 and len(manifest["runs_started_at"]) == 2
    assert manifest["counts"]["files"] == reference["summary"].files


def test_resume_after_external_sigkill_with_two_workers(world, reference, tmp_path):
    output = tmp_path / "killed2.jsonl"
    journal = Path(str(output) + JOURNAL_SUFFIX)
    child = subprocess.Popen(
        scan_command(world, output, "--workers", "2"),
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and child.poll() is None:
            if journal.exists() and journal.read_bytes().count(b"\n") >= 3:  # header + 2 entries
                break
            time.sleep(0.005)
        if child.poll() is not None:
            pytest.skip("the scan finished before it could be interrupted")
        os.killpg(child.pid, signal.SIGKILL)  # the driver and its workers, all at once
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL
    assert journal.exists() and not output.exists()
    resumed = subprocess.run(
        scan_command(world, output, "--workers", "2", "--resume"), env=child_env(), capture_output=True, text=True
    )
    assert resumed.returncode == 1, resumed.stderr
    assert output.read_bytes() == reference["path"].read_bytes()
    assert not journal.exists()
