"""One local SparkSession for every batch unit test, and a factory of raw Kafka rows."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession

RawRows = Callable[[list[dict[str, Any] | None]], DataFrame]


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    session = (
        SparkSession.builder.master("local[2]")
        .appName("headwater-unit")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture
def raw_rows(spark: SparkSession) -> RawRows:
    """Kafka source rows from event values (None is a tombstone); offsets in list order."""

    def make(values: list[dict[str, Any] | None]) -> DataFrame:
        rows = []
        for offset, value in enumerate(values):
            key = json.dumps({"id": (value or {}).get("id", 0)}).encode()
            body = None if value is None else json.dumps(value).encode()
            rows.append((key, body, "shop.public.t", 0, offset))
        return spark.createDataFrame(
            rows, "key binary, value binary, topic string, partition int, offset long"
        )

    return make


def event(op: str, lsn: int, ts_ms: int = 1_700_000_000_000, **row: Any) -> dict[str, Any]:
    """A flattened Debezium value as the shop-source connector writes it."""
    return {
        **row,
        "__op": op,
        "__lsn": lsn,
        "__source_ts_ms": ts_ms,
        "__table": "t",
        "__deleted": "true" if op == "d" else "false",
    }
