"""The service's counters and latency histograms, rendered in the Prometheus text format (0.0.4).

:class:`Metrics` is per process: with ``--workers N`` each worker process counts its own requests
and a scrape reaches one of them. For exact figures run one worker per instance and scrape each
instance (docs/deployment.md).
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["LATENCY_BUCKETS", "Metrics"]

#: Upper bounds (seconds) of the latency histogram's buckets.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _escape(value: str) -> str:
    """A label value as the text format writes it (backslash, double quote and newline escaped)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{name}="{_escape(value)}"' for name, value in labels.items())
    return "{" + inner + "}"


class Metrics:
    """Counters (requests by route and status, hashes looked up, matches, errors by kind, index
    reloads) and a latency histogram per route; gauges are read from the live index when rendered."""

    def __init__(self, share: str | os.PathLike[str] | None = None) -> None:
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._histograms: dict[str, tuple[list[int], list[float]]] = {}
        self.share = Path(share) if share is not None else None

    def snapshot(self) -> dict[str, Any]:
        """This process's figures as JSON-ready data: ``counters`` (``[name, labels, value]``) and
        ``histograms`` (``{route: [buckets, count, sum]}``)."""
        with self._lock:
            return {
                "counters": [[name, dict(labels), value] for (name, labels), value in self._counters.items()],
                "histograms": {route: [list(b), t[0], t[1]] for route, (b, t) in self._histograms.items()},
            }

    def publish(self, figures: dict[str, Any] | None = None) -> None:
        """Write this process's figures (``figures``: a :meth:`snapshot` just taken, else one taken
        now) to the shared directory (``<pid>.json``, replaced whole), if there is one; a failure to
        write is left for the next time (figures are never lost, only late)."""
        if self.share is None:
            return
        target = self.share / f"{os.getpid()}.json"
        temporary = target.with_suffix(".tmp")
        with contextlib.suppress(OSError):
            temporary.write_text(json.dumps(self.snapshot() if figures is None else figures))
            os.replace(temporary, target)

    def _merged(self) -> tuple[dict[tuple[str, tuple[tuple[str, str], ...]], float], dict[str, Any], int]:
        """Every worker's figures summed (only this process's without a shared directory), and how
        many processes they come from."""
        own = self.snapshot()
        parts = [own]
        if self.share is not None:
            self.publish(own)
            mine = f"{os.getpid()}.json"
            for path in sorted(self.share.glob("*.json")):
                if path.name == mine:
                    continue
                with contextlib.suppress(OSError, ValueError):
                    parts.append(json.loads(path.read_text()))
        counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        histograms: dict[str, Any] = {}
        for part in parts:
            for name, labels, value in part.get("counters", []):
                key = (str(name), tuple(sorted((str(k), str(v)) for k, v in dict(labels).items())))
                counters[key] = counters.get(key, 0) + float(value)
            for route, (buckets, count, total) in part.get("histograms", {}).items():
                have = histograms.setdefault(route, [[0] * (len(LATENCY_BUCKETS) + 1), 0, 0.0])
                have[0] = [a + int(b) for a, b in zip(have[0], buckets)]
                have[1] += int(count)
                have[2] += float(total)
        return counters, histograms, len(parts)

    def count(self, name: str, amount: float = 1, **labels: str) -> None:
        """Add ``amount`` to counter ``name`` with these labels."""
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._counters[key] = self._counters.get(key, 0) + amount

    def observe(self, route: str, seconds: float) -> None:
        """Record one request of ``route`` that took ``seconds``."""
        with self._lock:
            buckets, totals = self._histograms.setdefault(route, ([0] * (len(LATENCY_BUCKETS) + 1), [0.0, 0.0]))
            buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
            totals[0] += 1
            totals[1] += seconds

    def render(self, gauges: Mapping[str, float]) -> str:
        """The text exposition: every counter and the histograms (every worker's, summed), how many
        worker processes they sum (``matcher_worker_processes``), and ``gauges`` (``{name: value}``,
        this process's)."""
        described = {
            "matcher_requests_total": "HTTP requests answered, by route and status",
            "matcher_lookups_total": "hashes looked up",
            "matcher_matches_total": "answers with a match (per hash looked up, per image matched)",
            "matcher_errors_total": "error answers by kind",
            "matcher_index_reloads_total": "index generations switched to, and failed attempts",
        }
        lines: list[str] = []
        counters, merged, processes = self._merged()
        histograms = {route: (b, (count, total)) for route, (b, count, total) in merged.items()}
        for name, help_text in described.items():
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} counter")
            for (counter, labels), value in sorted(counters.items()):
                if counter == name:
                    lines.append(f"{name}{_labels(dict(labels))} {value:g}")
        name = "matcher_request_duration_seconds"
        lines.append(f"# HELP {name} time to answer a request, by route")
        lines.append(f"# TYPE {name} histogram")
        for route, (buckets, (count, total)) in sorted(histograms.items()):
            cumulative = 0
            for bound, inside in zip(LATENCY_BUCKETS, buckets):
                cumulative += inside
                lines.append(f"{name}_bucket{_labels({'route': route, 'le': f'{bound:g}'})} {cumulative}")
            lines.append(f"{name}_bucket{_labels({'route': route, 'le': '+Inf'})} {int(count)}")
            lines.append(f"{name}_count{_labels({'route': route})} {int(count)}")
            lines.append(f"{name}_sum{_labels({'route': route})} {total:.6f}")
        lines.append("# HELP matcher_worker_processes worker processes whose figures the counters sum")
        for gauge, value in {"matcher_worker_processes": float(processes), **gauges}.items():
            lines.append(f"# TYPE {gauge} gauge")
            lines.append(f"{gauge} {value:g}")
        return "\n".join(lines) + "\n"
