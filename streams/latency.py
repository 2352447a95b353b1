"""How long records take to get through a worker's stages, as cumulative histograms.

A worker observes, for every record it writes, the milliseconds from the record's Kafka
timestamp (when Kafka Connect produced it) to each stage: handed to the agent's lane
(`fetched`), acknowledged by the sink (`acked`). Counts only grow, so a reader (a benchmark, a
dashboard, Prometheus later) takes two snapshots and reads the quantiles of their difference:
what happened in between, whatever the worker did before. Pure: no clock, no I/O.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Upper bounds (ms) of the buckets; a last, open bucket takes everything above.
BOUNDS_MS: tuple[float, ...] = (
    5, 10, 20, 30, 40, 50, 75, 100, 125, 150, 200, 250, 300, 400, 500, 750,
    1_000, 1_500, 2_000, 3_000, 5_000, 10_000, 30_000,
)  # fmt: skip


@dataclass
class Histogram:
    """Counts of observations per bucket of `BOUNDS_MS` (plus the open one), and their sum."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(BOUNDS_MS) + 1))
    sum_ms: float = 0.0

    def observe(self, ms: float, times: int = 1) -> None:
        self.counts[bisect_left(BOUNDS_MS, ms)] += times
        self.sum_ms += ms * times

    def snapshot(self) -> dict[str, Any]:
        return {"bounds_ms": list(BOUNDS_MS), "counts": list(self.counts), "sum_ms": self.sum_ms}


def added(snapshots: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """One snapshot of several histograms with the same buckets (say, one per worker)."""
    total: dict[str, Any] | None = None
    for snapshot in snapshots:
        if total is None:
            total = {**snapshot, "counts": list(snapshot["counts"])}
            continue
        if snapshot["bounds_ms"] != total["bounds_ms"]:
            raise ValueError("the snapshots have different buckets")
        total["counts"] = [a + b for a, b in zip(total["counts"], snapshot["counts"], strict=True)]
        total["sum_ms"] += snapshot["sum_ms"]
    return total


def since(later: Mapping[str, Any], earlier: Mapping[str, Any] | None) -> list[int]:
    """Per-bucket counts observed between two snapshots of one histogram."""
    if earlier is None:
        return list(later["counts"])
    if later["bounds_ms"] != earlier["bounds_ms"]:
        raise ValueError("the two snapshots have different buckets")
    return [a - b for a, b in zip(later["counts"], earlier["counts"], strict=True)]


def quantile(counts: Sequence[int], q: float, bounds: Sequence[float] = BOUNDS_MS) -> float | None:
    """The `q` quantile of bucketed counts, interpolated linearly within its bucket (the open
    bucket answers its lower bound: the value is only known to be above it). None if empty."""
    if not 0 <= q <= 1:
        raise ValueError(f"quantile must be within [0, 1], got {q}")
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, n in enumerate(counts):
        if n and seen + n >= rank:
            low = bounds[i - 1] if i > 0 else 0.0
            if i == len(bounds):
                return float(low)
            return low + (bounds[i] - low) * max(0.0, rank - seen) / n
        seen += n
    return float(bounds[-1])


def summary(counts: Sequence[int]) -> dict[str, float | int | None]:
    """Count, p50, p95 and p99 (ms, rounded to 0.1) of bucketed counts."""
    out: dict[str, float | int | None] = {"count": sum(counts)}
    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        value = quantile(counts, q)
        out[name] = None if value is None else round(value, 1)
    return out
