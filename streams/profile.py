"""Where a benchmark's time goes: CPU per service of the stack during a step, and a sampled
profile of the stream worker by stage.

`CpuMeter` reads `/proc` (user + system ticks of each service's whole process tree, PostgreSQL's
backends included) at the start and end of a step: cores used per service, against the cores
the machine has, says which process bounds a figure. `Profiler` runs py-spy on the worker for a
step (collapsed stacks, CPU samples only: a wait on Elasticsearch costs no samples), and
`by_stage` / `by_function` read them. Parsing is pure; only the two classes touch processes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from headwater.stack import procs

PROC = Path("/proc")

# Stages of the worker, by the first frame (from the innermost out) that names one. A frame is
# "function (path:line)"; the match is on the path, then on the function.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("decode change events", ("headwater/models/cdc.py",)),
    ("plan and shape documents", ("streams/search/logic.py", "indexers/documents.py")),
    ("merge documents", ("indexers/merge.py",)),
    ("Elasticsearch client", ("elasticsearch/", "elastic_transport/", "indexers/bulk.py")),
    ("dashboards", ("streams/dashboards/",)),
    ("Kafka client (aiokafka)", ("aiokafka/",)),
    ("Faust", ("faust/", "mode/", "streams/transport.py")),
    ("HTTP and event loop", ("aiohttp/", "asyncio/", "uvloop")),
)
OTHER = "other"


def _ticks(pid: int) -> int:
    """User + system clock ticks of one process (0 if it is gone)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return 0
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


def tree_cpu_s(pid: int) -> float:
    """CPU seconds used so far by `pid` and every live process below it."""
    hz = os.sysconf("SC_CLK_TCK")
    return sum(_ticks(p) for p in procs.process_tree(pid)) / hz


@dataclass
class CpuMeter:
    """Cores each named process tree used between `start()` and `stop()`."""

    pids: Mapping[str, int]
    _start: dict[str, float] = field(default_factory=dict)
    _at: float = 0.0

    def start(self) -> None:
        self._start = {name: tree_cpu_s(pid) for name, pid in self.pids.items()}
        self._at = time.monotonic()

    def stop(self) -> dict[str, float]:
        wall = max(time.monotonic() - self._at, 1e-9)
        return {
            name: round((tree_cpu_s(pid) - self._start.get(name, 0.0)) / wall, 2)
            for name, pid in self.pids.items()
        }


def parse_collapsed(lines: Iterable[str]) -> list[tuple[list[str], int]]:
    """py-spy's raw output: `frame;frame;...;leaf count` per line, outermost frame first."""
    out = []
    for line in lines:
        line = line.rstrip("\n")
        if not line or " " not in line:
            continue
        stack, _, count = line.rpartition(" ")
        if count.isdigit():
            out.append((stack.split(";"), int(count)))
    return out


def stage_of(stack: list[str]) -> str:
    for frame in reversed(stack):
        for stage, marks in STAGES:
            if any(mark in frame for mark in marks):
                return stage
    return OTHER


def by_stage(samples: list[tuple[list[str], int]]) -> list[tuple[str, float]]:
    """Each stage's share of the worker's CPU samples, largest first."""
    counts: Counter[str] = Counter()
    for stack, n in samples:
        counts[stage_of(stack)] += n
    total = sum(counts.values()) or 1
    return [(stage, round(n / total, 3)) for stage, n in counts.most_common()]


def by_function(samples: list[tuple[list[str], int]], top: int = 10) -> list[tuple[str, float]]:
    """The functions the samples were in (self time), largest share first."""
    counts: Counter[str] = Counter()
    for stack, n in samples:
        if stack:
            counts[stack[-1]] += n
    total = sum(counts.values()) or 1
    return [(frame, round(n / total, 3)) for frame, n in counts.most_common(top)]


def py_spy() -> str | None:
    """The py-spy of this environment, if installed (a development dependency)."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


@dataclass
class Profiler:
    """py-spy sampling one process for a fixed time, in the background."""

    pid: int
    out: Path
    duration_s: float
    _proc: subprocess.Popen[bytes] | None = None

    def start(self) -> bool:
        exe = py_spy()
        if exe is None:
            return False
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._proc = subprocess.Popen(
            [exe, "record", "--pid", str(self.pid), "--duration", str(int(self.duration_s)),
             "--rate", "97", "--format", "raw", "--nonblocking", "--output", str(self.out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        return True

    def samples(self) -> list[tuple[list[str], int]]:
        """The samples, once the recording is over (empty if it could not run)."""
        if self._proc is None:
            return []
        try:
            self._proc.wait(self.duration_s + 30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            return []
        if self._proc.returncode != 0 or not self.out.exists():
            return []
        return parse_collapsed(self.out.read_text().splitlines())
