"""`headwater stack`: install, up, down, status and logs of the local, Docker-free stack."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer

from headwater.console import console, err_console, fail, print_json, print_table
from headwater.stack.layout import SERVICE_NAMES

if TYPE_CHECKING:
    from headwater.stack.manager import Stack

app = typer.Typer(
    help="The local stack without Docker: PostgreSQL, Kafka, Kafka Connect with Debezium, "
    "Elasticsearch, bound to 127.0.0.1 with state under HW_STACK_DATA_DIR.",
    no_args_is_help=True,
)


@contextmanager
def _stack_errors() -> Iterator[None]:
    """Turn a StackError into a clear message (and a failed service's log) and exit 1."""
    from headwater.stack.manager import ServiceFailed
    from headwater.stack.procs import tail
    from headwater.stack.system import StackError

    try:
        yield
    except ServiceFailed as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        err_console.print(f"log: {exc.log}")
        lines = tail(exc.log, 20)
        if lines:
            err_console.rule(f"last {len(lines)} lines of {exc.log.name}")
            err_console.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except StackError as exc:
        fail(str(exc))


def _stack(ctx: typer.Context) -> Stack:
    from headwater.console import settings_of
    from headwater.stack.manager import Stack

    return Stack(settings_of(ctx))


@app.command()
def install(ctx: typer.Context) -> None:
    """Install everything beyond pip: PostgreSQL, the service user, Kafka, Debezium, ES."""
    from headwater.console import settings_of
    from headwater.stack.install import run_install

    start = time.monotonic()
    with _stack_errors():
        results = run_install(settings_of(ctx))
    print_table(
        "headwater stack install",
        ["component", "outcome", "where", "note"],
        [(r.component, r.outcome, r.where, r.note) for r in results],
    )
    fetched = [r.component for r in results if r.fetched]
    console.print(
        f"{'fetched: ' + ', '.join(fetched) if fetched else 'nothing downloaded: all cached'} "
        f"({time.monotonic() - start:.1f}s)"
    )


@app.command()
def up(ctx: typer.Context) -> None:
    """Start PostgreSQL, Kafka, Connect and Elasticsearch; wait until all are healthy."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from headwater.stack import manager

    start = time.monotonic()
    with _stack_errors():
        stack = _stack(ctx)
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            tasks = {n: progress.add_task(f"{n}: waiting", total=1) for n in SERVICE_NAMES}

            def show(name: str, what: str) -> None:
                done = what.startswith("healthy")
                style = "[green]" if done else ""
                progress.update(
                    tasks[name], description=f"{name}: {style}{what}", completed=1 if done else 0
                )

            report = manager.up(stack, show)
    took = ", ".join(f"{n} {s:.0f}s" for n, s in report.seconds.items())
    console.print(
        f"[green]stack healthy[/] in {time.monotonic() - start:.1f}s"
        + (f" (started: {took})" if report.started else " (everything was already running)")
    )
    console.print(f"data and logs in {stack.layout.data_dir}")


@app.command()
def down(ctx: typer.Context) -> None:
    """Stop every service (Connect, Kafka, Elasticsearch, PostgreSQL); leave no port open."""
    from headwater.stack import manager

    with _stack_errors():
        stack = _stack(ctx)
        with console.status("stopping…") as spinner:

            def show(name: str, what: str) -> None:
                spinner.update(f"{name}: {what}")
                if what != "stopping":
                    console.print(f"{name}: {what}")

            busy = manager.down(stack, show)
    if busy:
        fail(f"ports still listening after down: {', '.join(map(str, busy))}")
    console.print("[green]stack stopped[/]; no port left listening")


@app.command()
def status(
    ctx: typer.Context,
    json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Each service's state, pid, port, running version and memory; exit 1 unless all healthy."""
    from headwater.stack.services import all_serving

    with _stack_errors():
        statuses = _stack(ctx).status()
    if json:
        print_json([s.as_dict() for s in statuses])
    else:
        print_table(
            "headwater stack",
            ["service", "state", "pid", "port", "version", "RSS MiB", "detail"],
            [
                (
                    s.service,
                    s.state,
                    s.pid,
                    s.port,
                    s.version,
                    s.rss_mib,
                    s.detail if s.state in ("unhealthy", "external") else "",
                )
                for s in statuses
            ],
        )
    raise typer.Exit(0 if all_serving(statuses) else 1)


@app.command()
def logs(
    ctx: typer.Context,
    name: str = typer.Argument(..., help=f"One of: {', '.join(SERVICE_NAMES)}."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
    lines: int = typer.Option(50, "--lines", "-n", min=0, help="How many last lines to print."),
) -> None:
    """Print a service's log (data_dir/logs/NAME.log)."""
    from headwater.console import settings_of
    from headwater.stack.layout import StackLayout
    from headwater.stack.procs import tail

    if name not in SERVICE_NAMES:
        fail(f"unknown service {name!r}; valid names: {', '.join(SERVICE_NAMES)}")
    path = StackLayout.of(settings_of(ctx).stack).log_file(name)
    if not path.exists():
        fail(f"no log yet at {path}; has `headwater stack up` run?")
    for line in tail(path, lines):
        print(line)
    if not follow:
        return
    with path.open("rb") as fh:
        fh.seek(0, 2)
        try:
            while True:
                chunk = fh.read()
                if chunk:
                    print(chunk.decode(errors="replace"), end="", flush=True)
                else:
                    time.sleep(0.5)
        except KeyboardInterrupt:
            return
