"""`matcher cluster` and matcher.cluster: near-duplicate groups of an evidence set.

Edited copies land in their original's group with the right variant, unrelated images stay alone,
files that cannot be hashed are reported, chains form one group with the far member flagged, the
groups equal a brute-force union-find, and the evidence tree is never touched. All data synthetic.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

from fixtures import animated_gif, edit, encode, scene
from matcher.cli import main
from matcher.cluster import ClusterItem, cluster_hashes, cluster_paths, write_cluster_report
from matcher.errors import UsageError
from matcher.hashes import Hash
from matcher.variants import INVERSE, VARIANT_NAMES

# edit name -> how the copy is transformed relative to its original
EXPECTED_VARIANT = {"jpeg30": "orig", "resize0.5": "orig", "mirror": "flipy", "rotate90": "rot90", "greyscale": "orig"}
KINDS = ("landscape", "shapes", "plasma")


def snapshot(root: Path) -> dict[str, tuple]:
    """lstat facts and content of everything under root."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            content = Path(path).read_bytes() if os.path.isfile(path) and not os.path.islink(path) else b""
            out[path] = (st.st_mode, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, content)
    return out


@pytest.fixture(scope="module")
def evidence(tmp_path_factory):
    """Originals, their edited copies (and one byte-identical copy), unrelated images, an animated GIF,
    a text file, a corrupt JPEG and a symbolic link."""
    base = tmp_path_factory.mktemp("cluster")
    root = base / "evidence"
    for folder in ("a_originals", "b_copies", "c_duplicates", "d_other"):
        (root / folder).mkdir(parents=True)
    originals = {}
    for i, kind in enumerate(KINDS):
        img = scene(400 + i, 320, 240, kind)
        path = root / "a_originals" / f"orig_{i}.png"
        path.write_bytes(encode(img, "PNG"))
        originals[i] = path
        for name in EXPECTED_VARIANT:
            (root / "b_copies" / f"o{i}_{name}.jpg").write_bytes(encode(edit(img, name), "JPEG", quality=90))
        (root / "c_duplicates" / f"orig_{i}_copy.png").write_bytes(path.read_bytes())
    for j, kind in enumerate(("text", "landscape", "shapes")):
        (root / "d_other" / f"unrelated_{j}.jpg").write_bytes(encode(scene(950 + j, 300, 200, kind), "JPEG"))
    (root / "d_other" / "animated.gif").write_bytes(animated_gif(77, 160, 120, frames=3))
    (root / "d_other" / "notes.txt").write_text("meeting notes, nothing to see\n")
    whole = encode(scene(5, 320, 240), "JPEG", quality=90)
    (root / "d_other" / "corrupt.jpg").write_bytes(whole[: len(whole) // 3])
    os.symlink("../a_originals/orig_0.png", root / "d_other" / "link.png")
    return {"base": base, "root": root, "originals": originals}


@pytest.fixture(scope="module")
def result(evidence):
    return cluster_paths([str(evidence["root"])], workers=1)


def by_path(result):
    return {m.path: m for m in result.members()}


def test_copies_group_with_their_original_with_the_right_variants(evidence, result):
    root = evidence["root"]
    members = by_path(result)
    for i, original in evidence["originals"].items():
        rep = members[str(original)]
        assert rep.representative and rep.hops == 0 and rep.distance == 0 and rep.variant == "orig"
        group = result.groups[rep.group - 1]
        expected = {
            str(original),
            str(root / "c_duplicates" / f"orig_{i}_copy.png"),
            *(str(root / "b_copies" / f"o{i}_{name}.jpg") for name in EXPECTED_VARIANT),
        }
        assert {m.path for m in group.members} == expected
        assert group.representative.path == str(original)
        for name, variant in EXPECTED_VARIANT.items():
            copy = members[str(root / "b_copies" / f"o{i}_{name}.jpg")]
            assert copy.status == "grouped" and copy.group_size == len(expected)
            assert copy.variant == variant, (name, copy)
            assert copy.algorithm == "pdq" and copy.distance <= 31 and copy.max_distance == 31
            assert copy.hops == 1 and not copy.chain and copy.linked_via == str(original)
        duplicate = members[str(root / "c_duplicates" / f"orig_{i}_copy.png")]
        assert (duplicate.distance, duplicate.variant, duplicate.hops) == (0, "orig", 1)
    sizes = [g.size for g in result.groups]
    assert sizes == sorted(sizes, reverse=True)
    assert [g.number for g in result.groups] == list(range(1, len(result.groups) + 1))


def test_unrelated_images_and_frames_stay_alone(evidence, result):
    members = by_path(result)
    other = evidence["root"] / "d_other"
    for j in range(3):
        m = members[str(other / f"unrelated_{j}.jpg")]
        assert (m.status, m.group_size, m.representative, m.hops) == ("single", 1, True, 0)
    frames = sorted(m.frame for m in result.members() if m.path == str(other / "animated.gif"))
    assert frames == [0, 1, 2]
    assert all(m.group_size == 1 for m in result.members() if m.path == str(other / "animated.gif"))


def test_files_that_cannot_be_hashed_are_reported(evidence, result):
    members = by_path(result)
    other = evidence["root"] / "d_other"
    corrupt = members[str(other / "corrupt.jpg")]
    assert corrupt.status == "error" and corrupt.item.error
    assert corrupt.group is None and corrupt.item.md5 is not None
    text = members[str(other / "notes.txt")]
    assert text.status == "skipped" and "not an image" in text.notes[0] and text.item.sha256 is not None
    link = members[str(other / "link.png")]
    assert link.status == "skipped" and "symbolic link" in link.notes[0]
    assert result.errors == 1 and result.skipped == 2
    # every walked entry is in the result: 3 x 7 grouped, 3 unrelated, 3 frames, 3 ungrouped
    assert result.entries == 3 * 7 + 3 + 1 + 3
    assert result.hashed == 3 * 7 + 3 + 3 and len(result.ungrouped) == 3


# --------------------------------------------------------------------------------------------------
# Hash-level rules


def code_at(base: np.ndarray, flips: list[int]) -> np.ndarray:
    bits = np.unpackbits(base)
    bits[flips] ^= 1
    return np.packbits(bits)


def pdq(code: np.ndarray, quality: int | None = 90) -> Hash:
    return Hash("pdq", code.tobytes(), quality)


def test_a_chain_forms_one_group_and_the_far_member_is_flagged():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, 32, dtype=np.uint8)
    b = code_at(a, list(range(0, 25)))  # 25 from a
    c = code_at(b, list(range(100, 125)))  # 25 from b, 50 from a
    a1 = code_at(a, list(range(200, 210)))  # 10 from a, 35 from b: a has the most links
    a2 = code_at(a, list(range(210, 220)))
    far = rng.integers(0, 256, 32, dtype=np.uint8)
    items = [
        (key, {"orig": pdq(code)}) for key, code in [("a", a), ("a1", a1), ("a2", a2), ("b", b), ("c", c), ("far", far)]
    ]
    result = cluster_hashes(items)
    members = by_path(result)
    group = result.groups[0]
    assert {m.path for m in group.members} == {"a", "a1", "a2", "b", "c"}
    assert group.representative.path == "a"
    chained = members["c"]
    assert chained.chain and chained.hops == 2 and chained.distance == 50 and chained.distance > chained.max_distance
    assert (chained.linked_via, chained.link_distance, chained.link_variant) == ("b", 25, "orig")
    assert not members["b"].chain and members["b"].linked_via == "a" and members["b"].distance == 25
    assert members["far"].status == "single"
    assert result.links == 1 + 1 + 1 + 1 + 1  # a-a1, a-a2, a1-a2 (20 apart), a-b, b-c
    assert [m.path for m in group.members][-1] == "c"  # ordered by distance to the representative


def test_variant_links_are_named_relative_to_the_representative():
    rng = np.random.default_rng(4)
    a = rng.integers(0, 256, 32, dtype=np.uint8)
    others = {name: rng.integers(0, 256, 32, dtype=np.uint8) for name in VARIANT_NAMES}
    # "x" is "a" rotated 90 degrees: x's rot90 variant (x with the rotation undone) is a
    x = {"orig": pdq(others["orig"]), "rot90": pdq(code_at(a, [1, 2, 3])), "flipy": pdq(others["flipy"])}
    result = cluster_hashes([("a", {"orig": pdq(a)}), ("x", x)])
    members = by_path(result)
    assert members["a"].representative and members["x"].variant == "rot90" and members["x"].distance == 3
    assert members["x"].link_variant == "rot90"
    # named the other way round when "x" is the representative (it comes first by path)
    result = cluster_hashes([("b", {"orig": pdq(a)}), ("0x", x)])
    members = by_path(result)
    assert members["0x"].representative and members["b"].variant == INVERSE["rot90"] == "rot270"
    # without rotations only orig hashes link
    assert cluster_hashes([("a", {"orig": pdq(a)}), ("x", x)], rotations=False).multi_groups == 0


def test_low_quality_hashes_are_not_linked_and_say_so():
    rng = np.random.default_rng(5)
    a = rng.integers(0, 256, 32, dtype=np.uint8)
    result = cluster_hashes(
        [("good", {"orig": pdq(a, 90)}), ("poor", {"orig": pdq(a, 30)}), ("poor2", {"orig": pdq(a, 30)})]
    )
    members = by_path(result)
    assert all(m.status == "single" for m in members.values())
    assert members["poor"].notes == ("pdq not linked: quality 30 below 50",)
    assert members["good"].notes == ()


def test_any_chosen_algorithm_links():
    rng = np.random.default_rng(9)
    a, b = rng.integers(0, 256, (2, 32), dtype=np.uint8)  # PDQ far apart
    p = rng.integers(0, 256, 8, dtype=np.uint8)
    near = code_at(p, [0, 1, 2])  # pHash 3 apart
    items = [
        ClusterItem(path="a", hashes={"pdq": {"orig": pdq(a)}, "phash": {"orig": Hash("phash", p.tobytes())}}),
        ClusterItem(path="b", hashes={"pdq": {"orig": pdq(b)}, "phash": {"orig": Hash("phash", near.tobytes())}}),
    ]
    result = cluster_hashes(items)
    assert set(result.algorithms) == {"pdq", "phash"} and result.multi_groups == 1
    member = by_path(result)["b"]
    assert (member.algorithm, member.distance, member.max_distance, member.link_algorithm) == ("phash", 3, 8, "phash")
    assert cluster_hashes(items, algorithms="pdq").multi_groups == 0
    assert set(by_path(cluster_hashes(items, algorithms="pdq"))["a"].to_dict(["pdq"])) >= {"pdq", "pdq_quality"}


def test_max_distance_and_bad_arguments():
    rng = np.random.default_rng(6)
    a = rng.integers(0, 256, 32, dtype=np.uint8)
    items = [("a", {"orig": pdq(a)}), ("b", {"orig": pdq(code_at(a, list(range(20))))})]
    assert cluster_hashes(items).multi_groups == 1
    assert cluster_hashes(items, max_distances={"pdq": 19}).multi_groups == 0
    with pytest.raises(UsageError):
        cluster_hashes(items, max_distances={"phash": 4})
    with pytest.raises(UsageError):
        cluster_hashes(items, max_distances={"pdq": 300})
    with pytest.raises(UsageError):
        cluster_hashes([("a", {"sideways": pdq(a)})])
    with pytest.raises(UsageError):
        cluster_paths("one/path")  # type: ignore[arg-type]
    empty = cluster_hashes([ClusterItem(path="unreadable", error="cannot open: permission denied")])
    assert empty.groups == () and empty.errors == 1


def planted(seed: int, groups: int, singles: int) -> tuple[list[tuple[str, dict[str, Hash]]], list[set[str]]]:
    """Random codes: ``groups`` sets of near copies (0..20 bits from a base, some only through a
    variant, some byte-identical) and ``singles`` unrelated codes; returns items and planted sets."""
    rng = np.random.default_rng(seed)
    items, sets = [], []
    for g in range(groups):
        base = rng.integers(0, 256, 32, dtype=np.uint8)
        members = set()
        for k in range(int(rng.integers(1, 6))):
            key = f"g{g}_{k}"
            near = code_at(base, list(rng.choice(256, int(rng.integers(0, 21)), replace=False)))
            hashes = {"orig": pdq(near)}
            if k and rng.random() < 0.3:  # a rotated/flipped copy: linked through a variant only
                variant = VARIANT_NAMES[int(rng.integers(1, 8))]
                hashes = {"orig": pdq(rng.integers(0, 256, 32, dtype=np.uint8)), variant: pdq(near)}
            for name in VARIANT_NAMES[1:]:
                hashes.setdefault(name, pdq(rng.integers(0, 256, 32, dtype=np.uint8)))
            items.append((key, hashes))
            members.add(key)
            if rng.random() < 0.1:
                items.append((key + "_dup", dict(hashes)))
                members.add(key + "_dup")
        sets.append(members)
    for s in range(singles):
        items.append((f"s{s}", {"orig": pdq(rng.integers(0, 256, 32, dtype=np.uint8))}))
        sets.append({f"s{s}"})
    order = rng.permutation(len(items))
    return [items[i] for i in order], sets


def brute_force(items, max_distance: int = 31) -> set[frozenset[str]]:
    """Union-find over every pair: a variant of one within max_distance of the other's orig."""
    keys = [key for key, _ in items]
    orig = np.stack([np.frombuffer(h["orig"].bits, dtype=np.uint8) for _, h in items])
    parent = list(range(len(items)))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, (_, hashes) in enumerate(items):
        for value in hashes.values():
            query = np.frombuffer(value.bits, dtype=np.uint8)
            dist = np.unpackbits(orig ^ query, axis=1).sum(axis=1)
            for j in np.flatnonzero(dist <= max_distance):
                if j != i:
                    parent[find(i)] = find(int(j))
    groups: dict[int, set[str]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(find(i), set()).add(key)
    return {frozenset(g) for g in groups.values()}


def test_cluster_hashes_equals_brute_force_on_planted_groups():
    items, sets = planted(7, groups=60, singles=150)
    result = cluster_hashes(items)
    found = {frozenset(m.path for m in g.members) for g in result.groups}
    assert found == brute_force(items)
    planted_of = {key: frozenset(s) for s in sets for key in s}
    assert all(group <= planted_of[next(iter(group))] for group in found)  # copies 0..20 bits from a base
    assert sum(len(g) > 1 for g in found) > 40  # and most of them do link
    codes = {key: hashes for key, hashes in items}
    for group in result.groups:
        rep = group.representative
        assert rep.representative and group.members.count(rep) == 1
        for m in group.members:
            # the distance to the representative, recomputed here both ways round
            best = min(
                min(codes[m.path][v] - codes[rep.path]["orig"] for v in codes[m.path]),
                min(codes[rep.path][v] - codes[m.path]["orig"] for v in codes[rep.path]),
            )
            assert m.distance == best
            assert m.chain == (m.hops >= 2)


def test_larger_sets_use_multi_index_hashing_and_equal_the_flat_search(monkeypatch):
    import matcher.cluster as cluster_module

    groups = 2_500
    rng = np.random.default_rng(8)
    bases = rng.integers(0, 256, (groups, 32), dtype=np.uint8)
    bits = np.unpackbits(bases, axis=1)
    for _ in range(15):
        bits[np.arange(groups), rng.integers(0, 256, groups)] ^= 1
    copies = np.packbits(bits, axis=1)
    items = [(f"{i:06d}b", {"orig": pdq(code)}) for i, code in enumerate(bases)]
    items += [(f"{i:06d}c", {"orig": pdq(code), "flipy": pdq(code)}) for i, code in enumerate(copies)]
    randoms = rng.integers(0, 256, (1_000, 32), dtype=np.uint8)
    items += [(f"r{i}", {"orig": pdq(code)}) for i, code in enumerate(randoms)]
    assert len(items) >= cluster_module._MIH_FROM
    result = cluster_hashes(items)  # multi-index hashing
    assert result.multi_groups == groups and result.largest == 2
    for group in result.groups[:groups]:
        assert {m.path[:6] for m in group.members} == {group.representative.path[:6]}
        assert group.members[1].distance <= 15
    monkeypatch.setattr(cluster_module, "_MIH_FROM", 10**9)  # the flat FAISS scan
    flat = cluster_hashes(items)
    assert [[m.to_dict() for m in g.members] for g in flat.groups] == [
        [m.to_dict() for m in g.members] for g in result.groups
    ]


# --------------------------------------------------------------------------------------------------
# Reports and the command line


def test_report_formats(result):
    text = io.StringIO()
    count = write_cluster_report(result, text, "jsonl")
    lines = [json.loads(line) for line in text.getvalue().splitlines()]
    assert count == len(lines) == result.hashed + len(result.ungrouped)
    assert lines[0]["representative"] and lines[0]["group"] == 1 and lines[0]["pdq"]
    assert [line["status"] for line in lines[-3:]] == ["error", "skipped", "skipped"]  # corrupt, link, notes
    table = io.StringIO()
    write_cluster_report(result, table, "csv", min_size=2)
    rows = list(csv.DictReader(io.StringIO(table.getvalue())))
    assert len(rows) == 3 * 7 + 3  # groups of 2 or more, then the ungrouped
    assert rows[0]["representative"] == "true" and rows[1]["chain"] == "false"
    with pytest.raises(UsageError):
        write_cluster_report(result, io.StringIO(), "vics")


def test_cli_end_to_end_leaves_the_evidence_untouched(evidence, result, capsys):
    root, base = evidence["root"], evidence["base"]
    before = snapshot(root)
    out = base / "groups.jsonl"
    assert main(["cluster", str(root), "--output", str(out), "--workers", "2"]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    expected = [m.to_dict(["pdq"]) for m in result.members()]
    assert records == expected  # two workers give what one gives
    assert "3 groups of 2 or more" in capsys.readouterr().err

    assert main(["cluster", str(root), "--format", "csv", "--min-size", "2", "-j", "1"]) == 0
    captured = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(captured.out)))
    assert {row["status"] for row in rows} == {"grouped", "error", "skipped"}
    assert "not reported" in captured.err

    inside = root / "d_other" / "groups.jsonl"
    assert main(["cluster", str(root), "--output", str(inside), "-j", "1"]) == 2
    assert "inside the evidence path" in capsys.readouterr().err and not inside.exists()
    assert main(["cluster", str(root), "--output", str(root / "a_originals" / "orig_0.png"), "-j", "1"]) == 2
    assert main(["cluster", str(root / "d_other" / "notes.txt"), "--output", str(root / "d_other" / "notes.txt")]) == 2
    assert main(["cluster", str(root), "--max-distance", "phash=4", "-j", "1"]) == 2
    capsys.readouterr()
    assert snapshot(root) == before
