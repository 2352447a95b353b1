"""Parsing of /proc for liveness, process trees, memory and listening ports."""

from __future__ import annotations

import os
from pathlib import Path

from headwater.stack import procs

PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   998        0 1 1
   1: 0100007F:2384 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1
   2: 0100007F:D2F0 0100007F:2384 01 00000000:00000000 00:00000000 00000000     0        0 3 1
"""


def test_listening_ports_keep_only_listen_state() -> None:
    # 0x1538 = 5432 and 0x2384 = 9092 listen; the established client socket is ignored.
    assert procs.parse_listening_ports(PROC_NET_TCP) == {5432, 9092}
    assert procs.parse_listening_ports("") == set()


def test_vm_rss_in_kib() -> None:
    assert procs.parse_vm_rss_kib("Name:\tjava\nVmRSS:\t  409600 kB\nThreads:\t40\n") == 409600
    assert procs.parse_vm_rss_kib("Name:\tkthreadd\n") == 0


def test_stat_survives_spaces_and_parens_in_the_command_name() -> None:
    assert procs.parse_stat("42 (my (odd) name) S 7 42 42 0 -1") == ("S", 7, 42)


def test_descendants_walks_the_whole_tree() -> None:
    parents = {10: 1, 11: 10, 12: 10, 13: 12, 20: 1}
    assert sorted(procs.descendants(10, parents)) == [10, 11, 12, 13]
    assert procs.descendants(99, parents) == [99]


def test_pid_file_first_line() -> None:
    assert procs.parse_pid_file("1234\n/var/lib/pg\n") == 1234
    assert procs.parse_pid_file("\n") is None
    assert procs.parse_pid_file("garbage") is None


def test_this_process_is_alive_and_has_memory() -> None:
    assert procs.is_alive(os.getpid())
    assert procs.tree_rss_mib(os.getpid()) > 0


def test_tail_returns_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i}\n" for i in range(10_000)))
    assert procs.tail(log, 3) == ["line 9997", "line 9998", "line 9999"]
    assert procs.tail(tmp_path / "missing.log", 3) == []
