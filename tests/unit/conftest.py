"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI

from headwater.pipelines.declarations import Pipelines, load
from headwater.settings import PROJECT_ROOT


@pytest.fixture(scope="session")
def shop() -> Pipelines:
    """The shop's own declarations, as users see them in `pipelines/`."""
    return load(PROJECT_ROOT / "pipelines")


@pytest.fixture
def open_app() -> Callable[..., FastAPI]:
    """A factory of the whole API, open to anonymous callers and without rate limits (so no
    PostgreSQL): what the tests of parameters, answers and errors need. Keyword arguments are
    further API settings."""
    from api.app import build_app
    from api.settings import ApiSettings
    from headwater.settings import Settings
    from streams.dashboards.settings import DashboardSettings
    from streams.settings import StreamsSettings

    def make(**api: Any) -> FastAPI:
        settings = ApiSettings(**{"anonymous": True, "rate_limits": False, **api})
        return build_app(Settings.load(), settings, StreamsSettings(), DashboardSettings())

    return make
