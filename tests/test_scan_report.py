"""Scan report writers (JSON Lines, CSV, VICS 2.0 #Cases). All records are synthetic: made-up
hashes and digests from a seeded random generator; no image is involved."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import pytest

from matcher.errors import UsageError
from matcher.formats.registry import read_records
from matcher.formats.scan_report import (
    MATCH_COLUMNS,
    SCAN_WRITERS,
    VICS_CASES_CONTEXT,
    CsvScanWriter,
    JsonlScanWriter,
    VicsScanWriter,
    csv_columns,
)
from matcher.hashes import Hash
from matcher.known import ImportProblem, KnownRecord
from matcher.scan_records import ScanMatch, ScanRecord

ALGOS = ["pdq", "phash"]
RND = random.Random(20240612)


def hexrand(digits: int) -> str:
    return f"{RND.getrandbits(digits * 4):0{digits}x}"


def record(
    path: str | None = "evidence/a.jpg",
    *,
    status: str = "match",
    frame: int | None = None,
    frame_count: int | None = 1,
    matches: tuple[ScanMatch, ...] | None = None,
    **fields: object,
) -> ScanRecord:
    if matches is None:
        matches = (
            (
                ScanMatch("pdq", 12, "rot90", 7, "known-list", 1, "Series A"),
                ScanMatch("phash", 4, "rot90", 7, "known-list", 1, "Series A"),
            )
            if status == "match"
            else ()
        )
    values: dict[str, object] = dict(
        path=path,
        status=status,
        frame=frame,
        frame_count=frame_count,
        size=1234,
        mime="image/jpeg",
        extension_mismatch=False,
        width=200,
        height=150,
        md5=hexrand(32),
        sha1=hexrand(40),
        sha256=hexrand(64),
        hashes={"pdq": Hash.from_hex("pdq", hexrand(64), 93), "phash": Hash.from_hex("phash", hexrand(16))},
        pdq_quality=93,
        matches=matches,
    )
    values.update(fields)
    return ScanRecord(**values)  # type: ignore[arg-type]


def write(fmt: str, records: list[ScanRecord], **kwargs: object) -> str:
    out = io.StringIO()
    writer = SCAN_WRITERS[fmt](out, ALGOS, **kwargs)  # type: ignore[call-arg]
    assert writer.write_all(records) == len(records)
    writer.close()
    return out.getvalue()


def test_registry_names() -> None:
    assert set(SCAN_WRITERS) == {"jsonl", "csv", "vics"}
    assert SCAN_WRITERS["jsonl"] is JsonlScanWriter and SCAN_WRITERS["csv"] is CsvScanWriter
    assert SCAN_WRITERS["vics"] is VicsScanWriter


# --------------------------------------------------------------------------------------------------
# JSON Lines


def test_jsonl_keys_and_round_trip() -> None:
    records = [
        record(),
        record("évidence/ünïcode 写真.png", status="no_match", notes=("pdq not matched: quality 32 below 50",)),
        record(
            "bad/\\xff.jpg",
            status="error",
            error="image is truncated",
            hashes={},
            pdq_quality=None,
            path_raw_hex="6261642fff2e6a7067",
        ),
        record(
            "anim.gif",
            status="match",
            frame=3,
            frame_count=10,
            matches=(ScanMatch("md5", 0, None, 1, "list", None, None),),
        ),
    ]
    text = write("jsonl", records)
    assert "ünïcode 写真" in text  # not ASCII-escaped
    lines = text.splitlines()
    assert len(lines) == len(records)
    for line, original in zip(lines, records):
        data = json.loads(line)
        assert list(data) == list(original.to_dict(ALGOS))
        assert "pdq" in data and "phash" in data and "matches" in data
        back = ScanRecord.from_dict(data, ALGOS)
        assert back == original
        assert back.pdq_quality == original.pdq_quality


def test_jsonl_empty() -> None:
    assert write("jsonl", []) == ""


# --------------------------------------------------------------------------------------------------
# CSV


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_columns_and_cells() -> None:
    columns = csv_columns(ALGOS)
    assert "matches" not in columns
    start = columns.index("match_algorithm")
    assert tuple(columns[start : start + len(MATCH_COLUMNS)]) == MATCH_COLUMNS
    assert columns[:3] == ["path", "frame", "frame_count"]
    assert {"pdq", "phash", "pdq_quality", "status", "error", "notes", "path_raw_hex"} <= set(columns)

    text = write(
        "csv",
        [
            record(notes=("first note", "second note")),
            record("b.png", status="no_match", extension_mismatch=True, width=None),
        ],
    )
    header = next(csv.reader(io.StringIO(text)))
    assert header == columns
    first, second = read_csv(text)
    assert first["match_algorithm"] == "pdq" and first["match_distance"] == "12"
    assert first["match_variant"] == "rot90" and first["match_record"] == "7"
    assert first["match_list"] == "known-list" and first["match_category"] == "1"
    assert first["match_series"] == "Series A" and first["match_count"] == "2"
    assert first["notes"] == "first note; second note"
    assert first["extension_mismatch"] == "false" and first["frame"] == ""
    assert second["extension_mismatch"] == "true" and second["width"] == ""
    assert second["match_algorithm"] == "" and second["match_count"] == "0" and second["notes"] == ""


@pytest.mark.parametrize("path", ['=HYPERLINK("http://example.invalid","x")', "+1", "-1", "@x", "\tx"])
def test_csv_formula_injection(path: str) -> None:
    bad = record(
        path,
        notes=("=cmd|' /C calc'!A0",),
        error="-2+3",
        matches=(ScanMatch("pdq", 3, "orig", 1, "=evil list", None, "+series"),),
    )
    row = read_csv(write("csv", [bad]))[0]
    assert row["path"] == "'" + path
    for column in ("path", "notes", "error", "match_list", "match_series"):
        assert not row[column].startswith(("=", "+", "-", "@", "\t")), column
    # numbers stay numbers
    assert row["match_distance"] == "3" and row["size"] == "1234"


def test_csv_empty_is_header_only() -> None:
    assert read_csv(write("csv", [])) == []
    assert write("csv", []).splitlines() == [",".join(csv_columns(ALGOS))]


# --------------------------------------------------------------------------------------------------
# VICS #Cases


def vics(records: list[ScanRecord], **kwargs: object) -> dict:
    text = write("vics", records, **kwargs)
    data = json.loads(text)
    assert data["@odata.context"] == VICS_CASES_CONTEXT
    assert len(data["value"]) == 1
    return data


@pytest.mark.parametrize("count", [0, 1, 25])
def test_vics_valid_json(count: int) -> None:
    records = [record(f"dir/file{i}.jpg", status="match" if i % 2 else "no_match") for i in range(count)]
    case = vics(records)["value"][0]
    assert case["SourceApplicationName"] == "matcher"
    assert [m["MediaID"] for m in case["Media"]] == list(range(1, count + 1))


def test_vics_media_fields() -> None:
    rec = record("evidence/sub dir/a.jpg")
    case = vics([rec], case={"CaseNumber": "2024-0042", "Examiner": "Examiner Name"})["value"][0]
    assert case["CaseNumber"] == "2024-0042" and case["Examiner"] == "Examiner Name"
    (media,) = case["Media"]
    assert media["Category"] == 1 and media["IsPrecategorized"] is True and media["Series"] == "Series A"
    assert media["MD5"] == rec.md5.upper() and media["SHA1"] == rec.sha1.upper()  # type: ignore[union-attr]
    assert media["SHA256"] == rec.sha256.upper()  # type: ignore[union-attr]
    assert media["MediaSize"] == 1234
    assert media["MediaFiles"] == [{"FileName": "a.jpg", "FilePath": "evidence/sub dir"}]
    assert "RelativeFilePath" not in media
    assert {"HashName": "PDQ", "HashValue": str(rec.hashes["pdq"])} in media["AlternativeHashes"]
    assert {"HashName": "pHash", "HashValue": str(rec.hashes["phash"])} in media["AlternativeHashes"]
    assert (
        "PDQ distance 12 to record 7 of list 'known-list' (category 1, series 'Series A'): "
        "rotated 90° counter-clockwise (variant rot90)" in media["Comments"]
    )
    assert "2 matches" in media["Comments"]


def test_vics_no_match_has_null_category() -> None:
    (media,) = vics([record(status="no_match", notes=("pdq not matched: quality 32 below 50",))])["value"][0]["Media"]
    assert media["Category"] is None and media["IsPrecategorized"] is False
    assert "Series" not in media
    assert "quality 32 below 50" in media["Comments"]


def test_vics_category_zero_kept() -> None:
    rec = record(matches=(ScanMatch("sha1", 0, None, 3, "list", 0, None),))
    (media,) = vics([rec])["value"][0]["Media"]
    assert media["Category"] == 0 and media["IsPrecategorized"] is True
    assert "SHA1 (exact)" in media["Comments"]


def test_vics_multi_frame_one_media_with_best_match() -> None:
    digests = dict(md5=hexrand(32), sha1=hexrand(40), sha256=hexrand(64))
    frames = [
        record("anim.gif", status="no_match", frame=0, frame_count=3, **digests),
        record(
            "anim.gif",
            status="match",
            frame=1,
            frame_count=3,
            **digests,
            matches=(ScanMatch("pdq", 20, "orig", 5, "L", 2, None),),
        ),
        record(
            "anim.gif",
            status="match",
            frame=2,
            frame_count=3,
            **digests,
            matches=(ScanMatch("pdq", 9, "flipy", 6, "L", 1, "S"),),
        ),
        record("still.png"),
        record("other.gif", status="no_match", frame=0, frame_count=2),
        record("other.gif", status="error", frame=1, frame_count=2, error="frame 1 is truncated", hashes={}),
    ]
    media = vics(frames)["value"][0]["Media"]
    assert len(media) == 3
    anim = media[0]
    assert anim["MediaFiles"][0]["FileName"] == "anim.gif"
    assert anim["Category"] == 1 and anim["Series"] == "S"
    assert {"HashName": "PDQ", "HashValue": str(frames[2].hashes["pdq"])} in anim["AlternativeHashes"]
    assert "matched in frame 2 of 3" in anim["Comments"] and "2 matches in all" in anim["Comments"]
    other = media[2]
    assert other["Comments"].startswith("matcher scan: error")
    assert {"HashName": "PDQ", "HashValue": str(frames[4].hashes["pdq"])} in other["AlternativeHashes"]


def test_vics_unicode_and_non_utf8_paths() -> None:
    records = [
        record("évidence/写真 ünïcode.jpg"),
        record("bad/\\xff\\xfe.jpg", path_raw_hex="6261642ffffe2e6a7067"),
    ]
    text = write("vics", records)
    assert "写真 ünïcode.jpg" in text
    media = json.loads(text)["value"][0]["Media"]
    assert media[0]["MediaFiles"][0]["FileName"] == "写真 ünïcode.jpg"
    assert media[1]["MediaFiles"][0]["FileName"] == "\\xff\\xfe.jpg"
    assert "raw path (hex) 6261642ffffe2e6a7067" in media[1]["Comments"]


def test_vics_read_back_by_vics_reader(tmp_path: Path) -> None:
    records = [
        record("a.jpg"),
        record("b.jpg", status="no_match"),
        record("c.jpg", matches=(ScanMatch("md5", 0, None, 2, "L", 0, None),)),
        record(
            "unreadable.jpg",
            status="error",
            error="cannot open: permission denied",
            size=None,
            md5=None,
            sha1=None,
            sha256=None,
            hashes={},
            pdq_quality=None,
        ),
    ]
    path = tmp_path / "report.json"
    path.write_text(write("vics", records, case={"CaseNumber": "C-1"}), encoding="utf-8")
    problems: list[ImportProblem] = []
    for fmt in ("vics", "auto"):
        problems.clear()
        known = list(read_records(path, fmt, on_problem=problems.append))
        assert [k.name for k in known] == ["a.jpg", "b.jpg", "c.jpg"]
        assert [k.category for k in known] == [1, None, 0]
        assert known[0].md5 == records[0].md5 and known[0].sha256 == records[0].sha256
        assert known[0].hashes["pdq"] == records[0].hashes["pdq"]
        assert known[0].hashes["phash"] == records[0].hashes["phash"]
        assert known[0].series == "Series A" and known[0].size == 1234
        assert known[0].comment is not None and known[0].comment.startswith("matcher scan: match")
        # the unreadable file has nothing to match on: the reader reports and skips it
        assert len(problems) == 1 and "no MD5" in problems[0].message
    empty = tmp_path / "empty.json"
    empty.write_text(write("vics", []), encoding="utf-8")
    problems.clear()
    assert list(read_records(empty, "vics", on_problem=problems.append)) == [] and problems == []


def test_vics_streams_and_header_is_lazy() -> None:
    out = io.StringIO()
    writer = VicsScanWriter(out, ALGOS)
    assert out.getvalue() == ""
    writer.write(record("a.jpg"))
    assert '"MediaID": 1' in out.getvalue()  # written at once, not held until close
    writer.write(record("f.gif", frame=0, frame_count=2))
    before = out.getvalue()
    writer.write(record("f.gif", frame=1, frame_count=2))
    assert out.getvalue() == before  # frames wait for the file to be complete
    writer.close()
    writer.close()  # idempotent
    assert len(json.loads(out.getvalue())["value"][0]["Media"]) == 2
    with pytest.raises(UsageError):
        writer.write(record())


def test_vics_case_validation() -> None:
    with pytest.raises(UsageError):
        VicsScanWriter(io.StringIO(), ALGOS, case={"Media": []})
    with pytest.raises(UsageError):
        VicsScanWriter(io.StringIO(), ALGOS, case={"When": object()})
    out = io.StringIO()
    with VicsScanWriter(out, ALGOS, case={"SourceApplicationName": "lab tool", "CaseID": 17}) as writer:
        writer.write(record())
    case = json.loads(out.getvalue())["value"][0]
    assert case["SourceApplicationName"] == "lab tool" and case["CaseID"] == 17
    assert list(case)[-1] == "Media"


# --------------------------------------------------------------------------------------------------
# Matches found in a known image's view (issue 6)


def view_record() -> ScanRecord:
    return record(
        "evidence/cropped.jpg",
        matches=(
            ScanMatch("pdq", 9, "trim+flipy", 3, "known-list", 2, None, view="crop10"),
            ScanMatch("phash", 6, "top88", 3, "known-list", 2, None, view="top88"),
        ),
    )


def test_view_in_jsonl_csv_and_vics() -> None:
    original = view_record()
    data = json.loads(write("jsonl", [original]))
    assert data["matches"][0]["variant"] == "trim+flipy" and data["matches"][0]["view"] == "crop10"
    assert list(data["matches"][0])[:4] == ["algorithm", "distance", "variant", "view"]
    assert ScanRecord.from_dict(data, ALGOS) == original
    # a report line of a version without views reads back with view None
    del data["matches"][0]["view"]
    assert ScanRecord.from_dict(data, ALGOS).matches[0].view is None

    text = write("csv", [original, record()])
    header = next(csv.reader(io.StringIO(text)))
    assert header[-2:] == ["match_view", "match_explanation"] and header == csv_columns(ALGOS)
    assert header[-3] == "path_raw_hex"  # the columns of earlier versions keep their places
    viewed, plain = read_csv(text)
    assert viewed["match_variant"] == "trim+flipy" and viewed["match_view"] == "crop10"
    assert plain["match_variant"] == "rot90" and plain["match_view"] == ""
    assert plain["match_explanation"] == "rotated 90° counter-clockwise"

    media = json.loads(write("vics", [original]))["value"][0]["Media"][0]
    assert "PDQ distance 9 to record 3" in media["Comments"]
    assert "variant trim+flipy, view crop10" in media["Comments"]  # codes the words do not cover, as they are


# --------------------------------------------------------------------------------------------------
# Byte-identical output. Recorded from matcher before the per-algorithm facts replaced the "pdq"
# special cases (issue 15): reports and exports must not change by a byte, column order included.

GOLDEN_PDQ = Hash("pdq", bytes(range(32)), 93)
GOLDEN_PHASH = Hash("phash", bytes(range(8, 16)))
GOLDEN_RECORDS = [
    ScanRecord(
        "/e/a.png",
        "match",
        hashes={"pdq": GOLDEN_PDQ, "phash": GOLDEN_PHASH},
        pdq_quality=93,
        matches=(ScanMatch("pdq", 4, "rot90", 7, "agency", 1, "s1"),),
        notes=("n",),
    ),
    ScanRecord("/e/b.gif", "no_match", frame=0, frame_count=2, hashes={"phash": GOLDEN_PHASH}),
    ScanRecord("/e/b.gif", "error", frame=1, frame_count=2, error="broken"),
]
GOLDEN_KNOWN = [KnownRecord(hashes={"pdq": GOLDEN_PDQ, "phash": GOLDEN_PHASH}, md5="a" * 32, name="k", category=2)]


#: The outputs, with ``{version}`` for matcher's version in the VICS case header.
GOLDEN_OUTPUT: dict[str, str] = json.loads((Path(__file__).parent / "data" / "report-golden.json").read_text())


def test_reports_and_exports_are_byte_identical_to_before() -> None:
    import matcher
    from matcher.formats.registry import write_records

    for name, writer in SCAN_WRITERS.items():
        stream = io.StringIO()
        with writer(stream, ["pdq", "phash"]) as w:
            for record in GOLDEN_RECORDS:
                w.write(record)
        assert stream.getvalue() == GOLDEN_OUTPUT["scan-" + name].replace("{version}", matcher.__version__), name
    for fmt in ("vics", "pdq-hex", "matcher-csv", "matcher-jsonl"):
        out = io.BytesIO()
        write_records(GOLDEN_KNOWN, out, fmt)
        assert out.getvalue().decode() == GOLDEN_OUTPUT[fmt], fmt
