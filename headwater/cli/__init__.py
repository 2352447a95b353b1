"""The `headwater` command: one entry point, a sub-command group per capability."""

from __future__ import annotations

import typer
from pydantic import ValidationError

from headwater.console import fail
from headwater.settings import Settings

app = typer.Typer(
    name="headwater",
    help="Headwater: PostgreSQL changes, captured by Debezium into Kafka, kept fresh in "
    "dashboards, a context store and search indexes; loaded into an analytics warehouse.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)


@app.callback()
def _root(ctx: typer.Context) -> None:
    """Load settings once; every command receives them through the context."""
    if ctx.resilient_parsing:
        return
    try:
        ctx.obj = Settings.load()
    except ValidationError as exc:
        missing = ", ".join(
            "HW_" + "_".join(str(p).upper() for p in err["loc"]) for err in exc.errors()
        )
        fail(
            f"settings are incomplete or invalid ({missing}): {exc.errors()[0]['msg']}. "
            "Set them in the environment or in .env (see .env.example)."
        )


def _register() -> None:
    # Imported here so that `headwater --help` stays fast and each group owns its module.
    from batch.cli import app as batch_app
    from connectors.cli import app as connectors_app
    from headwater.cli.bench import app as bench_app
    from headwater.cli.chaos import chaos
    from headwater.cli.db import app as db_app
    from headwater.cli.keys import app as keys_app
    from headwater.cli.pipelines import app as pipelines_app
    from headwater.cli.recover import resnapshot
    from headwater.cli.run import run, stop
    from headwater.cli.secrets import app as secrets_app
    from headwater.cli.status import status
    from headwater.cli.workload import generate
    from headwater.stack.cli import app as stack_app
    from indexers.cli import indexers_app, search, verify_app
    from streams.cli import worker
    from streams.dashboards.cli import app as dashboards_app
    from streams.dashboards.cli import verify_dashboards
    from streams.deadletters.cli import app as dlq_app

    app.add_typer(stack_app, name="stack")
    connectors_app.command("resnapshot")(resnapshot)
    app.add_typer(connectors_app, name="connectors")
    app.add_typer(db_app, name="db")
    app.add_typer(keys_app, name="api-keys")
    app.command("generate")(generate)
    app.command("run")(run)
    app.command("stop")(stop)
    app.command("status")(status)
    app.command("worker")(worker)
    app.command("search")(search)
    verify_app.command("dashboards")(verify_dashboards)
    app.add_typer(verify_app, name="verify")
    app.add_typer(indexers_app, name="indexers")
    app.add_typer(pipelines_app, name="pipelines")
    app.add_typer(bench_app, name="bench")
    app.command("chaos")(chaos)
    app.add_typer(batch_app, name="batch")
    app.add_typer(dashboards_app, name="dashboards")
    app.add_typer(secrets_app, name="secrets")
    app.add_typer(dlq_app, name="dlq")


def main() -> None:
    _register()
    app()
