"""Writing the results: JSON with every number, a Markdown report and two PNG plots."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = [
    "write_all",
    "to_json",
    "markdown",
    "side_by_side",
    "plot_recall",
    "plot_continuum",
    "plot_distances",
    "targets_met",
]

_BLOCK_HEADERS = {
    "distractor-original": "distractor vs original",
    "distractor-distractor": "distractor vs distractor",
    "edited-wrong original": "edited copy vs wrong original",
    "original-distractor": "original vs distractor",
}
# the methods the recall chart shows (the others are in the tables)
_CHART = (
    "ref_pdq",
    "ref_pdq_dihedral",
    "ref_phash",
    "pdq_rotations",
    "pdq_views",
    "phash_rotations",
    "phash_views",
    "local",
    "pdq_views_local",
)
# the side-by-side table's columns (issue 17): global hashes, views, local features, both, the peers
_SIDE_BY_SIDE = (
    "pdq_global",
    "pdq_views_no_insets",
    "pdq_views",
    "local",
    "pdq_views_local",
    "local_spread",
    "pdq_views_local_spread",
    "ref_pdq",
    "ref_phash",
)


def _family(t: dict[str, Any]) -> str:
    return t["description"].split(":")[0] if t["group"] == "continuum" else t["group"]


def side_by_side(results: dict[str, Any], per_transform: bool = True) -> list[str]:
    """The issue 17 table: recall per transform (or per family: the worst and the mean of its
    transforms) of matcher's global PDQ, PDQ with views, local features, PDQ then local, pdqhash
    and imagehash.phash, with the false matches over all false pairs."""
    by_key = {m["key"]: m for m in results["methods"]}
    methods = [by_key[k] for k in _SIDE_BY_SIDE if k in by_key]
    transforms, fp = results["transforms"], results["false_pairs"]
    out = [
        _row(["transform" if per_transform else "family (transforms)", "target"] + [m["label"] for m in methods]),
        _row(["---", "---:"] + ["---:"] * len(methods)),
    ]
    if per_transform:
        for t in transforms:
            out.append(_row([_name(t), _fmt(t["target"])] + [_fmt(m["recall"][t["name"]]) for m in methods]))
    else:
        families: dict[str, list[dict[str, Any]]] = {}
        for t in transforms:
            families.setdefault(_family(t), []).append(t)
        for name, members in families.items():
            targets = {t["target"] for t in members}
            target = _fmt(targets.pop()) if len(targets) == 1 else "–"
            cells = []
            for m in methods:
                values = [m["recall"][t["name"]] for t in members]
                cells.append(f"{_fmt(min(values))} / {_fmt(float(np.mean(values)))}")
            out.append(_row([f"{name} ({len(members)})", target] + cells))
    out.append(
        _row(
            [f"**false matches** (of {fp['total']:,} false pairs)", "0"]
            + [f"{m['false_matches']['total']:,}" for m in methods]
        )
    )
    return out


def _fmt(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.3f}"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def targets_met(method: dict[str, Any], transforms: list[dict[str, Any]], key: str = "recall") -> tuple[int, int]:
    """(met, total) over the transforms that have a target."""
    with_target = [t for t in transforms if t["target"] is not None]
    met = sum(method[key][t["name"]] >= t["target"] for t in with_target)
    return met, len(with_target)


def _name(t: dict[str, Any]) -> str:
    return f"*{t['name']}* (off-grid)" if t["group"] == "off-grid" else t["name"]


def _examples(methods: list[dict[str, Any]], limit: int = 10) -> list[str]:
    """A list of the false matches of matcher's PDQ modes, where there are a few."""
    lines: list[str] = []
    for m in methods:
        if m["algorithm"] != "pdq" or m["peer"] or not 0 < m["false_matches"]["total"] <= limit:
            continue
        lines += ["", f"False matches of `{m['label']}`:", ""]
        for e in m["false_match_details"]["examples"][:limit]:
            q, k = e["query"], e["known"]
            what = (
                f"{e['transform']} copy of original"
                if e["transform"]
                else ("original" if e["block"] == "original-distractor" else "distractor")
            )
            known_what = "original" if e["block"] in ("distractor-original", "edited-wrong original") else "distractor"
            lines.append(
                f"- {what} {q['seed']} ({q['kind']}, {q['width']}x{q['height']}) vs {known_what} {k['seed']} "
                f"({k['kind']}, {k['width']}x{k['height']}): distance {e['distance']}"
            )
    return lines


def markdown(results: dict[str, Any]) -> str:
    """The README-ready report."""
    methods, transforms = results["methods"], results["transforms"]
    cfg, org, dis, fp = results["config"], results["originals"], results["distractors"], results["false_pairs"]
    kinds = ", ".join(f"{v} {k}" for k, v in sorted(org["by_kind"].items(), key=lambda kv: -kv[1]))
    thresholds = sorted({(m["algorithm"], m["threshold"]) for m in methods if m["threshold"] is not None})
    rt = results["runtime_s"]
    out = [
        "# Robustness benchmark",
        "",
        f"Generated by `python -m benchmarks.robustness` ({rt['total']:.0f} s on {cfg['workers']} workers: "
        f"{rt['hashing']:.0f} s generating and hashing, {rt['matching']:.0f} s matching). "
        f"{org['count']} generated originals ({kinds}; {cfg['long_side'][0]}-{cfg['long_side'][1]} px on the "
        f"long side), each edited {len(transforms)} ways; {dis['count']} unrelated generated distractors (same "
        f"kind and size mix). Every image is a JPEG file (quality {cfg['jpeg_quality']}) decoded again. "
        "Default thresholds: "
        + ", ".join(f"{a} <= {t}" for a, t in thresholds)
        + "; hashes below their algorithm's minimum quality (PDQ 50; matcher's pHash 50, its detail "
        + "quality) never match (both sides; imagehash.phash has no quality). "
        f"matcher.views: {'present' if results['views_module'] else 'absent (no +trim/+regions/+views modes)'}.",
        "",
        "Columns: `pdqhash` and `imagehash.phash` are the reference libraries (one global hash), "
        "`pdqhash dihedral` compares the query's 8 DCT-derived dihedral hashes with the known hash; "
        "`pdq`/`phash` are matcher's: `global` (one hash), `+rot` (the 8 exact rotation/flip variants "
        "of the query), `+rot+trim` / `+rot+regions` (one view feature; regions include the insets), "
        "`+views` (all features: rotations, border trimming, region views, insets: the pictures embedded in "
        "the frame, `matcher.insets`), `+views, no insets` (the same without insets, the scan's `--no-insets`); "
        "`pdq or phash` matches when either does.",
        "",
        "## Side by side (issue 17): global hashes, views, local features",
        "",
        "`matcher local features`: ORB keypoints (known images `KNOWN_PARAMS`, queries `QUERY_PARAMS`), "
        "a vote over the known set's descriptors in a FAISS binary flat index, then `local_features.find` "
        "with the default rule (affine MAGSAC++, 15 inliers, at least 55% of the tentative matches, within 4 px at least, below 40 inliers the hole and spread tests). "
        "`matcher PDQ +views + local`: the scan's rule, "
        "global hashes first and local features for what they miss (recall: either finds it; false "
        "matches: the union of both methods', an upper bound). `spread >= 0.1`: the same matches kept only "
        "when the inliers' hull covers at least 10% of the part of the known image the query shows "
        "(`EVIDENCE_PAIR_RULE`'s condition, off in `DEFAULT_RULE`). Per family: the worst / the mean recall "
        "of its transforms.",
        "",
        *side_by_side(results, per_transform=False),
        "",
        *side_by_side(results),
        "",
        f"## Recall at the default thresholds ({org['count']} originals)",
        "",
        _row(["transform", "target"] + [m["label"] for m in methods]),
        _row(["---", "---:"] + ["---:"] * len(methods)),
    ]
    for t in transforms:
        out.append(_row([_name(t), _fmt(t["target"])] + [_fmt(m["recall"][t["name"]]) for m in methods]))
    out.append(
        _row(
            [f"**false matches** (of {fp['total']:,} false pairs)", "0"]
            + [f"{m['false_matches']['total']:,}" for m in methods]
        )
    )
    met = [targets_met(m, transforms) for m in methods]
    met_tex = [targets_met(m, transforms, "recall_textured") for m in methods]
    out.append(_row(["**targets met**", ""] + [f"{a}/{b}" for a, b in met]))
    out.append(
        _row(
            [f"**targets met**, PDQ quality >= 50 originals ({org['count'] - org['pdq_quality_below_50']})", ""]
            + [f"{a}/{b}" for a, b in met_tex]
        )
    )
    out += [
        "",
        "Off-grid transforms use fractions and angles between the ones matcher's region views are built "
        "for; they have no target. Continuum transforms (issue 17) have the target 0.95.",
        "",
        f"### The same on the {org['count'] - org['pdq_quality_below_50']} originals with PDQ quality >= 50 "
        "(transforms with a target)",
        "",
        _row(["transform", "target"] + [m["label"] for m in methods]),
        _row(["---", "---:"] + ["---:"] * len(methods)),
        *[
            _row([_name(t), _fmt(t["target"])] + [_fmt(m["recall_textured"][t["name"]]) for m in methods])
            for t in transforms
            if t["target"] is not None
        ],
        "",
        "## False matches at the default thresholds",
        "",
        "Pairs: every distractor searched against every original "
        f"({fp['distractor-original']:,} pairs) and against every other distractor "
        f"({fp['distractor-distractor']:,} ordered pairs), every edited copy against every original "
        f"but its own ({fp['edited-wrong original']:,} pairs)"
        + (
            f", and every original against every distractor ({fp['original-distractor']:,} pairs: the views and "
            "the local rule are not symmetric)."
            if "original-distractor" in fp
            else " (results from before the original-vs-distractor block: '–' there)."
        ),
        "",
        _row(
            ["method"]
            + list(_BLOCK_HEADERS.values())
            + ["total", "of which both low-texture", "total without the quality rule", "views per query / known image"]
        ),
        _row(["---"] + ["---:"] * (len(_BLOCK_HEADERS) + 4)),
    ]
    for m in methods:
        fm = m["false_matches"]
        without = m.get("false_matches_without_quality_rule")
        views = f"{m['mean_query_views']:g} / {m['mean_known_views']:g}" if "mean_query_views" in m else "–"
        out.append(
            _row(
                [m["label"]]
                + [f"{fm[b]:,}" if b in fm else "–" for b in _BLOCK_HEADERS]
                + [
                    f"{fm['total']:,}",
                    f"{m['false_match_details']['both_low_texture']:,}",
                    f"{without['total']:,}" if without else "–",
                    views,
                ]
            )
        )
    out += [
        "",
        "Low-texture: both images are gradients or almost flat colours (the generator's "
        "`gradient` and `lowtexture` kinds).",
    ]
    out += _examples(methods)
    allowed = int(np.floor(results["false_match_rate"] * fp["total"]))
    single = [m for m in methods if m.get("fmr_threshold") is not None]
    out += [
        "",
        f"## Recall at a fixed false-match rate ({results['false_match_rate']:g})",
        "",
        f"Per method, the largest threshold at which the false matches over all {fp['total']:,} false "
        f"pairs are at most {results['false_match_rate']:g} of them (<= {allowed:,}); "
        "-1: even distance 0 gives more. The JSON also has the recall at zero false matches, whose "
        "threshold is given here too.",
        "",
        _row(["transform"] + [m["label"] for m in single]),
        _row(["---"] + ["---:"] * len(single)),
        _row(["**threshold**"] + [str(m["fmr_threshold"]) for m in single]),
        _row(["threshold for 0 false matches"] + [str(m["zero_false_match_threshold"]) for m in single]),
    ]
    for t in transforms:
        out.append(_row([_name(t)] + [_fmt(m["recall_at_fmr"][t["name"]]) for m in single]))
    pdq_methods = [m for m in methods if m["algorithm"] == "pdq"]
    low_kinds = ", ".join(f"{v} {k}" for k, v in org["pdq_quality_below_50_by_kind"].items()) or "none"
    n_copies = org["count"] * len(transforms)
    out += [
        "",
        "## What refusing low-quality PDQ hashes costs",
        "",
        f"{org['pdq_quality_below_50']} of {org['count']} originals have a PDQ quality below 50 ({low_kinds}); "
        f"so do {dis['pdq_quality_below_50']} of {dis['count']} distractors. Their PDQ hashes never match. "
        "Refused copies: edited copies that would match their original without the rule.",
        "",
        _row(
            [
                "method",
                f"refused copies (of {n_copies:,})",
                "mean recall",
                "mean recall, quality >= 50 originals",
                "mean recall without the rule",
                "false matches",
                "false matches without the rule",
            ]
        ),
        _row(["---"] + ["---:"] * 6),
    ]
    for m in pdq_methods:
        names = [t["name"] for t in transforms]
        mean = lambda key: float(np.mean([m[key][n] for n in names]))  # noqa: E731
        out.append(
            _row(
                [
                    m["label"],
                    f"{sum(m['refused_by_quality_rule'].values()):,}",
                    _fmt(mean("recall")),
                    _fmt(mean("recall_textured")),
                    _fmt(mean("recall_without_quality_rule")),
                    f"{m['false_matches']['total']:,}",
                    f"{m['false_matches_without_quality_rule']['total']:,}",
                ]
            )
        )
    local = results.get("local")
    if local:
        out += [
            "",
            f"Local features: {local['queries']:,} queries against {local['known_images']:,} known images "
            f"({local['known_descriptors']:,} descriptors); extraction {local['extract_ms_per_query']} ms and vote + "
            f"verification {local['find_ms_per_query']} ms per query (mean, in the hashing workers, a loaded machine).",
        ]
    c = results["consistency"]
    out += [
        "",
        f"Consistency over {c['query_images']:,} query images: matcher's global PDQ differs from pdqhash on "
        f"{c['pdq_global_differs_from_pdqhash']}, matcher's pHash from imagehash on "
        f"{c['phash_global_differs_from_imagehash']}.",
        "",
        "![recall per transform](robustness_recall.png)",
        "",
        "![recall over the continuum](robustness_continuum.png)",
        "",
        "![distances of true and false pairs](robustness_distances.png)",
        "",
    ]
    return "\n".join(out)


def plot_recall(results: dict[str, Any], path: Path) -> None:
    """Grouped bars: recall at the default thresholds per transform, for the main methods."""
    methods = [m for m in results["methods"] if m["key"] in _CHART or m["key"].startswith("any_")]
    transforms = [t for t in results["transforms"] if t["group"] != "continuum"]
    half = (len(transforms) + 1) // 2
    fig, axes = plt.subplots(2, 1, figsize=(18, 9.5), constrained_layout=True)
    width = 0.8 / len(methods)
    colours = [plt.get_cmap("tab10")(i) for i in range(10)]
    for ax, part in zip(axes, (transforms[:half], transforms[half:])):
        x = np.arange(len(part))
        for i, m in enumerate(methods):
            ax.bar(
                x - 0.4 + (i + 0.5) * width,
                [m["recall"][t["name"]] for t in part],
                width,
                label=m["label"],
                color=colours[i % len(colours)],
            )
        for j, t in enumerate(part):
            if t["target"] is not None:
                ax.hlines(
                    t["target"],
                    j - 0.45,
                    j + 0.45,
                    colors="black",
                    linewidth=1.5,
                    label="target" if j == 0 or "target" not in ax.get_legend_handles_labels()[1] else None,
                )
        ax.set_xticks(x, [t["name"] + ("*" if t["group"] == "off-grid" else "") for t in part], rotation=20)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("recall")
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    seen = dict(zip(labels, handles))
    fig.suptitle(
        f"Recall at the default thresholds, {results['originals']['count']} generated originals "
        "(black lines: targets; *: off-grid, no target)"
    )
    fig.legend(seen.values(), seen.keys(), loc="outside lower center", ncol=len(seen))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_continuum(results: dict[str, Any], path: Path) -> None:
    """Small multiples: per continuum family, recall of each side-by-side method over its transforms."""
    by_key = {m["key"]: m for m in results["methods"]}
    methods = [by_key[k] for k in _SIDE_BY_SIDE if k in by_key]
    families: dict[str, list[dict[str, Any]]] = {}
    for t in results["transforms"]:
        if t["group"] == "continuum":
            families.setdefault(_family(t), []).append(t)
    if not families:
        return
    cols = 4
    rows = math.ceil(len(families) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(20, 4.2 * rows), constrained_layout=True, squeeze=False)
    colours = [plt.get_cmap("tab10")(i) for i in range(10)]
    for ax, (name, members) in zip(axes.ravel(), families.items()):
        x = np.arange(len(members))
        for i, m in enumerate(methods):
            style = "-o" if len(members) > 1 else "o"
            ax.plot(x, [m["recall"][t["name"]] for t in members], style, ms=3, label=m["label"], color=colours[i])
        ax.axhline(members[0]["target"] or 0, color="black", linewidth=1, linestyle="--")
        ax.set_title(f"{name} ({len(members)})")
        step = max(1, len(members) // 8)
        ax.set_xticks(x[::step], [t["name"] for t in members][::step], rotation=30, fontsize=7)
        ax.set_ylim(-0.02, 1.05)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(families) :]:
        ax.set_axis_off()
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels))
    fig.suptitle(
        f"Recall over the continuum, {results['originals']['count']} generated originals (dashed: target 0.95)"
    )
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_distances(results: dict[str, Any], path: Path) -> None:
    """Histograms of true-pair (all transforms) and false-pair distances, PDQ and pHash, per mode."""
    rows = [
        ("pdq", ("pdq_global", "pdq_rotations", "pdq_views")),
        ("phash", ("phash_global", "phash_rotations", "phash_views")),
    ]
    by_key = {m["key"]: m for m in results["methods"]}
    fig, axes = plt.subplots(2, 3, figsize=(15, 7.5), constrained_layout=True, squeeze=False)
    for r, (_, keys) in enumerate(rows):
        for c, key in enumerate(keys):
            ax = axes[r][c]
            m = by_key.get(key)
            if m is None:
                ax.set_axis_off()
                ax.text(0.5, 0.5, f"{key}: not run (no matcher.views)", ha="center", va="center")
                continue
            true = np.asarray(m["true_distance_hist"], float)[:-1]  # last bin: not comparable
            false = np.asarray(m["false_distance_hist"], float)[:-1]
            width = 4 if true.size > 100 else 2  # both hashes have half their bits set: distances are even
            edges = np.arange(0, true.size + width, width)
            for hist, label, colour in ((true, "true pairs", "tab:green"), (false, "false pairs", "tab:red")):
                total = hist.sum()
                if total:
                    binned = np.add.reduceat(hist, edges[:-1]) / total
                    ax.stairs(
                        binned, edges - 0.5, label=f"{label} ({int(total):,})", color=colour, fill=True, alpha=0.45
                    )
            ax.axvline(m["threshold"] + 0.5, color="black", linestyle="--", label=f"threshold {m['threshold']}")
            last = max(np.flatnonzero(true + false)[-1] if (true + false).any() else 0, m["threshold"])
            ax.set_xlim(-1, min(true.size, last + 2 * width))
            ax.set_yscale("log")
            ax.set_title(m["label"])
            ax.set_xlabel("set distance (bits)")
            ax.set_ylabel(f"fraction of pairs per {width} bits")
            ax.legend(fontsize=8)
    fig.suptitle(
        "Set distances of true pairs (edited copy vs its original, all transforms) and false pairs "
        "(pairs refused by the quality rule left out)"
    )
    fig.savefig(path, dpi=90)
    plt.close(fig)


def to_json(value: Any, indent: int = 0) -> str:
    """JSON with one key per line but lists of numbers on one line (histograms stay readable)."""
    pad, inner = " " * indent, " " * (indent + 1)
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(str(k))}: {to_json(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list) and value and not all(isinstance(v, (int, float)) for v in value):
        return "[\n" + ",\n".join(inner + to_json(v, indent + 1) for v in value) + "\n" + pad + "]"
    if isinstance(value, float) and math.isnan(value):
        return "null"
    return json.dumps(value, separators=(",", ":")) if isinstance(value, list) else json.dumps(value)


def write_all(results: dict[str, Any], out_dir: Path, stem: str) -> list[Path]:
    """Write ``<stem>.json``, ``<stem>.md``, ``<stem>_recall.png``, ``<stem>_distances.png`` and
    ``<stem>_continuum.png``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [
        out_dir / f"{stem}.json",
        out_dir / f"{stem}.md",
        out_dir / f"{stem}_recall.png",
        out_dir / f"{stem}_distances.png",
        out_dir / f"{stem}_continuum.png",
    ]
    paths[0].write_text(to_json(results) + "\n")
    text = markdown(results).replace("robustness_recall.png", paths[2].name)
    text = text.replace("robustness_continuum.png", paths[4].name)
    paths[1].write_text(text.replace("robustness_distances.png", paths[3].name))
    plot_recall(results, paths[2])
    plot_distances(results, paths[3])
    plot_continuum(results, paths[4])
    return paths
