"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest

from headwater.pipelines.declarations import Pipelines, load
from headwater.settings import PROJECT_ROOT


@pytest.fixture(scope="session")
def shop() -> Pipelines:
    """The shop's own declarations, as users see them in `pipelines/`."""
    return load(PROJECT_ROOT / "pipelines")
