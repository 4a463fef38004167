"""Hash-list formats: detection, reading, writing, problems, streaming. All data is synthetic:
made-up hashes and digests from a seeded random generator, written to ``tmp_path``."""

from __future__ import annotations

import io
import json
import random
import sqlite3
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from matcher.errors import HashListError, MatcherError, UsageError
from matcher.formats.registry import (
    detect_format,
    format_names,
    get_format,
    read_records,
    write_records,
)
from matcher.hashes import Hash
from matcher.hashing import HashRecord
from matcher.known import ImportProblem, KnownRecord

RND = random.Random(20240611)


def hexrand(digits: int, rnd: random.Random = RND) -> str:
    return f"{rnd.getrandbits(digits * 4):0{digits}x}"


def pdq(rnd: random.Random = RND, quality: int | None = None) -> Hash:
    return Hash.from_hex("pdq", hexrand(64, rnd), quality)


def read_all(source: Any, fmt: str = "auto", strict: bool = False) -> tuple[list[KnownRecord], list[ImportProblem]]:
    problems: list[ImportProblem] = []
    records = list(read_records(source, format=fmt, on_problem=problems.append, strict=strict))
    return records, problems


def without_source(records: list[KnownRecord]) -> list[KnownRecord]:
    import dataclasses

    return [dataclasses.replace(r, source=None) for r in records]


def write_file(path: Path, fmt: str, records: list[KnownRecord]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as out:
        write_records(records, out, fmt)
    return path


def full_records() -> list[KnownRecord]:
    """Records using every field, with awkward text."""
    return [
        KnownRecord(
            hashes={"pdq": pdq(quality=93), "phash": Hash.from_hex("phash", hexrand(16))},
            md5=hexrand(32),
            sha1=hexrand(40),
            sha256=hexrand(64),
            photodna="UGhvdG9ETkEtc3ludGhldGljLXZhbHVl" * 4,
            category=0,
            series='=series, with "quotes" and ✓ 日本',
            comment="line one\nline two",
            name="-leading minus,comma.jpg",
            size=12345,
            extra={"MediaID": 7, "flags": [True, False, None], "nested": {"a": 1.5}},
        ),
        KnownRecord(hashes={"pdq": pdq()}, category=None, name="'quoted name", extra={}),
        KnownRecord(md5=hexrand(32), category=3, series="S", size=0),
        KnownRecord(photodna="only-photodna", category=1, comment="@at"),
    ]


# --------------------------------------------------------------------------------------------------
# Registry


def test_registry_names_and_unknown_format() -> None:
    assert {
        "pdq-hex",
        "digest-list",
        "sha256-list",
        "vics",
        "nsrl",
        "matcher-hash-jsonl",
        "matcher-csv",
        "matcher-jsonl",
    } <= set(format_names())
    with pytest.raises(UsageError):
        get_format("no-such-format")
    with pytest.raises(UsageError):
        write_records([], io.StringIO(), "nsrl")


def test_undetectable_and_empty(tmp_path: Path) -> None:
    prose = tmp_path / "notes.txt"
    prose.write_text("this is not a hash list\nat all\n")
    with pytest.raises(HashListError, match="cannot tell the hash list format"):
        list(read_records(prose))
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(HashListError, match="empty"):
        detect_format(empty)
    with pytest.raises(MatcherError):
        list(read_records(tmp_path / "missing.txt"))


# --------------------------------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize("fmt", ["matcher-jsonl", "matcher-csv"])
def test_export_round_trip_exact(tmp_path: Path, fmt: str) -> None:
    records = full_records()
    path = write_file(tmp_path / "export.out", fmt, records)
    back, problems = read_all(path)
    assert problems == []
    assert without_source(back) == records  # ... and everything else is equal
    assert back[0].hashes["pdq"].quality == 93
    assert [r.source for r in back][0].startswith(str(path))
    assert detect_format(path).name == fmt


def test_jsonl_round_trips_unregistered_algorithm_and_qualities(tmp_path: Path) -> None:
    records = [KnownRecord(hashes={"future": Hash("future", b"\x01\x02\x03", 55)}, name="x")]
    back, _ = read_all(write_file(tmp_path / "e.jsonl", "matcher-jsonl", records))
    assert without_source(back) == records
    assert back[0].hashes["future"].quality == 55


def test_csv_writer_refuses_hashes_without_a_column() -> None:
    records = [KnownRecord(hashes={"future": Hash("future", b"\x01")})]
    with pytest.raises(UsageError):
        write_records(records, io.StringIO(), "matcher-csv")


def test_csv_formula_cells_are_escaped_reversibly(tmp_path: Path) -> None:
    path = write_file(tmp_path / "e.csv", "matcher-csv", full_records())
    text = path.read_text(encoding="utf-8")
    assert "'-leading minus" in text and "'=series" in text and "''quoted" in text


def test_pdq_hex_round_trip(tmp_path: Path) -> None:
    records = [
        KnownRecord(hashes={"pdq": pdq(quality=100)}, name="a, b.jpg"),
        KnownRecord(hashes={"pdq": pdq()}, name=None),
        KnownRecord(hashes={"pdq": pdq(quality=0)}, name="c.png"),
    ]
    path = tmp_path / "hashes.csv"
    with open(path, "wb") as out:  # binary streams are written as UTF-8
        assert write_records(records + [KnownRecord(md5=hexrand(32))], out, "pdq-hex") == 3
    back, problems = read_all(path)
    assert problems == []
    assert without_source(back) == records
    assert [r.hashes["pdq"].quality for r in back] == [100, None, 0]


def test_digest_list_round_trip(tmp_path: Path) -> None:
    records = [
        KnownRecord(sha256=hexrand(64), name="file one.bin"),
        KnownRecord(sha1=hexrand(40), name="back\\slash\nnewline"),
        KnownRecord(md5=hexrand(32), name="日本.jpg"),
    ]
    path = write_file(tmp_path / "list.sha256", "digest-list", records)
    assert path.read_text(encoding="utf-8").splitlines()[1].startswith("\\")
    back, problems = read_all(path)
    assert problems == []
    assert without_source(back) == records


def test_vics_round_trip(tmp_path: Path) -> None:
    records = [
        KnownRecord(
            hashes={"pdq": pdq()},
            md5=hexrand(32),
            sha1=hexrand(40),
            sha256=hexrand(64),
            photodna="pdna-text-verbatim==",
            category=0,
            series='Series ] } " ,',
            comment="c",
            name="n.jpg",
            size=99,
            extra={"MediaID": 12, "IsDistributed": True, "Tags": "t1, t2"},
        ),
        KnownRecord(md5=hexrand(32), category=None),
        KnownRecord(
            sha1=hexrand(40),
            category=2,
            extra={"MediaFiles": [{"FileName": "f.jpg", "FilePath": "x/f.jpg"}]},
            name="f.jpg",
        ),
    ]
    path = write_file(tmp_path / "set.json", "vics", records)
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["@odata.context"].endswith("#Media")
    assert doc["value"][0]["MD5"] == records[0].md5.upper()
    assert doc["value"][1]["Category"] is None
    back, problems = read_all(path)
    assert problems == []
    assert without_source(back) == records


# --------------------------------------------------------------------------------------------------
# Detection by content, with misleading names


def _nsrl_db(path: Path, rows: list[tuple[Any, ...]], view: bool = True) -> Path:
    connection = sqlite3.connect(path)
    connection.execute(
        "CREATE TABLE FILE_DATA (sha256 TEXT, sha1 TEXT, md5 TEXT, crc32 TEXT, file_name TEXT, "
        "file_size INTEGER, package_id INTEGER)"
    )
    connection.executemany("INSERT INTO FILE_DATA VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    if view:
        connection.execute(
            "CREATE VIEW FILE AS SELECT sha256, sha1, md5, crc32, file_name, file_size, package_id FROM FILE_DATA"
        )
    connection.commit()
    connection.close()
    return path


def _nsrl_row(rnd: random.Random, name: str = "lib.dll") -> tuple[Any, ...]:
    return (
        hexrand(64, rnd).upper(),
        hexrand(40, rnd).upper(),
        hexrand(32, rnd).upper(),
        "0A0B0C0D",
        name,
        rnd.randrange(1, 10**6),
        1,
    )


def _samples(tmp_path: Path) -> dict[str, Path]:
    rnd = random.Random(5)
    out: dict[str, Path] = {}
    out["pdq-hex"] = tmp_path / "looks.json"
    out["pdq-hex"].write_text("".join(f"{hexrand(64, rnd)}\n" for _ in range(5)))
    out["digest-list"] = tmp_path / "looks.csv"
    out["digest-list"].write_text("".join(f"{hexrand(32, rnd)}  name {i}.jpg\n" for i in range(5)))
    out["vics"] = tmp_path / "looks.txt"
    out["vics"].write_text(json.dumps({"odata.metadata": "m#Media", "value": [{"MD5": hexrand(32, rnd)}]}))
    out["matcher-jsonl"] = tmp_path / "looks.csv.txt"
    write_file(out["matcher-jsonl"], "matcher-jsonl", [KnownRecord(md5=hexrand(32, rnd))])
    out["matcher-csv"] = tmp_path / "looks.jsonl"
    write_file(out["matcher-csv"], "matcher-csv", [KnownRecord(md5=hexrand(32, rnd))])
    out["matcher-hash-jsonl"] = tmp_path / "looks.pdq"
    row = HashRecord(
        path="img.png",
        size=10,
        md5=hexrand(32, rnd),
        sha1=hexrand(40, rnd),
        sha256=hexrand(64, rnd),
        hashes={"pdq": pdq(rnd)},
        pdq_quality=80,
    ).to_dict(["pdq"])
    out["matcher-hash-jsonl"].write_text(json.dumps(row) + "\n")
    out["nsrl"] = _nsrl_db(tmp_path / "looks.txt.csv", [_nsrl_row(rnd)])
    return out


def test_detection_by_content_not_extension(tmp_path: Path) -> None:
    for expected, path in _samples(tmp_path).items():
        assert detect_format(path).name == expected, path
        assert detect_format(path.read_bytes()[:4096], filename=path.name).name == expected
        records, problems = read_all(path)
        assert records and not problems, expected


def test_detection_from_a_stream(tmp_path: Path) -> None:
    for expected, path in _samples(tmp_path).items():
        with open(path, "rb") as stream:
            records, problems = read_all(stream)
            assert not stream.closed
        assert records and not problems, expected
    data = "".join(f"{hexrand(64)}\n" for _ in range(3)).encode()
    records, _ = read_all(io.BytesIO(data))
    assert len(records) == 3 and records[0].source == "<stream>:1"


def test_bare_64_hex_is_pdq_unless_sha256_list_is_named(tmp_path: Path) -> None:
    digests = [hexrand(64) for _ in range(3)]
    path = tmp_path / "list.sha256"
    path.write_text("\n".join(digests) + "\n")
    assert detect_format(path).name == "pdq-hex"  # extension does not override content
    as_pdq, _ = read_all(path)
    assert [r.hashes["pdq"].hex() for r in as_pdq] == digests
    as_sha, _ = read_all(path, "sha256-list")
    assert [r.sha256 for r in as_sha] == digests and all(not r.hashes for r in as_sha)
    named = tmp_path / "named.txt"
    named.write_text("".join(f"{d}  f{i}.bin\n" for i, d in enumerate(digests)))
    assert detect_format(named).name == "digest-list"
    mixed, problems = read_all(named, "sha256-list")
    assert [r.sha256 for r in mixed] == digests and not problems
    short, problems = read_all(io.BytesIO(hexrand(32).encode()), "sha256-list")
    assert short == [] and "expected 64" in problems[0].message


# --------------------------------------------------------------------------------------------------
# Line formats: variants and problems


def test_pdq_variants(tmp_path: Path) -> None:
    a, b, c = hexrand(64), hexrand(64), hexrand(64)
    path = tmp_path / "mixed.txt"
    path.write_text(f"# made-up list\n\nhash,quality,filename\n{a.upper()}\npdq {b}\n{c},77,dir/x,y.jpg\n")
    records, problems = read_all(path)
    assert not problems
    assert [r.hashes["pdq"].hex() for r in records] == [a, b, c]
    assert records[2].hashes["pdq"].quality == 77 and records[2].name == "dir/x,y.jpg"
    assert records[0].source == f"{path}:4"


def test_digest_variants(tmp_path: Path) -> None:
    m, s1, s2 = hexrand(32), hexrand(40), hexrand(64)
    path = tmp_path / "sums"
    path.write_bytes(
        f"{m.upper()}  plain.txt\n{s1} *binary.bin\nSHA256 (tagged name.jpg) = {s2}\n{m}\n\\{m}  a\\nb\\\\c\n".encode()
    )
    records, problems = read_all(path)
    assert not problems
    assert (records[0].md5, records[0].name) == (m, "plain.txt")
    assert (records[1].sha1, records[1].name) == (s1, "binary.bin")
    assert (records[2].sha256, records[2].name) == (s2, "tagged name.jpg")
    assert (records[3].md5, records[3].name) == (m, None)
    assert records[4].name == "a\nb\\c"


def _bad_pdq_list(tmp_path: Path) -> tuple[Path, list[int]]:
    lines = [hexrand(64) for _ in range(6)]
    lines[1] = hexrand(62)  # wrong length
    lines[3] = "zz" + hexrand(62)  # not hex
    lines[4] = hexrand(64) + ",high,x.jpg"  # bad quality
    path = tmp_path / "bad.txt"
    path.write_text("# header comment\n" + "\n".join(lines) + "\n")
    return path, [3, 5, 6]


def test_malformed_lines_reported_with_line_numbers_and_skipped(tmp_path: Path) -> None:
    path, bad_lines = _bad_pdq_list(tmp_path)
    records, problems = read_all(path)
    assert len(records) == 3
    assert [p.line for p in problems] == bad_lines
    assert all(p.path == str(path) for p in problems)
    assert "hex digits" in problems[0].message
    assert str(problems[0]).startswith(f"{path}:3: ")


def test_strict_raises_at_first_problem(tmp_path: Path) -> None:
    path, _ = _bad_pdq_list(tmp_path)
    seen: list[KnownRecord] = []
    with pytest.raises(HashListError, match=rf"{path.name}:3: "):
        for record in read_records(path, strict=True):
            seen.append(record)
    assert len(seen) == 1


def test_problems_are_logged_without_a_handler(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path, _ = _bad_pdq_list(tmp_path)
    assert len(list(read_records(path))) == 3
    assert sum("bad.txt:" in r.getMessage() for r in caplog.records if r.levelname == "WARNING") == 3


def test_export_problems(tmp_path: Path) -> None:
    good = json.dumps(
        {
            "name": "n",
            "size": 1,
            "md5": hexrand(32),
            "sha1": None,
            "sha256": None,
            "photodna": None,
            "category": 0,
            "series": None,
            "comment": None,
            "extra": {},
        }
    )
    path = tmp_path / "e.jsonl"
    path.write_text(
        "\n".join(
            [
                good,
                "{broken",
                json.dumps({**json.loads(good), "md5": "xyz"}),
                json.dumps({**json.loads(good), "category": "high"}),
                "[1]",
                good,
            ]
        )
        + "\n"
    )
    records, problems = read_all(path)
    assert len(records) == 2 and records[0].category == 0
    assert [p.line for p in problems] == [2, 3, 4, 5]
    csv_path = tmp_path / "e.csv"
    write_file(csv_path, "matcher-csv", [KnownRecord(md5=hexrand(32))] * 2)
    text = csv_path.read_text().splitlines()
    text.insert(2, "too,few,cells")
    csv_path.write_text("\n".join(text) + "\n")
    records, problems = read_all(csv_path)
    assert len(records) == 2 and [p.line for p in problems] == [3]


def test_matcher_hash_jsonl(tmp_path: Path) -> None:
    rnd = random.Random(9)
    ok = HashRecord(
        path="dir/a.gif",
        frame=1,
        frame_count=3,
        size=321,
        mime="image/gif",
        width=8,
        height=9,
        md5=hexrand(32, rnd),
        sha1=hexrand(40, rnd),
        sha256=hexrand(64, rnd),
        hashes={"pdq": pdq(rnd), "phash": Hash.from_hex("phash", hexrand(16, rnd))},
        pdq_quality=61,
    )
    failed = HashRecord(path="dir/broken.jpg", error="image data ends early")
    digests_only = HashRecord(
        path="dir/odd.bin", md5=hexrand(32, rnd), sha1=hexrand(40, rnd), sha256=hexrand(64, rnd), error="not an image"
    )
    algorithms = ["pdq", "phash", "dhash"]
    path = tmp_path / "hashes.out"
    path.write_text("".join(json.dumps(r.to_dict(algorithms)) + "\n" for r in (ok, failed, digests_only)))
    assert detect_format(path).name == "matcher-hash-jsonl"
    records, problems = read_all(path)
    assert [p.line for p in problems] == [2] and "image data ends early" in problems[0].message
    first, second = records
    assert set(first.hashes) == {"pdq", "phash"} and first.hashes["pdq"].quality == 61
    assert first.hashes["pdq"] == ok.hashes["pdq"]
    assert (first.md5, first.sha1, first.sha256, first.name, first.size) == (
        ok.md5,
        ok.sha1,
        ok.sha256,
        "dir/a.gif",
        321,
    )
    assert first.extra["frame"] == 1 and first.extra["mime"] == "image/gif"
    assert second.hashes == {} and second.md5 == digests_only.md5 and second.extra["error"] == "not an image"


# --------------------------------------------------------------------------------------------------
# VICS


def _media(rnd: random.Random, i: int) -> dict[str, Any]:
    return {
        "odata.id": f"Media({i})",
        "MediaID": i,
        "Category": i % 4,
        "MD5": hexrand(32, rnd).upper(),
        "SHA1": hexrand(40, rnd).upper(),
        "MediaSize": str(100 + i),
        "IsPrecategorized": "True",
        "VictimIdentified": "false",
        "MediaFiles": [{"FileName": f"img{i}.jpg"}],
    }


def _vics(version: str, shape: str, media: list[dict[str, Any]]) -> dict[str, Any]:
    key, context = (
        ("odata.metadata", "http://github.com/ICMEC/ProjectVic/DataModels/1.3.xml#")
        if version == "1"
        else ("@odata.context", "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/Default/$metadata#")
    )
    if shape == "Media":
        return {key: context + "Media", "value": media}
    case = {
        "CaseID": "c1",
        "CaseNumber": "synthetic-1",
        "Media@odata.navigationLinkUrl": "x",
        "Media": media,
        "TotalMediaFiles": len(media),
    }
    return {key: context + "Cases", "value": [case]}


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize("shape", ["Media", "Cases"])
@pytest.mark.parametrize("bom", [False, True])
def test_vics_versions_and_shapes(tmp_path: Path, version: str, shape: str, bom: bool) -> None:
    rnd = random.Random(3)
    media = [_media(rnd, i) for i in range(5)]
    text = json.dumps(_vics(version, shape, media), indent=1)
    path = tmp_path / "set.dat"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    assert detect_format(path).name == "vics"
    records, problems = read_all(path)
    assert problems == []
    assert [r.md5 for r in records] == [m["MD5"].lower() for m in media]
    assert [r.sha1 for r in records] == [m["SHA1"].lower() for m in media]
    assert [r.category for r in records] == [0, 1, 2, 3, 0]
    first = records[0]
    assert first.name == "img0.jpg" and first.size == 100
    assert first.extra == {"MediaID": 0, "IsPrecategorized": True, "VictimIdentified": False}
    lines = text.splitlines()
    assert lines[int(first.source.rsplit(":", 1)[1]) - 1].strip() == "{"  # the line the Media starts on


def test_vics_fields_category_and_missing(tmp_path: Path) -> None:
    rnd = random.Random(4)
    pdq_hex = hexrand(64, rnd)
    media = [
        {"MD5": hexrand(32, rnd), "Category": 0},
        {"MD5": hexrand(32, rnd), "Category": None},
        {"MD5": hexrand(32, rnd)},
        {"MD5": hexrand(32, rnd), "Category": "1", "Series": "Synthetic series", "Comments": "made up"},
        {"SHA1": "", "MD5": None, "PhotoDNA": "PhotoDNA-passed-through, verbatim=="},
        {
            "AlternativeHashes": [
                {"HashName": "PhotoDNA", "HashValue": "alt-pdna"},
                {"HashName": "PDQ", "HashValue": pdq_hex.upper()},
                {"HashName": "SomethingElse", "HashValue": "zz"},
            ],
            "RelativeFilePath": "a\\b\\c.png",
            "SHA256": hexrand(64, rnd).upper(),
        },
        {"PDQ": pdq_hex, "MediaSize": 5},
    ]
    path = tmp_path / "v.json"
    path.write_text(json.dumps({"@odata.context": "c#Media", "value": media}))
    records, problems = read_all(path)
    assert problems == []
    assert [r.category for r in records[:4]] == [0, None, None, 1]
    assert (records[3].series, records[3].comment) == ("Synthetic series", "made up")
    assert records[4].photodna == "PhotoDNA-passed-through, verbatim==" and records[4].md5 is None
    alt = records[5]
    assert alt.photodna == "alt-pdna" and alt.hashes["pdq"].hex() == pdq_hex and alt.name == "c.png"
    assert alt.sha256 == media[5]["SHA256"].lower()
    assert alt.extra["AlternativeHashes"] == [{"HashName": "SomethingElse", "HashValue": "zz"}]
    assert records[6].hashes["pdq"].hex() == pdq_hex and records[6].size == 5


def test_vics_bad_entries_skipped_with_lines(tmp_path: Path) -> None:
    media = [
        {"MD5": hexrand(32)},
        {"MD5": "ABC"},
        {"Category": "high", "MD5": hexrand(32)},
        {"Category": 1},
        "not an object",
        {"MD5": hexrand(32)},
    ]
    path = tmp_path / "v.json"
    path.write_text(json.dumps({"@odata.context": "c#Media", "value": media}, indent=0))
    records, problems = read_all(path)
    assert len(records) == 2
    text_lines = path.read_text().splitlines()
    assert [text_lines[p.line - 1] for p in problems] == ["{", "{", "{", '"not an object",']
    with pytest.raises(HashListError, match=r"v\.json:\d+: Media entry skipped: md5"):
        list(read_records(path, strict=True))


def test_truncated_vics_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    rnd = random.Random(8)
    data = json.dumps(_vics("2", "Cases", [_media(rnd, i) for i in range(20)]), indent=2).encode()
    path = tmp_path / "cut.json"
    path.write_bytes(data[: len(data) * 2 // 3])
    records, problems = read_all(path)
    assert 0 < len(records) < 20
    assert len(problems) == 1 and "ends early" in problems[0].message
    with pytest.raises(HashListError, match="ends early"):
        list(read_records(path, strict=True))
    # every cut point, and some garbage, ends as records + problems or a MatcherError
    for cut in range(0, len(data), 97):
        try:
            read_all(io.BytesIO(data[:cut]), "vics")
        except MatcherError:
            pass
    for junk in (
        b"{",
        b'{"value": [',
        b'{"value": [{"MD5": "',
        b"\xff\xfe\x00",
        b'{"value": 5}',
        b"[1, 2]",
        data[:200] + b"\x00garbage}" + data[200:],
        data.replace(b'"MD5"', b'"MD5" "', 1),
    ):
        records, problems = read_all(io.BytesIO(junk), "vics")
        assert problems


def test_vics_streams_large_sets_across_chunks(tmp_path: Path) -> None:
    rnd = random.Random(11)
    media = [{"MediaID": i, "MD5": hexrand(32, rnd), "Comments": "x" * rnd.randrange(0, 3000)} for i in range(600)]
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"odata.metadata": "m#Media", "value": media}))
    records, problems = read_all(path)
    assert not problems and [r.md5 for r in records] == [m["MD5"] for m in media]


# --------------------------------------------------------------------------------------------------
# NSRL


def test_nsrl(tmp_path: Path) -> None:
    rnd = random.Random(12)
    rows = [_nsrl_row(rnd, f"file{i}.dll") for i in range(4)]
    rows[2] = ("NOTHEX", *rows[2][1:])
    db = _nsrl_db(tmp_path / "RDS_minimal.db", rows)
    before = db.read_bytes()
    assert detect_format(db).name == "nsrl"
    records, problems = read_all(db)
    assert len(records) == 3 and [p.line for p in problems] == [3]
    assert records[0].sha256 == rows[0][0].lower() and records[0].md5 == rows[0][2].lower()
    assert records[0].name == "file0.dll" and records[0].size == rows[0][5]
    assert all(r.extra == {"known_good": True} for r in records)
    assert db.read_bytes() == before  # opened read-only
    assert not (tmp_path / "RDS_minimal.db-journal").exists()


def test_sqlite_without_file_view_is_not_nsrl(tmp_path: Path) -> None:
    db = _nsrl_db(tmp_path / "other.db", [_nsrl_row(random.Random(1))], view=False)
    with pytest.raises(HashListError):
        detect_format(db)
    with pytest.raises(HashListError, match="FILE view"):
        list(read_records(db, "nsrl"))


# --------------------------------------------------------------------------------------------------
# Streaming


@pytest.mark.slow
def test_streaming_keeps_memory_small(tmp_path: Path) -> None:
    rnd = random.Random(13)
    path = tmp_path / "big.pdq"
    lines = 200_000
    with open(path, "w") as out:
        for _ in range(lines):
            out.write(f"{rnd.getrandbits(256):064x}\n")
    size = path.stat().st_size
    tracemalloc.start()
    try:
        count = 0
        for _ in read_records(path):
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == lines
    assert peak < size // 20, (peak, size)


@pytest.mark.slow
def test_vics_streaming_keeps_memory_small(tmp_path: Path) -> None:
    rnd = random.Random(14)
    path = tmp_path / "big.json"
    entries = 10_000
    with open(path, "w") as out:
        out.write('{"@odata.context": "c#Cases", "value": [{"CaseID": "1", "Media": [\n')
        for i in range(entries):
            media = {
                "MediaID": i,
                "Category": i % 3,
                "MD5": f"{rnd.getrandbits(128):032X}",
                "IsPrecategorized": "false",
                "Comments": "synthetic " * 40,
                "MediaFiles": [{"FileName": f"f{i}.jpg", "FilePath": "synthetic"}],
            }
            out.write(("," if i else "") + json.dumps(media) + "\n")
        out.write("]}]}\n")
    size = path.stat().st_size
    tracemalloc.start()
    try:
        count = sum(1 for _ in read_records(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == entries
    assert peak < size // 4, (peak, size)


def test_damaged_input_never_escapes_as_another_exception(tmp_path: Path) -> None:
    """Random damage to every sample, read detected and as every format: records, problems or a
    MatcherError, never anything else."""
    rnd = random.Random(15)
    for name, path in _samples(tmp_path).items():
        data = path.read_bytes()
        for i in range(25):
            damaged = bytearray(data)
            for _ in range(rnd.randrange(1, 4)):
                pos = rnd.randrange(len(damaged))
                if rnd.random() < 0.5:
                    damaged[pos] = rnd.randrange(256)
                else:
                    del damaged[pos:]
            target = tmp_path / f"damaged-{name}-{i}"
            target.write_bytes(bytes(damaged))
            for fmt in ["auto", *format_names()]:
                try:
                    list(read_records(target, format=fmt, on_problem=lambda p: None))
                except MatcherError:
                    pass
