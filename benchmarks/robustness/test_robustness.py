"""The robustness benchmark as a pytest entry (see :mod:`benchmarks.robustness` for what it measures).

``python -m pytest benchmarks/robustness -s`` runs it at the sizes the ``MATCHER_ROBUST_*``
variables give (default: the full benchmark, about ten minutes; ``MATCHER_ROBUST_QUICK=1``: about a
minute) and writes its results. Only sanity is asserted, never recall or timing.
"""

from __future__ import annotations

from benchmarks.robustness.report import write_all
from benchmarks.robustness.run import Config, run


def test_robustness() -> None:
    config = Config.from_env()
    results = run(config)
    paths = write_all(results, config.out_dir, config.stem)
    assert all(p.stat().st_size > 0 for p in paths)
    by_key = {m["key"]: m for m in results["methods"]}
    # matcher's global hashes are the reference libraries' hashes
    assert results["consistency"]["pdq_global_differs_from_pdqhash"] == 0
    assert results["consistency"]["phash_global_differs_from_imagehash"] == 0
    assert by_key["pdq_global"]["recall"] == by_key["ref_pdq"]["recall"]
    for m in results["methods"]:
        assert all(0.0 <= r <= 1.0 for r in m["recall"].values())
    # a JPEG 75 copy of a textured image matches in every PDQ mode
    if results["originals"]["count"] > results["originals"]["pdq_quality_below_50"]:
        assert all(m["recall_textured"]["jpeg75"] > 0.5 for m in results["methods"] if m["algorithm"] == "pdq")
    # more views never lose a match that fewer views find (the rotation set contains the global hash)
    for algo in ("pdq", "phash"):
        glob, rot = by_key[f"{algo}_global"]["recall"], by_key[f"{algo}_rotations"]["recall"]
        assert all(rot[t] >= glob[t] for t in glob)
    # the scan's rule (global hashes, then local features for what they miss) loses nothing the views find
    if "pdq_views_local" in by_key:
        views, both = by_key["pdq_views"]["recall"], by_key["pdq_views_local"]["recall"]
        assert all(both[t] >= views[t] for t in views)
        assert all(0.0 <= r <= 1.0 for r in by_key["local"]["recall"].values())
    print(paths[1].read_text())
