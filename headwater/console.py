"""What every command shares: the settings the root built, a rich console, tables, JSON and
fatal errors. Command groups take their settings from here, never from the root command."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from headwater.settings import Settings

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def print_json(data: Any) -> None:
    # Plain print so that machines get exactly one JSON document, without rich markup.
    print(json.dumps(data, indent=2, default=str))


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)


def settings_of(ctx: typer.Context) -> Settings:
    """The settings the `headwater` root command built once, for any of its sub-commands."""
    obj = ctx.find_root().obj
    if not isinstance(obj, Settings):
        raise RuntimeError("settings are built by the headwater root command")
    return obj


def save_result(directory: Path, kind: str, result: Any) -> Path:
    """Write one benchmark's result as `directory/KIND-<UTC time>.json`; return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{kind}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    return path
