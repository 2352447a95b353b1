"""`headwater batch`: install the Spark jars, run a job, show the last runs, start Airflow."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
from datetime import date
from typing import Any

import typer

from batch.settings import BatchSettings
from headwater.console import console, fail, print_json, print_table

app = typer.Typer(
    help="Scheduled PySpark loads into the analytics warehouse.", no_args_is_help=True
)

JOBS = {"warehouse": "batch.jobs.warehouse", "daily_sales": "batch.jobs.daily_sales"}


def _settings(ctx: typer.Context) -> Any:
    from headwater.console import settings_of

    return settings_of(ctx)


@app.command()
def install(ctx: typer.Context) -> None:
    """Fetch Spark's Kafka source and the PostgreSQL driver from Maven Central (idempotent)."""
    from batch.spark import install_jars, jar_paths

    target, downloaded = install_jars(_settings(ctx), BatchSettings())
    verb = "downloaded" if downloaded else "already present"
    console.print(f"spark jars {verb} in {target}: {len(jar_paths(target))} jars")


def _mirrors(settings: Any) -> list[str]:
    from headwater.pipelines.declarations import DeclarationError, load

    try:
        return sorted(load(settings.pipelines.dir).mirrors)
    except DeclarationError as exc:
        fail(f"the pipeline declarations cannot be used:\n{exc}")


@app.command("run")
def run_job(
    ctx: typer.Context,
    job: str = typer.Argument(
        ..., help=f"One of: {', '.join(JOBS)}, or a mirror declared in pipelines/mirrors/."
    ),
    date_from: str | None = typer.Option(None, "--from", help="Backfill from this day (ISO)."),
    date_to: str | None = typer.Option(None, "--to", help="Backfill up to this day (ISO)."),
    replay: bool = typer.Option(
        False, "--replay", help="A mirror: read its topic from the beginning."
    ),
) -> None:
    """Run one job or mirror now; a failed quality suite exits 2 and loads nothing."""
    settings = _settings(ctx)
    mirrors = [] if job in JOBS else _mirrors(settings)
    if job not in JOBS and job not in mirrors:
        known = ", ".join([*JOBS, *mirrors])
        fail(f"unknown job {job!r}; one of: {known}")
    from batch.jobs.warehouse import QualityFailed, Window

    try:
        window = Window(
            date.fromisoformat(date_from) if date_from else None,
            date.fromisoformat(date_to) if date_to else None,
        )
    except ValueError as exc:
        fail(f"--from/--to must be ISO dates: {exc}")
    if job in mirrors and window.backfill:
        fail("a mirror has no date range: it loads the table as it is (--replay rereads it)")
    try:
        if job in mirrors:
            from batch.jobs import mirror

            result = mirror.run(settings, BatchSettings(), job, replay=replay)
        else:
            module = importlib.import_module(JOBS[job])
            result = module.run(settings, BatchSettings(), window)
    except QualityFailed as exc:
        fail(f"{job}: data quality FAILED, nothing loaded; report: {exc.report}", code=2)
    print_table(
        f"{job}: run {result.run_id} ({result.seconds:.1f}s load)",
        ["table", "rows staged"],
        sorted(result.rows.items()),
    )
    console.print(f"quality report: {result.report}")


@app.command()
def status(
    ctx: typer.Context,
    limit: int = typer.Option(10, help="How many runs, newest first."),
    job: str | None = typer.Option(
        None, "--job", help="Only this job's runs (a mirror's are `mirror:NAME`)."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON document instead of a table."),
) -> None:
    """The last runs of the jobs and mirrors: status, rows loaded, offsets reached and the quality
    verdict."""
    from batch import io

    settings = _settings(ctx)
    try:
        with io.connect(settings) as conn:
            offsets = conn.execute("SELECT to_regclass('batch_runs') IS NOT NULL").fetchone()
            runs = io.recent_runs(conn, limit, job) if offsets and offsets[0] else []
    except Exception as exc:
        fail(f"cannot read the analytics database: {exc}")
    if as_json:
        print_json(runs)
        return
    print_table(
        "batch runs",
        ["run", "job", "kind", "status", "finished", "rows", "offsets", "quality"],
        [
            (
                r["run_id"],
                r["job"],
                r["kind"],
                r["status"],
                f"{r['finished_at']:%Y-%m-%d %H:%M:%S}",
                sum(r["rows_loaded"].values()),
                json.dumps(r["offsets"], separators=(",", ":"))[:60],
                r["quality"],
            )
            for r in runs
        ],
    )


@app.command()
def schedule(
    ctx: typer.Context,
    port: int = typer.Option(None, help="Web server port (default HW_BATCH_AIRFLOW_PORT)."),
) -> None:
    """Start Airflow standalone (from .venv-airflow) against the DAGs in dags/."""
    from headwater.settings import PROJECT_ROOT

    batch = BatchSettings()
    airflow = batch.airflow_venv / "bin" / "airflow"
    if not airflow.exists():
        fail(f"{airflow} is missing; run batch/airflow/setup.sh")
    settings = _settings(ctx)
    home = settings.stack.data_dir / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__API__PORT": str(port or batch.airflow_port),
        "PYTHONPATH": str(PROJECT_ROOT),
        # The mirrors' DAGs are generated from the declarations the settings point at.
        "HW_PIPELINES_DIR": str(settings.pipelines.dir),
    }
    console.print(f"airflow standalone, home {home}, DAGs from {PROJECT_ROOT / 'dags'}")
    raise typer.Exit(subprocess.call([str(airflow), "standalone"], env=env))
