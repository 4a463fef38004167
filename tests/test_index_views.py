"""View tables (issue 6): extra per-(algorithm, view) code tables that let a scan find edited copies.

The first half checks the storage (files, manifest, checksums, removal, refusal of unknown views)
with hand-made view hashes; the second builds indexes from generated images and scans edited copies
(crops, borders, captions, small rotations) of them. All images are synthetic (the repo's ``fixtures``).
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

import fixtures
from matcher.errors import HashFormatError, IndexStoreError, UsageError
from matcher.hashes import Hash
from matcher.index import FORMAT_VERSION, KnownIndex, Match
from matcher.index import store as store_module
from matcher.index.manifest import body_digest
from matcher.known import KnownRecord


def code(seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, 32, dtype=np.uint8).tobytes()


def pdq(seed: int, quality: int | None = 90) -> Hash:
    return Hash("pdq", code(seed), quality)


def record(seed: int, views: dict[str, int] | None = None, **fields: object) -> KnownRecord:
    """A record with a main PDQ hash and PDQ view hashes ``{view: seed}``."""
    named = {view: pdq(s) for view, s in (views or {}).items()}
    return KnownRecord(hashes={"pdq": pdq(seed)}, views={"pdq": named} if named else {}, **fields)


def rewrite_manifest(path: Path, change) -> None:
    document = json.loads((path / "manifest.json").read_text())
    change(document)
    document.pop("manifest_sha256")
    document["manifest_sha256"] = body_digest(document)
    (path / "manifest.json").write_text(json.dumps(document))


@pytest.fixture()
def viewed(tmp_path: Path) -> Path:
    """An index of five records, three of them with views (ids 1..5)."""
    path = tmp_path / "ix"
    with KnownIndex.create(path, ("pdq", "phash")) as index:
        index.add(
            [
                record(1, {"top88": 101, "crop10": 201}),
                record(2, {"top88": 102}),
                record(3),
                record(4, {"crop10": 204, "trim": 304}),
                record(5),
            ],
            "known",
        )
    return path


# -- storage ---------------------------------------------------------------------------------------


def test_view_tables_are_files_of_the_generation_listed_in_the_manifest(viewed: Path) -> None:
    manifest = json.loads((viewed / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION == 4
    assert manifest["views"] == {
        "pdq": {
            "crop10": {"count": 2, "searchable": 2},
            "top88": {"count": 2, "searchable": 2},
            "trim": {"count": 1, "searchable": 1},
        }
    }
    for stem in ("pdq@top88", "pdq@crop10", "pdq@trim"):
        for suffix in ("ids", "codes", "quality"):
            name = f"{stem}.{suffix}.npy"
            assert name in manifest["files"] and re.fullmatch(r"[0-9a-f]{64}", manifest["files"][name]["sha256"])
            assert (viewed / manifest["directory"] / name).is_file()
    ids = np.load(viewed / manifest["directory"] / "pdq@top88.ids.npy", allow_pickle=False)
    assert ids.tolist() == [1, 2]
    with KnownIndex.open(viewed) as index:
        info = index.info()
        assert info["views"] == manifest["views"]
        assert info["algorithms"]["pdq"]["count"] == 5
        assert index.views == {"pdq": ("crop10", "top88", "trim")}
        assert len(index) == 5


def test_search_a_view_table_names_the_view(viewed: Path) -> None:
    with KnownIndex.open(viewed) as index:
        (main,) = index.search([pdq(101)], max_distance=0)
        assert main.matches == ()
        (found,) = index.search([pdq(101)], max_distance=0, view="top88")
        assert [(m.record_id, m.distance, m.view, m.list_name) for m in found] == [(1, 0, "top88", "known")]
        assert found[0].to_dict()["view"] == "top88"
        (plain,) = index.search([pdq(3)], max_distance=0)
        assert isinstance(plain[0], Match) and plain[0].view is None and plain[0].to_dict()["view"] is None
        # a known view the index has no table of finds nothing; a name that is no view is refused
        assert index.search([pdq(101)], view="rotl4")[0].matches == ()
        with pytest.raises(UsageError, match="no view 'top99'"):
            index.search([pdq(101)], view="top99")
        nearest = index.nearest([pdq(204)], 1, view="crop10")[0]
        assert [(m.record_id, m.distance, m.view) for m in nearest] == [(4, 0, "crop10")]
        with pytest.raises(UsageError, match="holds no dhash"):
            index.search([Hash("dhash", bytes(8))], view="top88")


def test_view_quality_rule_and_views_of_unindexed_algorithms(tmp_path: Path) -> None:
    with KnownIndex.create(tmp_path / "ix", ("pdq",)) as index:
        index.add(
            [
                KnownRecord(
                    hashes={"pdq": pdq(1)},
                    views={
                        "pdq": {"top88": pdq(11, quality=20), "bottom88": pdq(12)},
                        "phash": {"top88": Hash("phash", bytes(8))},
                    },
                )
            ],
            "l",
        )
        info = index.info()
        assert info["views"] == {
            "pdq": {"bottom88": {"count": 1, "searchable": 1}, "top88": {"count": 1, "searchable": 0}}
        }
        assert index.views == {"pdq": ("bottom88",)}
        assert index.search([pdq(11)], max_distance=0, view="top88")[0].matches == ()  # stored, not searchable


def test_adding_to_an_index_with_views_extends_and_links_tables(viewed: Path) -> None:
    with KnownIndex.open(viewed, writable=True) as index:
        result = index.add([record(6, {"top88": 106}), record(7)], "more")
        assert result.added == 2
        manifest = json.loads((viewed / "manifest.json").read_text())
        assert manifest["views"]["pdq"]["top88"]["count"] == 3
        assert manifest["views"]["pdq"]["crop10"]["count"] == 2
        assert [m.record_id for m in index.search([pdq(106)], 0, view="top88")[0]] == [6]
        # a duplicate of a stored record (same hashes and digests) adds no view codes either
        assert index.add([record(6, {"top88": 999})], "more").duplicates == 1
        assert index.info()["views"]["pdq"]["top88"]["count"] == 3


def test_removing_records_removes_their_view_codes(viewed: Path) -> None:
    with KnownIndex.open(viewed, writable=True) as index:
        assert index.remove_records([1, 3]) == 2
        assert index.info()["views"]["pdq"]["top88"] == {"count": 1, "searchable": 1}
        assert index.info()["views"]["pdq"]["crop10"] == {"count": 1, "searchable": 1}
        assert index.search([pdq(101)], 0, view="top88")[0].matches == ()
        assert [m.record_id for m in index.search([pdq(102)], 0, view="top88")[0]] == [2]
        index.add([record(8, {"top88": 108})], "other")
        assert index.remove_list("known") == 3
        info = index.info()
        assert info["views"]["pdq"]["top88"] == {"count": 1, "searchable": 1}
        assert info["views"]["pdq"]["crop10"] == {"count": 0, "searchable": 0}
        assert index.views == {"pdq": ("top88",)}
    with KnownIndex.open(viewed) as index:  # and the state reloads, checksums verified
        assert [r.id for r in index.iter_records()] == [6]
        assert [m.record_id for m in index.search([pdq(108)], 0, view="top88")[0]] == [6]


def test_round_trip_and_checksums_of_view_files(viewed: Path) -> None:
    with KnownIndex.open(viewed) as index:
        expected = [m.record_id for m in index.search([pdq(204)], 0, view="crop10")[0]]
    assert expected == [4]
    with KnownIndex.open(viewed, verify=True) as index:
        assert [m.record_id for m in index.search([pdq(204)], 0, view="crop10")[0]] == expected
    manifest = json.loads((viewed / "manifest.json").read_text())
    for name in ("pdq@crop10.codes.npy", "pdq@crop10.ids.npy", "pdq@top88.quality.npy"):
        file = viewed / manifest["directory"] / name
        original = file.read_bytes()
        damaged = bytearray(original)
        damaged[-1] ^= 0x01
        file.write_bytes(bytes(damaged))
        with pytest.raises(IndexStoreError, match=re.escape(name)):
            KnownIndex.open(viewed)
        file.write_bytes(original[:-8])
        with pytest.raises(IndexStoreError, match="truncated"):
            KnownIndex.open(viewed, verify=False)
        file.unlink()
        with pytest.raises(IndexStoreError, match="missing"):
            KnownIndex.open(viewed)
        file.write_bytes(original)
    KnownIndex.open(viewed).close()


def test_manifest_naming_an_unknown_or_misplaced_view_table_is_refused(viewed: Path) -> None:
    original = (viewed / "manifest.json").read_bytes()
    gen = viewed / json.loads(original)["directory"]

    def rename_view(document: dict) -> None:
        document["views"]["pdq"]["top99"] = document["views"]["pdq"].pop("top88")
        for suffix in ("ids", "codes", "quality"):
            document["files"][f"pdq@top99.{suffix}.npy"] = document["files"].pop(f"pdq@top88.{suffix}.npy")

    for suffix in ("ids", "codes", "quality"):  # even with the files present under the new name
        (gen / f"pdq@top99.{suffix}.npy").write_bytes((gen / f"pdq@top88.{suffix}.npy").read_bytes())
    rewrite_manifest(viewed, rename_view)
    with pytest.raises(IndexStoreError, match="'pdq@top99', a view this matcher does not know"):
        KnownIndex.open(viewed)
    (viewed / "manifest.json").write_bytes(original)

    rewrite_manifest(viewed, lambda d: d["views"].update(dhash={"top88": {"count": 0, "searchable": 0}}))
    with pytest.raises(IndexStoreError, match="view tables of 'dhash'"):
        KnownIndex.open(viewed)
    (viewed / "manifest.json").write_bytes(original)

    rewrite_manifest(viewed, lambda d: d["views"]["pdq"].pop("trim"))  # files listed, table not
    with pytest.raises(IndexStoreError, match="manifest lists files"):
        KnownIndex.open(viewed)
    (viewed / "manifest.json").write_bytes(original)

    rewrite_manifest(viewed, lambda d: d["views"]["pdq"]["trim"].update(count=2))
    with pytest.raises(IndexStoreError, match="pdq@trim arrays have shapes"):
        KnownIndex.open(viewed)
    (viewed / "manifest.json").write_bytes(original)

    rewrite_manifest(viewed, lambda d: d["views"]["pdq"]["trim"].update(searchable="1"))
    with pytest.raises(IndexStoreError, match="malformed searchable"):
        KnownIndex.open(viewed)
    (viewed / "manifest.json").write_bytes(original)
    KnownIndex.open(viewed).close()


def test_format_1_index_without_views_still_loads_and_is_upgraded_on_write(tmp_path: Path) -> None:
    path = tmp_path / "old"
    with KnownIndex.create(path, ("pdq",)) as index:
        index.add([record(1), record(2)], "l")

    def to_version_1(document: dict) -> None:
        document["format_version"] = 1
        document.pop("views")

    rewrite_manifest(path, to_version_1)
    with KnownIndex.open(path, writable=True) as index:
        assert index.info()["format_version"] == 1 and index.info()["views"] == {} and index.views == {}
        assert [m.record_id for m in index.search([pdq(2)], 0)[0]] == [2]
        index.add([record(3, {"crop5": 103})], "l")
        assert index.info()["format_version"] == FORMAT_VERSION
    with KnownIndex.open(path) as index:
        assert [m.record_id for m in index.search([pdq(103)], 0, view="crop5")[0]] == [3]


def test_bad_view_hashes_refuse_the_whole_add(viewed: Path) -> None:
    with KnownIndex.open(viewed, writable=True) as index:
        generation = index.generation
        with pytest.raises(UsageError, match="unknown view 'sideways'"):
            index.add([record(9, {"top88": 109}), record(10, {"sideways": 110})], "bad")
        with pytest.raises(HashFormatError, match="view top88: pdq hash has 64 bits"):
            index.add([KnownRecord(hashes={"pdq": pdq(11)}, views={"pdq": {"top88": Hash("pdq", bytes(8))}})], "bad")
        with pytest.raises(HashFormatError, match="stored under 'pdq' is a phash hash"):
            index.add([KnownRecord(hashes={"pdq": pdq(11)}, views={"pdq": {"top88": Hash("phash", bytes(8))}})], "bad")
        with pytest.raises(UsageError, match="views must be a dict"):
            index.add([KnownRecord(hashes={"pdq": pdq(11)}, views={"pdq": ["top88"]})], "bad")  # type: ignore[dict-item]
        assert index.generation == generation and "bad" not in index.lists()


@pytest.mark.parametrize("step", ["arrays-written", "generation-renamed", "manifest-temp-written"])
def test_crash_while_adding_view_tables_leaves_the_old_state(
    viewed: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    class Crash(BaseException):
        pass

    def crash(at: str) -> None:
        if at == step:
            raise Crash(at)

    before = KnownIndex.open(viewed).info()["views"]
    index = KnownIndex.open(viewed, writable=True)
    monkeypatch.setattr(store_module, "_checkpoint", crash)
    with pytest.raises(Crash):
        index.add([record(20, {"rotl4": 120, "top88": 121})], "new")
    monkeypatch.undo()
    with KnownIndex.open(viewed) as after:
        assert after.info()["views"] == before and "new" not in after.lists()
    with KnownIndex.open(viewed, writable=True) as writer:
        writer.add([record(20, {"rotl4": 120})], "new")
        assert writer.views["pdq"] == ("crop10", "rotl4", "top88", "trim")
    assert sorted(p.name for p in viewed.iterdir())[1:] == ["manifest.json", "write.lock"]


# -- indexes of generated images, scans of edited copies ---------------------------------------------

ORIGINAL_KINDS = ("landscape", "shapes", "text")
# edit -> (variant, view) the copy must match its original with: the query view of the evidence,
# and the known image's view (None: its main, full-frame hash)
EXPECTED = {
    "crop5": ("orig", "crop5"),
    "crop10": ("orig", "crop10"),
    "crop10_offcentre": ("orig", "crop10tl"),
    "caption": ("top88", "top88"),
    "pad20_black": ("trim", None),
    "pad20_white": ("trim", None),
    "pillarbox20_black": ("trim", None),
    "rotate4": ("orig", "rotl4"),
    "mirror+pad20_black": ("trim+flipy", None),
}


def edited(image, name: str):
    for step in name.split("+"):
        image = fixtures.edit(image, step)
    return image


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Originals as files, an evidence folder of their edited copies and of unrelated images, an
    index made from the image files (with views) and one from a PDQ hash list of them (without)."""
    from matcher import hash_file
    from matcher.index.importing import import_sources

    base = tmp_path_factory.mktemp("views")
    known, evidence = base / "known", base / "evidence"
    known.mkdir()
    evidence.mkdir()
    hexes = []
    for i, kind in enumerate(ORIGINAL_KINDS):
        original = fixtures.scene(600 + i, 320, 240, kind)
        (known / f"k{i}.png").write_bytes(fixtures.encode(original, "PNG"))
        for name in EXPECTED:
            (evidence / f"k{i}_{name}.png").write_bytes(fixtures.encode(edited(original, name), "PNG"))
        hexes.append(str(hash_file(known / f"k{i}.png")[0].hashes["pdq"]))
    for j, kind in enumerate(("landscape", "shapes", "text", "plasma")):
        unrelated = fixtures.scene(950 + j, 320, 240, kind)
        (evidence / f"unrelated_{j}.png").write_bytes(fixtures.encode(unrelated, "PNG"))
        (evidence / f"unrelated_{j}_pad.png").write_bytes(fixtures.encode(edited(unrelated, "pad20_black"), "PNG"))
        (evidence / f"unrelated_{j}_crop10.png").write_bytes(fixtures.encode(edited(unrelated, "crop10"), "PNG"))
    with KnownIndex.create(base / "viewed", ("pdq",)) as index:
        summary = import_sources(index, [str(known)], list_name="images")
        assert summary.added == 3 and summary.problems == 0
        ids = {Path(r.name or "").name: r.id for r in index.iter_records()}
    listed = base / "list.txt"
    listed.write_text("\n".join(hexes) + "\n")
    with KnownIndex.create(base / "listed", ("pdq",)) as index:
        import_sources(index, [str(listed)], list_name="hashes")
    return {
        "base": base,
        "known": known,
        "evidence": evidence,
        "viewed": base / "viewed",
        "listed": base / "listed",
        "ids": ids,
    }


def scan_names(images: dict, index: str, **options: object) -> dict[str, list]:
    from matcher.scan import ScanOptions, scan

    out = {}
    for rec in scan([str(images["evidence"])], str(images[index]), ScanOptions(workers=1, **options)):
        out[Path(rec.path or "").stem] = list(rec.matches)
    return out


def test_index_of_images_has_view_tables(images: dict, tmp_path: Path) -> None:
    from matcher.index.importing import import_sources

    with KnownIndex.open(images["viewed"]) as index:
        views = index.info()["views"]["pdq"]
        assert set(views) == {
            "top88",
            "bottom88",
            "crop5",
            "crop10",
            "crop5tl",
            "crop5tr",
            "crop5bl",
            "crop5br",
            "crop10tl",
            "crop10tr",
            "crop10bl",
            "crop10br",
            "rotl4",
            "rotr4",
        }  # no "trim": the originals have no border
        assert all(counts == {"count": 3, "searchable": 3} for counts in views.values())
        assert all(set(r.hashes) == {"pdq"} for r in index.iter_records())  # views stay out of the records
    with KnownIndex.open(images["listed"]) as index:
        assert index.info()["views"] == {} and index.views == {}
    with KnownIndex.create(tmp_path / "plain", ("pdq",)) as index:  # the CLI's --no-views
        import_sources(index, [str(images["known"])], list_name="images", views=False)
        assert len(index) == 3 and index.info()["views"] == {}
    bordered = tmp_path / "bordered"
    bordered.mkdir()
    (bordered / "b.png").write_bytes(fixtures.encode(edited(fixtures.scene(7, 320, 240), "pad20_white"), "PNG"))
    with KnownIndex.create(tmp_path / "with-trim", ("pdq",)) as index:
        import_sources(index, [str(bordered)], list_name="bordered")
        assert index.info()["views"]["pdq"]["trim"] == {"count": 1, "searchable": 1}


def test_scan_finds_edited_copies_through_views(images: dict) -> None:
    found = scan_names(images, "viewed")
    for i in range(len(ORIGINAL_KINDS)):
        for name, (variant, view) in EXPECTED.items():
            matches = found[f"k{i}_{name}"]
            assert [(m.record, m.variant, m.view) for m in matches] == [(images["ids"][f"k{i}.png"], variant, view)], (
                f"k{i}_{name}"
            )
            assert matches[0].algorithm == "pdq" and matches[0].distance <= 4
    unrelated = {stem: matches for stem, matches in found.items() if stem.startswith("unrelated")}
    assert len(unrelated) == 12 and all(matches == [] for matches in unrelated.values())


def test_hash_list_index_still_trims_query_borders(images: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from matcher import pipeline as scan_module

    regions_asked = []
    real = scan_module.query_view_hashes

    def spy(*args: object, **kwargs: object):
        regions_asked.append(kwargs.get("regions"))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(scan_module, "query_view_hashes", spy)
    found = scan_names(images, "listed")
    assert regions_asked and not any(regions_asked)  # no region views computed: nothing to search them in
    for i in range(len(ORIGINAL_KINDS)):
        for name in ("pad20_black", "pad20_white", "pillarbox20_black"):
            assert [(m.variant, m.view) for m in found[f"k{i}_{name}"]] == [("trim", None)], f"k{i}_{name}"
        assert [(m.variant, m.view) for m in found[f"k{i}_mirror+pad20_black"]] == [("trim+flipy", None)]
        assert found[f"k{i}_crop10"] == []  # crops need the known image's views
    assert all(matches == [] for stem, matches in found.items() if stem.startswith("unrelated"))


def test_trim_borders_and_regions_can_be_turned_off(images: dict) -> None:
    # the global stage only: the local-feature stage finds padded and captioned copies on its own
    untrimmed = scan_names(images, "viewed", trim_borders=False, local=False)
    no_regions = scan_names(images, "viewed", regions=False, local=False)
    for i in range(len(ORIGINAL_KINDS)):
        for name in ("pad20_black", "pad20_white", "pillarbox20_black", "mirror+pad20_black"):
            assert untrimmed[f"k{i}_{name}"] == [], f"k{i}_{name}"
            assert no_regions[f"k{i}_{name}"][0].variant.startswith("trim")
        assert [(m.variant, m.view) for m in untrimmed[f"k{i}_caption"]] == [("top88", "top88")]
        assert not any(m.view == "top88" or m.variant == "top88" for m in no_regions[f"k{i}_caption"])
        assert [(m.variant, m.view) for m in no_regions[f"k{i}_crop10"]] == [("orig", "crop10")]
    listed = scan_names(images, "listed", trim_borders=False)
    assert all(matches == [] for stem, matches in listed.items() if "pad" in stem or "pillarbox" in stem)


def test_reports_carry_the_view_and_resume_checks_the_new_options(
    images: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from matcher.scan import ScanOptions, run_scan
    from matcher.scan.engines import local as local_engine

    evidence = tmp_path / "evidence"
    evidence.mkdir()
    for name in ("k0_crop10.png", "k1_pad20_black.png", "k2_caption.png", "unrelated_0.png"):
        (evidence / name).write_bytes((images["evidence"] / name).read_bytes())
    out = tmp_path / "report.csv"
    summary = run_scan([str(evidence)], str(images["viewed"]), ScanOptions(workers=1), str(out), "csv")
    assert summary.matched_files == 3
    rows = {Path(r["path"]).name: r for r in csv.DictReader(io.StringIO(out.read_text()))}
    assert (rows["k0_crop10.png"]["match_variant"], rows["k0_crop10.png"]["match_view"]) == ("orig", "crop10")
    assert (rows["k1_pad20_black.png"]["match_variant"], rows["k1_pad20_black.png"]["match_view"]) == ("trim", "")
    assert rows["k2_caption.png"]["match_view"] == "top88" and rows["unrelated_0.png"]["match_view"] == ""
    manifest = json.loads((tmp_path / "report.csv.manifest.json").read_text())
    assert manifest["parameters"]["trim_borders"] is True and manifest["parameters"]["regions"] is True

    # interrupt a journaled scan after its first entry, then resume it with other view options
    real = local_engine.LocalEngine.results

    def interrupted(*args: object, **kwargs: object):
        for number, result in enumerate(real(*args, **kwargs)):  # type: ignore[arg-type]
            if number == 1:
                raise KeyboardInterrupt
            yield result

    monkeypatch.setattr(local_engine.LocalEngine, "results", interrupted)
    target = tmp_path / "again.jsonl"
    with pytest.raises(KeyboardInterrupt):
        run_scan([str(evidence)], str(images["viewed"]), ScanOptions(workers=1), str(target), "jsonl")
    monkeypatch.undo()
    for changed, name in ((dict(trim_borders=False), "trim_borders"), (dict(regions=False), "regions")):
        with pytest.raises(UsageError, match=f"different parameters \\({name}\\)"):
            run_scan(
                [str(evidence)],
                str(images["viewed"]),
                ScanOptions(workers=1, **changed),
                str(target),
                "jsonl",
                resume=True,
            )
    summary = run_scan(
        [str(evidence)], str(images["viewed"]), ScanOptions(workers=1), str(target), "jsonl", resume=True
    )
    assert summary.resumed_files == 1 and summary.matched_files == 3
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    views = {Path(r["path"]).name: [(m["variant"], m["view"]) for m in r["matches"]] for r in lines}
    assert views["k0_crop10.png"] == [("orig", "crop10")] and views["k1_pad20_black.png"] == [("trim", None)]
