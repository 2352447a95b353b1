"""Daily aggregates: `agg_daily_sales` rebuilt from `fact_order_line` for a range of days.

`extract -> transform -> load`: without `--from/--to` every day is rebuilt, so a run always
converges on the facts as loaded; the rows of the range are replaced in one transaction, after
the suite passed.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batch import io
from batch import transforms as t
from batch.jobs.warehouse import LoadResult, QualityFailed, Window, job_main, record_failure
from batch.quality import runner, suites
from batch.settings import BatchSettings
from headwater.settings import Settings

if TYPE_CHECKING:
    import psycopg
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

JOB = "daily_sales"
FACT_SCHEMA = (
    "order_item_id bigint, order_id bigint, date_key int, order_status string, quantity int, "
    "line_amount decimal(12,2)"
)


def extract(
    spark: SparkSession, settings: Settings, conn: psycopg.Connection[Any], window: Window
) -> DataFrame:
    low, high = window.bounds()
    # Spark reads the facts over JDBC; the driver jar comes from `headwater batch install`.
    pg = settings.postgres
    query = (
        "SELECT order_item_id, order_id, date_key, order_status, quantity, line_amount "
        f"FROM fact_order_line WHERE date_key BETWEEN {low} AND {high}"
    )
    return (
        spark.read.format("jdbc")
        .option("url", pg.jdbc_url(pg.analytics_db))
        .option("driver", "org.postgresql.Driver")
        .option("user", pg.user)
        .option("password", pg.password.get_secret_value())
        .option("query", query)
        .option("fetchsize", "10000")
        .load()
    )


def transform(facts: DataFrame) -> DataFrame:
    return facts.transform(t.transform_daily_sales)


def load(
    conn: psycopg.Connection[Any],
    batch: BatchSettings,
    aggregates: pa.Table,
    source_days: int,
    window: Window,
    started_at: datetime,
) -> LoadResult:
    began = time.perf_counter()
    low, high = window.bounds()
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('headwater.batch.daily_sales'))")
        frame = aggregates.to_pandas()
        dates = {r[0] for r in conn.execute("SELECT date_key FROM dim_date")}
        frame["_date_found"] = frame["date_key"].isin(dates)
        verdict = runner.validate(
            {"agg_daily_sales": frame},
            {"agg_daily_sales": suites.agg_daily_sales_suite(suites.Plausible(0, source_days))},
        )
        kind = "backfill" if window.backfill else "rebuild"
        report: Path = runner.write_report(verdict, batch.reports_dir, f"{JOB} {kind}")
        if not verdict.success:
            raise QualityFailed(report)
        cur.execute("DELETE FROM agg_daily_sales WHERE date_key BETWEEN %s AND %s", (low, high))
        rows = io.copy_arrow(cur, "agg_daily_sales", aggregates)
        run_id = io.record_run(
            conn,
            job=JOB,
            kind=kind,
            started_at=started_at,
            status="succeeded",
            window=(window.date_from, window.date_to),
            rows_loaded={"agg_daily_sales": rows},
            offsets={},
            quality="passed",
            report=report,
        )
    return LoadResult(run_id, {"agg_daily_sales": rows}, report, time.perf_counter() - began)


def run(
    settings: Settings, batch: BatchSettings, window: Window, spark: SparkSession | None = None
) -> LoadResult:
    from batch.spark import build_session

    started_at = datetime.now(UTC)
    io.ensure_database(settings)
    session = spark or build_session(settings, batch, f"headwater-{JOB}")
    try:
        with io.connect(settings) as conn:
            io.ensure_schema(conn)
            facts = extract(session, settings, conn, window).cache()
            source_days = facts.select("date_key").distinct().count()
            aggregates = io.to_arrow(transform(facts))
            facts.unpersist()
            return load(conn, batch, aggregates, source_days, window, started_at)
    except BaseException as exc:
        kind = "backfill" if window.backfill else "rebuild"
        record_failure(settings, JOB, kind, window, started_at, exc)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    return job_main(JOB, run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
