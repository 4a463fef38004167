"""``python -m benchmarks.robustness [--quick] [--originals N] [--distractors N] [--workers N] [--out DIR]
[--replot]``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from .report import write_all
from .run import DEFAULT, QUICK, Config, run


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write its results; prints the Markdown table."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.robustness",
        description="Recall and false matches of matcher and its peers under image edits.",
    )
    parser.add_argument("--quick", action="store_true", help=f"{QUICK[0]} originals, {QUICK[1]} distractors")
    parser.add_argument("--originals", type=int, help=f"generated originals (default {DEFAULT[0]})")
    parser.add_argument("--distractors", type=int, help=f"generated distractors (default {DEFAULT[1]})")
    parser.add_argument("--workers", type=int, help="hashing processes (default 2)")
    parser.add_argument("--out", type=Path, help="results directory (default benchmarks/results)")
    parser.add_argument(
        "--replot",
        action="store_true",
        help="only rewrite the Markdown and the plots from the results JSON of these sizes",
    )
    args = parser.parse_args(argv)
    config = Config.from_env(quick=args.quick or None)
    changes = {
        k: v
        for k, v in (
            ("originals", args.originals),
            ("distractors", args.distractors),
            ("workers", args.workers),
            ("out_dir", args.out),
        )
        if v is not None
    }
    if changes:
        config = dataclasses.replace(config, **changes)
        if (config.originals, config.distractors) != DEFAULT:
            config = dataclasses.replace(config, stem=f"robustness_{config.originals}x{config.distractors}")
    if args.replot:
        results = json.loads((config.out_dir / f"{config.stem}.json").read_text())
    else:
        results = run(config)
    paths = write_all(results, config.out_dir, config.stem)
    print(paths[1].read_text())
    print("wrote " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
