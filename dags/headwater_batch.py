"""Airflow DAGs of the batch loads: schedule, retries and a call into `batch.jobs`, nothing else.

Airflow lives in its own venv (.venv-airflow); each task runs the job with the project's venv,
so the DAGs import nothing of the project and do no I/O when parsed.
"""

from __future__ import annotations

import os
import shlex
from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, Param

ROOT = Path(__file__).resolve().parent.parent
PYTHON = os.environ.get("HW_BATCH_PYTHON", str(ROOT / ".venv" / "bin" / "python"))
START = datetime(2026, 1, 1)

DEFAULT_ARGS = {
    "owner": "analytics",
    "retries": 3,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=15),
    "execution_timeout": timedelta(hours=1),
}


def job(module: str, *args: str) -> str:
    command = [PYTHON, "-m", f"batch.jobs.{module}", *args]
    return f"cd {shlex.quote(str(ROOT))} && " + " ".join(command)


with DAG(
    dag_id="warehouse_hourly",
    description="Incremental load of the CDC topics into the star schema.",
    schedule="@hourly",
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["headwater", "batch", "warehouse"],
):
    BashOperator(task_id="load_warehouse", bash_command=job("warehouse"))

with DAG(
    dag_id="daily_sales",
    description="Rebuild agg_daily_sales after the last hourly load of the day.",
    schedule="15 0 * * *",
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["headwater", "batch", "aggregates"],
):
    load = BashOperator(task_id="load_warehouse", bash_command=job("warehouse"))
    aggregate = BashOperator(task_id="aggregate_daily_sales", bash_command=job("daily_sales"))
    load >> aggregate

with DAG(
    dag_id="warehouse_backfill",
    description="Replay the topics and rewrite the facts and aggregates of a date range.",
    # Triggered by hand with a date range; never on a timer.
    schedule=None,
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["headwater", "batch", "backfill", "manual"],
    params={
        "date_from": Param(type="string", format="date", description="First day (ISO)."),
        "date_to": Param(type="string", format="date", description="Last day (ISO)."),
    },
):
    window = "--from {{ params.date_from }} --to {{ params.date_to }}"
    facts = BashOperator(task_id="backfill_facts", bash_command=job("warehouse") + " " + window)
    sales = BashOperator(
        task_id="backfill_daily_sales", bash_command=job("daily_sales") + " " + window
    )
    facts >> sales
