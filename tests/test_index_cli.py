"""`matcher index ...`: create, add (lists and images), info, query, export, remove; exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fixtures import edit, encode, scene
from matcher.algorithms import pdq
from matcher.cli import main
from matcher.index import KnownIndex


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture()
def sources(tmp_path):
    images = tmp_path / "known"
    images.mkdir()
    originals = [scene(seed, 320, 240, kind) for seed, kind in enumerate(["landscape", "shapes", "text", "plasma"])]
    for i, image in enumerate(originals):
        (images / f"k{i}.png").write_bytes(encode(image, "PNG"))
    extra = [pdq.hash_array(np.asarray(scene(100 + i, 200, 200, "landscape"))) for i in range(3)]
    hexlist = tmp_path / "list.txt"
    hexlist.write_text("# synthetic PDQ list\n" + "\n".join(str(h) for h in extra) + "\nnot-a-hash\n")
    return images, hexlist, originals, extra


def test_create_add_query_export_remove(tmp_path, sources, capsys):
    images, hexlist, originals, extra = sources
    index = tmp_path / "idx"
    assert run(["index", "create", index, "-a", "pdq,phash"], capsys)[0] == 0
    code, _, err = run(["index", "add", index, images, "--list", "images", "--category", "1"], capsys)
    assert code == 0 and "added 4" in err
    code, _, err = run(["index", "add", index, hexlist, "--list", "shared"], capsys)
    assert code == 0 and "added 3" in err and "list.txt:5" in err  # the malformed line, by number

    code, out, _ = run(["index", "info", index, "--json"], capsys)
    info = json.loads(out)
    assert info["records"] == 7 and info["lists"]["images"]["records"] == 4

    copy = edit(originals[0], "jpeg75").convert("RGB")
    query = pdq.hash_array(np.asarray(copy))
    unrelated = pdq.hash_array(np.asarray(scene(999, 320, 240, "shapes")))
    code, out, _ = run(["index", "query", index, str(query), str(unrelated), "garbage"], capsys)
    assert code == 1  # something matched
    lines = [json.loads(line) for line in out.splitlines()]
    assert [len(line["matches"]) for line in lines] == [1, 0, 0]
    hit = lines[0]["matches"][0]
    assert hit["list"] == "images" and hit["category"] == 1 and hit["name"].endswith("k0.png")
    assert hit["distance"] == query - pdq.hash_array(np.asarray(originals[0].convert("RGB")))
    assert lines[2]["error"] and lines[2]["query"] == "garbage"

    queries = tmp_path / "q.txt"
    queries.write_text(f"{unrelated}\n{query},32,low.jpg\npdq {query}\n")
    code, out, _ = run(["index", "query", index, "--input", queries], capsys)
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 1 and [len(line["matches"]) for line in lines] == [0, 0, 1]
    assert lines[1]["skipped"] == "pdq quality 32 below 50"
    queries.write_text(f"{unrelated}\n")
    assert run(["index", "query", index, "--input", queries], capsys)[0] == 0  # no match

    out_file = tmp_path / "export.jsonl"
    assert run(["index", "export", index, "--list", "shared", "-o", out_file], capsys)[0] == 0
    exported = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert sorted(r["pdq"] for r in exported) == sorted(str(h) for h in extra)

    # re-importing the export into the same list adds nothing: duplicates are kept once
    code, _, err = run(["index", "add", index, out_file, "--list", "shared"], capsys)
    assert code == 0 and "added 0, duplicates 3" in err

    assert run(["index", "remove", index, "--list", "images"], capsys)[0] == 0
    with KnownIndex.open(index) as opened:
        assert opened.lists() == {"shared": 3}


def test_strict_import_refuses_and_leaves_the_index_unchanged(tmp_path, sources, capsys):
    _, hexlist, _, _ = sources
    index = tmp_path / "idx"
    run(["index", "create", index], capsys)
    before = json.loads(run(["index", "info", index, "--json"], capsys)[1])
    code, _, err = run(["index", "add", index, hexlist, "--strict"], capsys)
    assert code == 2 and "list.txt:5" in err
    after = json.loads(run(["index", "info", index, "--json"], capsys)[1])
    assert after["records"] == before["records"] == 0 and after["generation"] == before["generation"]


def test_unusable_indexes_exit_2(tmp_path, capsys):
    code, _, err = run(["index", "query", tmp_path / "missing", "00" * 32], capsys)
    assert code == 2 and "error" in err
    index = tmp_path / "idx"
    run(["index", "create", index], capsys)
    manifest = Path(index) / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"generation"', '"generatio"', 1))
    code, _, err = run(["index", "info", index], capsys)
    assert code == 2 and "manifest" in err.lower()


def test_split_makes_shards_a_scan_reads_like_the_index(tmp_path, sources, capsys):
    images, hexlist, originals, _ = sources
    index, shards = tmp_path / "idx", tmp_path / "shards"
    run(["index", "create", index], capsys)
    run(["index", "add", index, images, "--list", "images"], capsys)
    run(["index", "add", index, hexlist, "--list", "shared"], capsys)
    code, _, err = run(["index", "split", index, shards, "--shards", "3"], capsys)
    assert code == 0 and "3 shards" in err
    assert sorted(p.name for p in shards.iterdir()) == ["shard-000", "shard-001", "shard-002", "shards.json"]
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    (evidence / "copy.png").write_bytes(encode(edit(originals[1], "crop10"), "PNG"))
    reports = []
    for target in (index, shards):
        code, out, _ = run(["scan", evidence, "--index", target, "--workers", "1", "--quiet"], capsys)
        assert code == 1
        reports.append(out)
    assert reports[0] == reports[1] and '"view": "crop10"' in reports[0]
    code, _, err = run(["index", "split", index, shards, "--shards", "2"], capsys)
    assert code == 2 and "not empty" in err  # an existing split is never overwritten
    with pytest.raises(SystemExit) as exc:
        main(["index", "split", str(index), str(tmp_path / "x"), "--shards", "0"])
    assert exc.value.code == 2 and not (tmp_path / "x").exists()
