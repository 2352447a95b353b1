"""The `bench` command group: measured runs on the real stack, saved under .headwater/bench/."""

from __future__ import annotations

import typer

from headwater.console import save_result

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
    from headwater.console import settings_of
    from streams.search.bench import run_freshness

    run_freshness(settings_of(ctx), rate, duration, find_max)


@app.command("dashboards")
def dashboards(
    ctx: typer.Context,
    events: int = typer.Option(200_000, "--events", help="Events one worker aggregates."),
    probes: int = typer.Option(200, "--probes", help="Single orders timed end to end."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Event-to-live-stream latency (p50/p95/p99) and one dashboards worker's events/s."""
    from headwater.console import console, err_console, print_json, print_table, settings_of
    from streams.dashboards.bench import report_lines, run

    settings = settings_of(ctx)
    bench_dir = settings.stack.data_dir / "bench"
    result = run(settings.kafka, bench_dir / "dashboards", events, probes, err_console.print)
    path = save_result(bench_dir, "dashboards", result)
    if as_json:
        print_json(result)
    else:
        print_table("Dashboards benchmark", ["measure", "value"], report_lines(result))
        console.print(f"saved {path}")


@app.command("batch")
def batch(
    ctx: typer.Context,
    lines: int = typer.Option(1_000_000, "--lines", help="Order lines to load."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Warehouse load rows/s end to end, Spark start-up, and COPY of the same rows as reference."""
    from batch.bench import bench_batch_command
    from headwater.console import settings_of

    bench_batch_command(settings_of(ctx), lines, as_json)
