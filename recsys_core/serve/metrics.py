"""Request counts and latency histograms in the Prometheus text format (no client library needed)."""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Iterable

# Latency buckets in seconds: fine below 100 ms, where the recommend target lies.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Counters and histograms keyed by (method, route, status); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count: dict[tuple[str, str, str], int] = defaultdict(int)
        self._hist: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
        self._sum: dict[tuple[str, str], float] = defaultdict(float)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self._count[(method, route, str(status))] += 1
            buckets = self._hist[(method, route)]
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    buckets[i] += 1
                    break
            else:
                buckets[-1] += 1
            self._sum[(method, route)] += seconds

    def render(self, gauges: Iterable[tuple[str, str, float]] = ()) -> str:
        """The exposition text; ``gauges`` adds (name, help, value) lines (events, merges, model)."""
        lines = ["# HELP scenepush_requests_total HTTP requests by method, route and status.",
                 "# TYPE scenepush_requests_total counter"]
        with self._lock:
            for (method, route, status), n in sorted(self._count.items()):
                lines.append(f'scenepush_requests_total{{method="{method}",route="{_label(route)}",status="{status}"}} {n}')
            lines += ["# HELP scenepush_request_duration_seconds Request latency by method and route.",
                      "# TYPE scenepush_request_duration_seconds histogram"]
            for (method, route), buckets in sorted(self._hist.items()):
                labels = f'method="{method}",route="{_label(route)}"'
                running = 0
                for bound, n in zip(BUCKETS, buckets):
                    running += n
                    lines.append(f'scenepush_request_duration_seconds_bucket{{{labels},le="{bound}"}} {running}')
                running += buckets[-1]
                lines.append(f'scenepush_request_duration_seconds_bucket{{{labels},le="+Inf"}} {running}')
                lines.append(f"scenepush_request_duration_seconds_sum{{{labels}}} {self._sum[(method, route)]:.6f}")
                lines.append(f"scenepush_request_duration_seconds_count{{{labels}}} {running}")
        for name, help_text, value in gauges:
            kind = "counter" if name.endswith("_total") else "gauge"
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {value:g}"]
        return "\n".join(lines) + "\n"
