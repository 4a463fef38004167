"""One rule in every command, as the installed `matcher` command shows it (README, "One rule in every
command"): the same files through `hash`, `scan`, `cluster` and `compare` as subprocesses."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import run_matcher

from fixtures import encode, scene

NOT_AN_IMAGE = "not an image (text/plain); digests only"


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    base = tmp_path_factory.mktemp("one-rule")
    evidence = base / "evidence"
    evidence.mkdir()
    (evidence / "a.png").write_bytes(encode(scene(71, 160, 120, "landscape"), "PNG"))
    (evidence / "notes.jpg").write_text("meeting notes, not a picture\n")
    (evidence / "empty.jpg").write_bytes(b"")
    (evidence / "broken.jpg").write_bytes(encode(scene(72, 160, 120, "landscape"), "JPEG")[:400])
    outside = base / "outside.txt"
    outside.write_text("outside the evidence tree\n")
    os.symlink(outside, evidence / "link.jpg")
    index = base / "index"
    assert run_matcher("index", "create", index).returncode == 0
    assert run_matcher("index", "add", index, evidence / "a.png", "--list", "known").returncode == 0
    return {"evidence": evidence, "index": index}


def records(done) -> dict[str, dict]:
    return {Path(r["path"]).name: r for r in map(json.loads, done.stdout.decode().splitlines())}


def test_hash_scan_and_cluster_apply_one_rule_to_each_kind_of_file(tree):
    hashed = run_matcher("hash", tree["evidence"])
    assert hashed.returncode == 0, hashed.stderr
    h = records(hashed)
    assert h["notes.jpg"]["error"] is None and h["notes.jpg"]["note"] == NOT_AN_IMAGE and h["notes.jpg"]["sha256"]
    assert h["empty.jpg"]["error"] == "empty file (0 bytes)"
    assert h["broken.jpg"]["error"] and h["broken.jpg"]["pdq"] is None and h["broken.jpg"]["sha256"]
    assert "symbolic link" in h["link.jpg"]["error"] and h["link.jpg"]["sha256"] is None

    scanned = run_matcher("scan", tree["evidence"], "--index", tree["index"])
    assert scanned.returncode == 1, scanned.stderr  # a.png matches
    s = records(scanned)
    assert s["a.png"]["status"] == "match"
    assert s["notes.jpg"]["status"] == "no_match" and NOT_AN_IMAGE in s["notes.jpg"]["notes"]
    assert s["empty.jpg"]["status"] == "error" and s["broken.jpg"]["status"] == "error"
    assert s["link.jpg"]["status"] == "skipped" and "symbolic link" in s["link.jpg"]["notes"][0]
    assert s["notes.jpg"]["sha256"] == h["notes.jpg"]["sha256"]

    clustered = run_matcher("cluster", tree["evidence"])
    assert clustered.returncode == 0, clustered.stderr
    c = records(clustered)
    assert c["notes.jpg"]["status"] == "skipped" and NOT_AN_IMAGE in c["notes.jpg"]["notes"]
    assert c["empty.jpg"]["status"] == "error" and c["broken.jpg"]["status"] == "error"
    assert c["link.jpg"]["status"] == "skipped"


@pytest.mark.parametrize(
    ("name", "says"),
    [("notes.jpg", "not an image"), ("empty.jpg", "empty file"), ("broken.jpg", "truncated")],
)
def test_compare_refuses_what_is_not_a_decodable_image_with_exit_2(tree, name, says):
    done = run_matcher("compare", tree["evidence"] / "a.png", tree["evidence"] / name)
    assert done.returncode == 2
    assert says in done.stderr.decode() and "Traceback" not in done.stderr.decode()
