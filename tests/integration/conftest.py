"""Fixtures of the integration tests that run Spark jobs (one session per test module)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from batch.settings import BatchSettings
from headwater.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@pytest.fixture(scope="module")
def batch_settings(tmp_path_factory: pytest.TempPathFactory) -> BatchSettings:
    return BatchSettings(reports_dir=tmp_path_factory.mktemp("reports"))


@pytest.fixture(scope="module")
def spark(stack: Settings, batch_settings: BatchSettings) -> Iterator[SparkSession]:
    """A local session with the Kafka source and the JDBC driver on its class path."""
    from batch.spark import build_session, install_jars

    install_jars(stack, batch_settings)
    session = build_session(stack, batch_settings, "headwater-integration")
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
