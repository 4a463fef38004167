"""Matching re-encoded copies of known videos, and nothing else: recall and false matches of ``scan``.

Run (a few minutes on 2 loaded cores)::

    python -m pytest benchmarks/test_video_recall.py -s
    MATCHER_BENCH_RECALL_VIDEOS=4 python -m pytest benchmarks/test_video_recall.py -s   # quick

Not part of the normal test run. ``MATCHER_BENCH_RECALL_VIDEOS`` (default 10) generated known videos
(H.264, 640x360, 25 fps, 8 s, shots of 2.5 s: landscapes, shapes, text cards) go into an index with
``matcher index add``; the evidence is every copy :data:`fixtures.video.VARIANTS` makes of each
(CRF 36 lower bitrate, resized to 480 lines, 25 -> 30 fps, 1 s trimmed at either end, a letterbox
of 20 % of the height), re-encoded with PyAV, and as many unrelated generated videos. The scan runs
with vPDQ's defaults. Recall: the copies whose record matches their own original (a ``vpdq``
match) over all copies (target >= 0.95); false matches: unrelated videos with any match, and copies
matching another original (target 0). Figures go to ``benchmarks/results/video_recall.json``.
"""

from __future__ import annotations

from benchmarks.speed_common import env_int, save
from fixtures.video import VARIANTS, variant, video
from matcher.cli import main
from matcher.index import KnownIndex
from matcher.scan import scan

VIDEOS = env_int("MATCHER_BENCH_RECALL_VIDEOS", 10)
SIZE = (640, 360)


def test_video_recall_and_false_matches(tmp_path):
    known, evidence = tmp_path / "known", tmp_path / "evidence"
    known.mkdir()
    evidence.mkdir()
    for number in range(VIDEOS):
        original = video(500 + number, seconds=8, size=SIZE)
        (known / f"k{number:02d}.mp4").write_bytes(original)
        for name in VARIANTS:
            (evidence / f"k{number:02d}_{name}.mp4").write_bytes(variant(original, name))
        (evidence / f"unrelated{number:02d}.mp4").write_bytes(video(900 + number, seconds=8, size=SIZE))
    index = tmp_path / "index"
    KnownIndex.create(index, ["pdq"]).close()
    assert main(["index", "add", str(index), str(known), "--list", "known", "--quiet"]) == 0
    with KnownIndex.open(index) as opened:
        id_of = {record.id: record.name.rsplit("/", 1)[-1][:3] for record in opened.iter_records()}
    per_variant = {name: 0 for name in VARIANTS}
    copies = hits = false_matches = 0
    percents = []
    for record in scan([evidence], index):
        name = record.path.rsplit("/", 1)[-1]
        if name.startswith("unrelated"):
            false_matches += bool(record.matches)
            continue
        copies += 1
        own = name[:3]
        kind = name[4:-4]
        matched = {id_of[m.record] for m in record.matches if m.algorithm == "vpdq"}
        false_matches += bool(matched - {own})
        if own in matched:
            hits += 1
            per_variant[kind] += 1
            match = next(m for m in record.matches if m.algorithm == "vpdq" and id_of[m.record] == own)
            percents.append((match.video or {}).get("query_percent", 0.0))
    recall = hits / copies
    figures = {
        "known_videos": VIDEOS,
        "copies": copies,
        "unrelated": VIDEOS,
        "recall": round(recall, 3),
        "recall_by_variant": {k: round(v / VIDEOS, 3) for k, v in per_variant.items()},
        "false_matches": false_matches,
        "mean_query_percent_of_hits": round(sum(percents) / max(1, len(percents)), 1),
    }
    print(figures)
    save("video_recall", figures)
    assert recall >= 0.95 and false_matches == 0
