"""The `bench` command group: measured runs against the real stack; results under .headwater/bench/."""

from __future__ import annotations

import typer

app = typer.Typer(help="Benchmarks on the local stack.", no_args_is_help=True)


@app.command("freshness")
def freshness(
    ctx: typer.Context,
    rate: float = typer.Option(100.0, "--rate", help="Changes per second to commit."),
    duration: float = typer.Option(30.0, "--duration", help="Seconds to keep that rate."),
    find_max: bool = typer.Option(
        True, "--find-max/--no-find-max", help="Also ramp up to find the highest rate."
    ),
) -> None:
    """Commit-to-searchable latency of product changes, and the highest rate keeping p95 < 1 s."""
    from headwater.cli import settings_of
    from indexers.freshness import run_freshness

    run_freshness(settings_of(ctx), rate, duration, find_max)
