"""Processes and sockets read from /proc (no psutil): liveness, process trees, RSS, ports."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

PROC = Path("/proc")
TCP_LISTEN = "0A"


# Pure parsing --------------------------------------------------------------------------------
def parse_listening_ports(proc_net_tcp: str) -> set[int]:
    """Local ports in LISTEN state from the text of /proc/net/tcp or /proc/net/tcp6."""
    ports: set[int] = set()
    for line in proc_net_tcp.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 3 and fields[3] == TCP_LISTEN:
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def parse_vm_rss_kib(proc_status: str) -> int:
    for line in proc_status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0  # kernel threads and zombies have no VmRSS


def parse_stat(proc_stat: str) -> tuple[str, int, int]:
    """(state, ppid, pgid) from /proc/<pid>/stat; the command name may contain spaces."""
    after_name = proc_stat[proc_stat.rindex(")") + 2 :].split()
    return after_name[0], int(after_name[1]), int(after_name[2])


def descendants(root: int, parents: Mapping[int, int]) -> list[int]:
    """`root` and every process below it, given a pid -> ppid map."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def parse_pid_file(text: str) -> int | None:
    """The first line of a pid file (ours, or PostgreSQL's postmaster.pid)."""
    first = text.strip().splitlines()[0].strip() if text.strip() else ""
    return int(first) if first.isdigit() else None


# Reading /proc -------------------------------------------------------------------------------
def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def stat_of(pid: int) -> tuple[str, int, int] | None:
    text = _read(PROC / str(pid) / "stat")
    return parse_stat(text) if text else None


def is_alive(pid: int) -> bool:
    """Running and not a zombie."""
    stat = stat_of(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def cmdline(pid: int) -> list[str]:
    text = _read(PROC / str(pid) / "cmdline")
    return [part for part in (text or "").split("\0") if part]


def process_cwd(pid: int) -> Path | None:
    try:
        return Path(os.readlink(PROC / str(pid) / "cwd"))
    except OSError:
        return None


def parent_map() -> dict[int, int]:
    parents: dict[int, int] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            stat = stat_of(int(entry.name))
            if stat:
                parents[int(entry.name)] = stat[1]
    return parents


def process_tree(pid: int) -> list[int]:
    return [p for p in descendants(pid, parent_map()) if is_alive(p)]


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants (PostgreSQL's backends, ES's JVM)."""
    kib = sum(parse_vm_rss_kib(_read(PROC / str(p) / "status") or "") for p in process_tree(pid))
    return round(kib / 1024, 1)


def listening_ports() -> set[int]:
    ports: set[int] = set()
    for name in ("tcp", "tcp6"):
        ports |= parse_listening_ports(_read(PROC / "net" / name) or "")
    return ports


def read_pid_file(path: Path) -> int | None:
    text = _read(path)
    return parse_pid_file(text) if text else None


# Signals -------------------------------------------------------------------------------------
def signal_tree(pid: int, sig: signal.Signals) -> None:
    """Signal a process, its process group when it leads one, and its descendants."""
    pids = process_tree(pid)
    stat = stat_of(pid)
    if stat and stat[2] == pid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
    for p in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, sig)


def wait_gone(pids: Iterable[int], timeout_s: float) -> list[int]:
    """Wait until none of `pids` is alive; return the ones still alive at the deadline."""
    pending = list(pids)
    deadline = time.monotonic() + timeout_s
    while True:
        pending = [p for p in pending if is_alive(p)]
        if not pending or time.monotonic() >= deadline:
            return pending
        time.sleep(0.2)


def terminate_tree(pid: int, timeout_s: float) -> bool:
    """SIGTERM, wait, then SIGKILL what is left. True if it stopped without SIGKILL."""
    pids = process_tree(pid)
    if not pids:
        return True
    signal_tree(pid, signal.SIGTERM)
    left = wait_gone(pids, timeout_s)
    if not left:
        return True
    for p in left:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, signal.SIGKILL)
    wait_gone(left, 10)
    return False


def tail(path: Path, lines: int) -> list[str]:
    """The last `lines` lines of a (possibly large) log file."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            block, data = 64 * 1024, b""
            while size > 0 and data.count(b"\n") <= lines:
                step = min(block, size)
                size -= step
                fh.seek(size)
                data = fh.read(step) + data
    except OSError:
        return []
    return data.decode(errors="replace").splitlines()[-lines:]
