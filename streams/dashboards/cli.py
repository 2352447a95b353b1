"""`headwater dashboards`: list the dashboards and show one, once or live, from the API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table

from api.settings import ApiSettings
from headwater.console import console, fail, print_json, print_table
from streams.dashboards.views import stream_snapshots

app = typer.Typer(help="Real-time dashboards (served by the API).", no_args_is_help=True)


def _get(path: str) -> Any:
    url = ApiSettings().url + path
    try:
        response = httpx.get(url, timeout=10.0)
    except httpx.HTTPError as exc:
        fail(f"cannot reach the API at {url}: {exc} (is `headwater run` up?)")
    if response.status_code == 404:
        fail(response.json().get("detail", "not found"))
    response.raise_for_status()
    return response.json()


def _time(ms: int | None) -> str:
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _fmt(value: Any, unit: str) -> str:
    if value is None:
        return "-"
    return f"${value:,.2f}" if unit == "money" else f"{value:,.0f}"


def _panel_text(panel: dict[str, Any]) -> str:
    unit = panel["unit"]
    if panel["type"] in ("stat", "series"):
        text = _fmt(panel.get("value"), unit)
        series = panel.get("series") or []
        if series:
            text += "   last: " + " ".join(_fmt(v, unit) for _, v in series[-8:])
        return text
    if panel["type"] == "top":
        items = panel.get("items") or []
        return "\n".join(f"{i['label']}: {_fmt(i['value'], unit)}" for i in items) or "-"
    stages = panel.get("stages") or []
    return "\n".join(
        f"{s['label']}: {s['value']:,.0f}"
        + (f" ({100 * s['from_first']:.1f}%)" if s.get("from_first") is not None else "")
        for s in stages
    )


def render(snapshot: dict[str, Any]) -> Group:
    table = Table(title=snapshot["title"], title_justify="left", show_lines=True)
    table.add_column("panel")
    table.add_column("value")
    for panel in snapshot["panels"]:
        table.add_row(panel["title"], _panel_text(panel))
    footer = (
        f"last event {_time(snapshot.get('last_event_ms'))} · {snapshot.get('events', 0):,} "
        f"events · {snapshot.get('dropped_late', 0):,} late dropped"
    )
    return Group(table, footer)


def _stream(name: str) -> Iterator[dict[str, Any]]:
    """Snapshots from the SSE stream; reconnects after a dropped connection."""
    url = f"{ApiSettings().url}/dashboards/{name}/stream"
    while True:
        try:
            with httpx.stream("GET", url, timeout=httpx.Timeout(10.0, read=60.0)) as response:
                if response.status_code == 404:
                    fail(f"no dashboard {name!r}")
                yield from stream_snapshots(response.iter_lines())
        except httpx.HTTPError as exc:
            console.print(f"[yellow]stream interrupted ({exc}); reconnecting[/]")


@app.command("list")
def list_dashboards(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The dashboards the API serves."""
    dashboards = _get("/dashboards")
    if as_json:
        print_json(dashboards)
        return
    print_table(
        "Dashboards",
        ["name", "title", "panels"],
        [(d["name"], d["title"], len(d["panels"])) for d in dashboards],
    )


@app.command("show")
def show(
    name: str = typer.Argument(..., help="Dashboard name (see `dashboards list`)."),
    watch: bool = typer.Option(False, "--watch", help="Keep updating from the live stream."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (one document per update)."),
) -> None:
    """A dashboard's current values and recent series."""
    if not watch:
        snapshot = _get(f"/dashboards/{name}")
        if as_json:
            print_json(snapshot)
        else:
            console.print(render(snapshot))
        return
    if as_json:
        for snapshot in _stream(name):
            print(json.dumps(snapshot), flush=True)
        return
    with Live(console=console, auto_refresh=False) as live:
        for snapshot in _stream(name):
            live.update(render(snapshot), refresh=True)
