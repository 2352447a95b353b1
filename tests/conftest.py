"""Shared fixtures: settings, the real stack (required in CI, skipped locally when down), names."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from urllib.parse import urlparse

import pytest

from headwater.settings import Settings

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SECURE = os.environ.get("HW_STACK_SECURE", "").lower() in ("1", "true", "yes")

# tests/secure/ needs the secured stack (scripts/test.sh starts one and runs it there).
collect_ignore_glob = [] if SECURE else ["secure/*"]

# Modules that stop and start the shared stack run last, so they cannot pull it from under
# the other integration tests.
_RUN_LAST = ("test_chaos.py", "test_stack.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name in _RUN_LAST)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings.load()


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Settings:
    """The real local stack. In CI a missing service fails the test; locally it skips."""
    es = urlparse(settings.elasticsearch.url)
    connect = urlparse(settings.connect.url)
    kafka_host, kafka_port = settings.kafka.bootstrap_servers.split(",")[0].rsplit(":", 1)
    endpoints = {
        "postgres": (settings.postgres.host, settings.postgres.port),
        "kafka": (kafka_host, int(kafka_port)),
        "connect": (connect.hostname or "127.0.0.1", connect.port or 8083),
        "elasticsearch": (es.hostname or "127.0.0.1", es.port or 9200),
    }
    down = [name for name, (host, port) in endpoints.items() if not _listening(host, port)]
    if down:
        message = f"stack services not reachable: {', '.join(down)} (run `headwater stack up`)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return settings


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """Random topic, group and index names, so tests never share state."""

    def make(prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    return make
