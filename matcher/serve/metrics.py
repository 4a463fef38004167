"""The service's counters and latency histograms, rendered in the Prometheus text format (0.0.4).

:class:`Metrics` is per process: with ``--workers N`` each worker process counts its own requests
and a scrape reaches one of them. For exact figures run one worker per instance and scrape each
instance (docs/deployment.md).
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Mapping

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

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._histograms: dict[str, tuple[list[int], list[float]]] = {}

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
        """The text exposition: every counter, the histograms, and ``gauges`` (``{name: value}``)."""
        described = {
            "matcher_requests_total": "HTTP requests answered, by route and status",
            "matcher_lookups_total": "hashes looked up",
            "matcher_matches_total": "answers with a match (per hash looked up, per image matched)",
            "matcher_errors_total": "error answers by kind",
            "matcher_index_reloads_total": "index generations switched to, and failed attempts",
        }
        lines: list[str] = []
        with self._lock:
            counters = dict(self._counters)
            histograms = {route: (list(b), list(t)) for route, (b, t) in self._histograms.items()}
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
        for gauge, value in gauges.items():
            lines.append(f"# TYPE {gauge} gauge")
            lines.append(f"{gauge} {value:g}")
        return "\n".join(lines) + "\n"
