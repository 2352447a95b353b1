"""Commands of the stream workers: `worker`."""

from __future__ import annotations

import typer


def worker(
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Worker processes."),
    loglevel: str = typer.Option("INFO", "--loglevel", help="DEBUG, INFO, WARNING or ERROR."),
) -> None:
    """Start the stream workers in the foreground (Ctrl-C stops them)."""
    from streams import worker as runner

    if workers == 1:
        runner.run(0, loglevel)
    else:
        raise typer.Exit(runner.run_many(workers, loglevel))
