"""`matcher index ...` as an examiner meets it (issue 16): honest exit statuses, every command on every index.

Each behaviour is checked on the installed ``matcher`` command run as a subprocess (``run_matcher``),
and at the library level where its logic lives: an unknown list or record id is a usage error (exit
2) that names what the index has and changes nothing; ``--nearest`` exits 1 only for answers within
the maximum distance; ``info``, ``query`` and ``export`` read a sharded index, while ``add``,
``remove`` and ``split`` refuse it and say what to do; digests of zero-length content are never
imported; an export re-imported keeps its lists, categories and series.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import run_matcher

from matcher.errors import IndexStoreError, UsageError
from matcher.formats.registry import read_records, write_records
from matcher.hashes import Hash
from matcher.index import KnownIndex, ShardedIndex, split_index
from matcher.index.importing import import_sources
from matcher.known import KnownRecord

#: The digests of zero-length content, computed here (the library's constants are checked against them).
EMPTY = {kind: hashlib.new(kind, b"").hexdigest() for kind in ("md5", "sha1", "sha256")}
EMPTY_SHA256 = EMPTY["sha256"]


def pdq(seed: int) -> Hash:
    """A random (synthetic) PDQ hash, deterministic per seed."""
    return Hash("pdq", np.random.default_rng(seed).integers(0, 256, 32, dtype=np.uint8).tobytes())


def near(h: Hash, bits: int) -> Hash:
    """``h`` with its first ``bits`` bits flipped."""
    code = bytearray(h.bits)
    for bit in range(bits):
        code[bit // 8] ^= 0x80 >> (bit % 8)
    return Hash("pdq", bytes(code))


@pytest.fixture()
def index(tmp_path: Path) -> Path:
    """An index of 5 synthetic PDQ records: list 'alpha' (ids 1-3, category 1, series 's1') and 'beta' (4-5)."""
    path = tmp_path / "idx"
    with KnownIndex.create(path, ["pdq"]) as known:
        alpha = [KnownRecord(hashes={"pdq": pdq(i)}, series="s1", name=f"a{i}.jpg") for i in range(3)]
        known.add(alpha, "alpha", category=1)
        known.add([KnownRecord(hashes={"pdq": pdq(10 + i)}, comment="c") for i in range(2)], "beta")
    return path


def ok(result: object) -> str:
    return f"exit {getattr(result, 'returncode', '?')}; stderr: {getattr(result, 'stderr', b'').decode()}"


# -- unknown lists and record ids: exit 2, named, nothing changed -----------------------------------


def test_export_and_remove_of_an_unknown_list_exit_2_naming_the_lists(index: Path, tmp_path: Path) -> None:
    out = tmp_path / "export.jsonl"
    result = run_matcher("index", "export", index, "--list", "nosuch", "--output", out)
    assert result.returncode == 2, ok(result)
    assert "no list 'nosuch'" in result.stderr.decode() and "'alpha', 'beta'" in result.stderr.decode()
    assert not out.exists()  # no empty export left behind to be mistaken for a list
    result = run_matcher("index", "remove", index, "--list", "nosuch")
    assert result.returncode == 2, ok(result)
    assert "no list 'nosuch'" in result.stderr.decode() and "'alpha', 'beta'" in result.stderr.decode()
    with KnownIndex.open(index) as known:
        assert known.lists() == {"alpha": 3, "beta": 2} and known.generation == 3


def test_unknown_list_in_the_library(index: Path) -> None:
    with KnownIndex.open(index, writable=True) as known:
        with pytest.raises(UsageError, match=r"no list 'nosuch' in the index \(its lists: 'alpha', 'beta'\)"):
            known.iter_records("nosuch")
        with pytest.raises(UsageError, match="its lists: 'alpha', 'beta'"):
            known.remove_list("nosuch")
        assert [r.id for r in known.iter_records("beta")] == [4, 5]
        assert known.generation == 3


def test_remove_with_an_unknown_id_removes_nothing(index: Path) -> None:
    result = run_matcher("index", "remove", index, "--id", "1", "2", "99999")
    assert result.returncode == 2, ok(result)
    assert "no record with id 99999" in result.stderr.decode()
    with KnownIndex.open(index) as known:
        assert len(known) == 5 and known.generation == 3
    result = run_matcher("index", "remove", index, "--id", "1", "2")
    assert result.returncode == 0 and "removed 2 records" in result.stderr.decode(), ok(result)
    with KnownIndex.open(index, writable=True) as known:
        assert [r.id for r in known.iter_records()] == [3, 4, 5]
        with pytest.raises(UsageError, match="no record with id 1, 2 "):  # removed already: named again
            known.remove_records([1, 2, 3])
        assert len(known) == 3


# -- --nearest: exit 1 only within the maximum distance ---------------------------------------------


def query_lines(result: object) -> list[dict[str, object]]:
    return [json.loads(line) for line in getattr(result, "stdout", b"").decode().splitlines()]


def test_nearest_exits_1_only_for_answers_within_the_maximum_distance(index: Path) -> None:
    far = pdq(999)  # random: about 128 bits from every record
    result = run_matcher("index", "query", index, str(far), "--nearest", "2")
    assert result.returncode == 0, ok(result)  # nearest records exist, but none is a match
    [line] = query_lines(result)
    assert line["max_distance"] == 31 and len(line["matches"]) == 2
    assert all(m["within_max_distance"] is False and m["distance"] > 31 for m in line["matches"])

    result = run_matcher("index", "query", index, str(near(pdq(1), 5)), "--nearest", "2")
    assert result.returncode == 1, ok(result)
    [line] = query_lines(result)
    assert [(m["record"], m["distance"], m["within_max_distance"]) for m in line["matches"]][0] == (2, 5, True)
    assert line["matches"][1]["within_max_distance"] is False

    # --max-distance sets the limit the nearest answers are marked against
    result = run_matcher("index", "query", index, str(near(pdq(1), 5)), "--nearest", "1", "--max-distance", "4")
    assert result.returncode == 0 and query_lines(result)[0]["matches"][0]["within_max_distance"] is False
    result = run_matcher("index", "query", index, str(far), "--nearest", "1", "--max-distance", "256")
    assert result.returncode == 1 and query_lines(result)[0]["matches"][0]["within_max_distance"] is True

    # a range query marks its matches too (all within) and says the limit
    result = run_matcher("index", "query", index, str(near(pdq(11), 3)))
    assert result.returncode == 1, ok(result)
    [line] = query_lines(result)
    assert line["max_distance"] == 31
    assert [(m["record"], m["within_max_distance"]) for m in line["matches"]] == [(5, True)]


# -- every index command on a sharded index ---------------------------------------------------------


@pytest.fixture()
def sharded(index: Path, tmp_path: Path) -> Path:
    target = tmp_path / "sharded"
    result = run_matcher("index", "split", index, target, "--shards", "2")
    assert result.returncode == 0, ok(result)
    return target


def test_info_query_and_export_read_a_sharded_index(index: Path, sharded: Path) -> None:
    result = run_matcher("index", "info", sharded)
    assert result.returncode == 0, ok(result)
    text = result.stdout.decode()
    assert "sharded index" in text and "5 records" in text and "2 shards" in text and "list 'alpha': 3" in text
    info = json.loads(run_matcher("index", "info", sharded, "--json").stdout)
    assert info["sharded"] is True and info["records"] == 5 and info["source"]["path"] == str(index)

    queries = [str(near(pdq(2), 4)), str(near(pdq(10), 2)), str(pdq(999))]
    single = run_matcher("index", "query", index, *queries)
    split = run_matcher("index", "query", sharded, *queries)
    assert split.returncode == single.returncode == 1, ok(split)
    assert split.stdout == single.stdout  # same answers, same record ids
    assert [[m["record"] for m in line["matches"]] for line in query_lines(split)] == [[3], [4], []]
    nearest = ("--nearest", "3")
    assert run_matcher("index", "query", sharded, *queries, *nearest).stdout == (
        run_matcher("index", "query", index, *queries, *nearest).stdout
    )

    for args in ((), ("--list", "beta"), ("--format", "pdq-hex")):
        single = run_matcher("index", "export", index, *args)
        split = run_matcher("index", "export", sharded, *args)
        assert split.returncode == 0 and split.stdout == single.stdout and split.stdout, ok(split)
    result = run_matcher("index", "export", sharded, "--list", "nosuch")
    assert result.returncode == 2 and "'alpha', 'beta'" in result.stderr.decode(), ok(result)


def test_add_remove_and_split_refuse_a_sharded_index_and_say_what_to_do(
    index: Path, sharded: Path, tmp_path: Path
) -> None:
    listing = tmp_path / "more.txt"
    listing.write_text(f"{pdq(50)}\n")
    before = (sharded / "shards.json").read_bytes()
    for args in (
        ("add", sharded, listing, "--list", "more"),
        ("remove", sharded, "--list", "alpha"),
        ("remove", sharded, "--id", "1"),
        ("split", sharded, tmp_path / "again", "--shards", "3"),
    ):
        result = run_matcher("index", *args)
        message = result.stderr.decode()
        assert result.returncode == 2, ok(result)
        assert "sharded index" in message and "read-only" in message, message
        assert "the single index it was split from, then split that again" in message, message
        assert "Traceback" not in message
    assert (sharded / "shards.json").read_bytes() == before and not (tmp_path / "again").exists()
    with ShardedIndex.open(sharded) as opened:
        assert len(opened) == 5


def test_sharded_index_refusals_in_the_library(sharded: Path, tmp_path: Path) -> None:
    with pytest.raises(IndexStoreError, match="read-only and cannot be changed"):
        KnownIndex.open(sharded, writable=True)
    with pytest.raises(IndexStoreError, match="open_any"):
        KnownIndex.open(sharded)
    with pytest.raises(UsageError, match="cannot be split"):
        split_index(sharded, tmp_path / "again", 2)
    with ShardedIndex.open(sharded) as opened, pytest.raises(UsageError, match="its lists: 'alpha', 'beta'"):
        opened.iter_records("nosuch")


# -- digests of zero-length content are never imported --------------------------------------------


def test_a_hash_list_of_an_empty_file_imports_no_empty_digest(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.txt").write_bytes(b"not an image")
    listing = tmp_path / "hashes.jsonl"
    result = run_matcher("hash", folder, "--output", listing)
    assert listing.is_file(), ok(result)
    assert EMPTY_SHA256 in listing.read_text()  # the hash list holds the empty file's digests
    assert run_matcher("index", "create", tmp_path / "idx").returncode == 0
    result = run_matcher("index", "add", tmp_path / "idx", listing)
    message = result.stderr.decode()
    assert result.returncode == 0, message
    assert f"sha256 {EMPTY_SHA256} is the digest of zero-length content; not imported" in message
    assert "added 1," in message and "zero-length content digests skipped 3" in message, message
    assert "empty 1," in message  # the empty file's record had nothing else to match on
    assert "problems skipped 0" in message  # the text file's 'note' column is not read as a hash
    with KnownIndex.open(tmp_path / "idx") as known:
        for kind, value in EMPTY.items():
            assert known.lookup_digest(kind, [value]) == {value: []}
        [kept] = list(known.iter_records())
        assert kept.sha256 == hashlib.sha256(b"not an image").hexdigest()


def test_hash_jsonl_columns_that_are_not_algorithms_are_not_read_as_hashes(tmp_path: Path) -> None:
    listing = tmp_path / "hashes.jsonl"
    row = {"path": "a.txt", "mime": "text/plain", "md5": "c" * 32, "pdq": None, "error": None}
    listing.write_text(json.dumps({**row, "note": "not an image; digests only", "a_future_column": "text"}) + "\n")
    problems: list[object] = []
    [record] = list(read_records(listing, on_problem=problems.append))
    assert not problems and record.md5 == "c" * 32 and record.hashes == {}
    assert record.extra["note"] == "not an image; digests only"


def test_empty_content_digests_are_stripped_by_import_and_by_add(tmp_path: Path) -> None:
    from matcher.known import EMPTY_CONTENT_DIGESTS

    assert dict(EMPTY_CONTENT_DIGESTS) == EMPTY
    listing = tmp_path / "list.sha256"
    other = hashlib.sha256(b"x").hexdigest()
    listing.write_text(f"{EMPTY_SHA256.upper()}  empty.bin\n{other}  x.bin\n")
    warnings: list[str] = []
    with KnownIndex.create(tmp_path / "idx", ["pdq"]) as known:
        summary = import_sources(known, [listing], list_name="l", on_warning=lambda p: warnings.append(str(p)))
        assert (summary.added, summary.empty, summary.empty_digests, summary.lists) == (1, 1, 1, ("l",))
        assert len(warnings) == 1 and "list.sha256:1" in warnings[0]
        # KnownIndex.add itself never stores one either: the PDQ hash is kept, the digest is not
        record = KnownRecord(hashes={"pdq": pdq(1)}, md5=EMPTY_CONTENT_DIGESTS["md5"], sha1="A" * 40)
        assert record.empty_content_digests() == ("md5",)
        assert known.add([record], "l").added == 1
        [stored] = known.records([2])
        assert stored.md5 is None and stored.sha1 == "a" * 40 and stored.hashes["pdq"] == pdq(1)


# -- export and re-import keep lists, categories and series ---------------------------------------


@pytest.mark.parametrize("fmt", ["matcher-jsonl", "matcher-csv"])
def test_export_and_reimport_keeps_lists_categories_and_series(index: Path, tmp_path: Path, fmt: str) -> None:
    exported = tmp_path / f"export.{fmt}"
    result = run_matcher("index", "export", index, "--format", fmt, "--output", exported)
    assert result.returncode == 0, ok(result)
    assert run_matcher("index", "create", tmp_path / "copy").returncode == 0
    result = run_matcher("index", "add", tmp_path / "copy", exported)  # no --list: the export's lists
    assert result.returncode == 0 and "lists 'alpha', 'beta': added 5" in result.stderr.decode(), ok(result)

    def content(path: Path) -> list[tuple[object, ...]]:
        with KnownIndex.open(path) as known:
            return [
                (r.id, r.list_name, r.category, r.series, r.comment, r.name, r.hashes["pdq"])
                for r in known.iter_records()
            ]

    assert content(tmp_path / "copy") == content(index)
    # --list (and --category) still put every record where the examiner says
    assert run_matcher("index", "create", tmp_path / "one").returncode == 0
    result = run_matcher("index", "add", tmp_path / "one", exported, "--list", "case-7", "--category", "2")
    assert result.returncode == 0, ok(result)
    with KnownIndex.open(tmp_path / "one") as known:
        assert known.lists() == {"case-7": 5} and {r.category for r in known.iter_records()} == {2}


def test_matcher_exports_carry_the_list_in_the_library(tmp_path: Path) -> None:
    records = [
        KnownRecord(hashes={"pdq": pdq(1)}, category=3, series="s", list_name="alpha"),
        KnownRecord(sha1="b" * 40, list_name=None),
    ]
    for fmt in ("matcher-jsonl", "matcher-csv"):
        path = tmp_path / f"out.{fmt}"
        with open(path, "wb") as stream:
            write_records(records, stream, fmt)
        back = list(read_records(path, fmt))
        assert [(r.list_name, r.category, r.series) for r in back] == [("alpha", 3, "s"), (None, None, None)]
    # an export written before the list column existed still reads (no list)
    old = tmp_path / "old.jsonl"
    row = {"name": None, "size": None, "md5": None, "sha1": "b" * 40, "sha256": None, "photodna": None}
    old.write_text(json.dumps({**row, "category": 1, "series": None, "comment": None, "extra": {}}) + "\n")
    [record] = list(read_records(old))
    assert record.list_name is None and record.category == 1


def test_quiet_silences_the_one_line_messages_of_every_index_command(tmp_path):
    """`--quiet` (before or after the subcommand) leaves stderr empty for create, export, remove and
    split, as for scan, hash and cluster; the work is still done."""
    from conftest import run_matcher

    from fixtures import encode, scene

    image = tmp_path / "k.png"
    image.write_bytes(encode(scene(5, 160, 120, "landscape"), "PNG"))
    index = tmp_path / "index"
    steps = [
        ["index", "create", index, "--quiet"],
        ["--quiet", "index", "add", index, image, "--list", "demo"],
        ["index", "export", index, "-q", "--output", tmp_path / "out.jsonl"],
        ["index", "split", index, tmp_path / "shards", "--shards", "1", "--quiet"],
        ["index", "remove", index, "--list", "demo", "--quiet"],
    ]
    for step in steps:
        done = run_matcher(*step)
        assert done.returncode == 0, done.stderr
        assert done.stderr == b"", (step, done.stderr)
    assert (tmp_path / "out.jsonl").read_text().count("\n") == 1
    assert (tmp_path / "shards" / "shards.json").is_file()
