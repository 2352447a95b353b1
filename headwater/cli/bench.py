"""The `bench` command group: measured runs on the real stack, saved under .headwater/bench/."""

from __future__ import annotations

import typer

from headwater.console import save_result

app = typer.Typer(help="Benchmarks on the local stack.", no_args_is_help=True)


@app.command("freshness")
def freshness(
    ctx: typer.Context,
    rate: float = typer.Option(1000.0, "--rate", help="Changes per second the sessions commit."),
    duration: float = typer.Option(30.0, "--duration", help="Seconds of the main step."),
    warmup: float = typer.Option(
        10.0, "--warmup", help="Seconds of load at --rate before the main step, not measured."
    ),
    sessions: int = typer.Option(8, "--sessions", min=1, help="Concurrent writer sessions."),
    txn_rows: int = typer.Option(1, "--txn-rows", min=1, help="Changes per transaction."),
    hot_rows: int = typer.Option(20, "--hot-rows", min=0, help="Rows in the hot set."),
    hot_share: float = typer.Option(
        0.5, "--hot-share", min=0.0, max=1.0, help="Share of row changes on the hot set."
    ),
    rows: int = typer.Option(2000, "--rows", min=1, help="Bench products created beforehand."),
    find_max: bool = typer.Option(
        True, "--find-max/--no-find-max", help="Then ramp up to the first rate not sustained."
    ),
    profile: bool = typer.Option(
        False, "--profile", help="Sample the stream worker during the main step (py-spy)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Commit-to-searchable latency of an application-like load (small transactions from
    concurrent sessions, hot rows, inserts, deletes, reviews), and the highest rate sustained."""
    from headwater.console import console, err_console, fail, print_json, settings_of
    from streams.search.bench import print_report, run_freshness
    from streams.search.freshness import Load

    load = Load(rate, duration, sessions, txn_rows, hot_rows, hot_share, rows, warmup)
    try:
        load.check()
    except ValueError as exc:
        fail(str(exc))
    settings = settings_of(ctx)
    result = run_freshness(settings, load, find_max, err_console.print, profile)
    path = save_result(settings.stack.data_dir / "bench", "freshness", result)
    if as_json:
        print_json(result)
    else:
        print_report(result)
        console.print(f"saved {path}")


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


@app.command("search")
def search(
    ctx: typer.Context,
    index: str = typer.Option("products", "--index", help="The declared index to search."),
    clients: list[int] = typer.Option(
        [1, 2, 4, 8, 16], "--clients", min=1, help="Concurrency steps (repeat the option)."
    ),
    duration: float = typer.Option(10.0, "--duration", help="Measured seconds per step."),
    warmup: float = typer.Option(2.0, "--warmup", help="Seconds per step before measuring."),
    processes: int = typer.Option(
        1, "--processes", min=1, help="uvicorn worker processes of the API the bench starts."
    ),
    api_url: str | None = typer.Option(
        None, "--api-url", help="Benchmark this running API instead of starting one."
    ),
    profile: bool = typer.Option(
        False, "--profile", help="Sample the API during its 8-client step (py-spy)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Search requests/s and p50/p95/p99 through the API at 1 to 16 concurrent clients, and
    the same queries sent to Elasticsearch directly in the same run (the ceiling)."""
    from api.bench import COLUMNS, report_rows, run
    from api.settings import ApiSettings
    from headwater.console import console, err_console, fail, print_json, print_table, settings_of

    # For --api-url: the key its clients send (HW_API_KEY), as `headwater run` prints it.
    key = ApiSettings().key

    settings = settings_of(ctx)
    bench_dir = settings.stack.data_dir / "bench"
    try:
        result = run(
            settings, index, clients, duration, warmup, processes, api_url, bench_dir,
            err_console.print, profile, key.get_secret_value() if key else None,
        )  # fmt: skip
    except (ValueError, RuntimeError) as exc:
        fail(str(exc))
    path = save_result(bench_dir, "search", result)
    if as_json:
        print_json(result)
    else:
        print_table(
            f"Search benchmark: {result['index']} ({result['documents']:,} documents), "
            f"{result['queries']} queries, {result['duration_s']:g} s per step, via "
            f"{result['api']}",
            COLUMNS,
            report_rows(result),
        )
        goal = result["goal"]
        if goal["measured"]:
            console.print(
                f"goal at {goal['clients']} clients: p95 {goal['p95_ms']:.1f} ms "
                f"(<= {goal['p95_goal_ms']:g}), {goal['ratio']:.0%} of Elasticsearch "
                f"(>= {goal['ratio_goal']:.0%}): {'met' if goal['met'] else 'not met'}"
            )
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
