"""Process bookkeeping of the stack manager that needs no running service."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from headwater.settings import (
    ConnectSettings,
    ElasticsearchSettings,
    KafkaSettings,
    PostgresSettings,
    Settings,
    StackSettings,
)
from headwater.stack.manager import Stack, child_env


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    return Stack(
        Settings(
            postgres=PostgresSettings(password="pw"),
            kafka=KafkaSettings(),
            connect=ConnectSettings(),
            elasticsearch=ElasticsearchSettings(),
            stack=StackSettings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache"),
        )
    )


def test_no_pid_file_means_not_running(stack: Stack) -> None:
    assert stack.managed_pid("kafka") is None
    assert stack.managed_pid("postgres") is None


def test_a_stale_pid_file_is_not_taken_for_the_service(stack: Stack) -> None:
    pid_file = stack.layout.pid_file("kafka")
    pid_file.parent.mkdir(parents=True)
    # A live process that is not Kafka (a recycled pid) ...
    pid_file.write_text(f"{os.getpid()}\n")
    assert stack.managed_pid("kafka") is None
    # ... and a pid nobody has.
    pid_file.write_text("999999999\n")
    assert stack.managed_pid("kafka") is None


def test_a_live_process_with_the_marker_is_ours(stack: Stack) -> None:
    marker = stack.services["kafka"].marker
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", marker])
    try:
        pid_file = stack.layout.pid_file("kafka")
        pid_file.parent.mkdir(parents=True)
        pid_file.write_text(f"{child.pid}\n")
        assert stack.managed_pid("kafka") == child.pid
    finally:
        child.kill()
        child.wait()
    assert stack.managed_pid("kafka") is None


def test_servers_do_not_inherit_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HW_PG_PASSWORD", "secret")
    monkeypatch.setenv("JAVA_TOOL_OPTIONS", "-Xmx1t")
    env = child_env({"ES_JAVA_HOME": "/jdk"})
    assert "HW_PG_PASSWORD" not in env and "JAVA_TOOL_OPTIONS" not in env
    assert env["ES_JAVA_HOME"] == "/jdk"
    assert env["PATH"] == os.environ["PATH"]
