"""`headwater dashboards`: list the dashboards and show one, once or live, from the API; and
`headwater verify dashboards`: their windows against the source tables."""

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
from headwater.console import console, fail, print_json, print_table, settings_of
from streams.dashboards import logic
from streams.dashboards.views import stream_snapshots

app = typer.Typer(help="Real-time dashboards (served by the API).", no_args_is_help=True)


API = "/api/v1"


def _headers(api: ApiSettings) -> dict[str, str]:
    """The key of HW_API_KEY, when set (`headwater run` prints one)."""
    return {"Authorization": f"Bearer {api.key.get_secret_value()}"} if api.key else {}


def _get(path: str) -> Any:
    """The `data` of the API's answer at `path` (under /api/v1); its error's detail on failure."""
    api = ApiSettings()
    url = f"{api.url}{API}{path}"
    try:
        response = httpx.get(url, headers=_headers(api), timeout=10.0)
    except httpx.HTTPError as exc:
        fail(f"cannot reach the API at {url}: {exc} (is `headwater run` up?)")
    if response.is_error:
        try:
            details = [e["detail"] for e in response.json()["errors"]]
        except (ValueError, KeyError, TypeError):
            details = [f"{url} answered {response.status_code}"]
        fail("; ".join(details))
    return response.json()["data"]


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
    api = ApiSettings()
    url = f"{api.url}{API}/dashboards/{name}/events"
    while True:
        try:
            with httpx.stream(
                "GET", url, headers=_headers(api), timeout=httpx.Timeout(10.0, read=60.0)
            ) as response:
                if response.status_code == 404:
                    fail(f"no dashboard {name!r}")
                if response.status_code in (401, 403):
                    fail(f"the API refused the stream ({response.status_code}): set HW_API_KEY")
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


def _instant(text: str) -> float:
    """Epoch seconds of an ISO-8601 time with offset, or of a number of epoch seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        fail(f"--since: {text!r} is neither epoch seconds nor an ISO-8601 time")
    if parsed.tzinfo is None:
        fail(f"--since: {text!r} has no time zone")
    return parsed.timestamp()


def verify_dashboards(
    ctx: typer.Context,
    dashboard: list[str] = typer.Option(
        [],
        "--dashboard",
        "-d",
        help="A dashboard (see `dashboards list`); repeatable. Default: all.",
    ),
    window: list[str] = typer.Option(
        [], "--window", "-w", help="Only windows of this size (1m, 5m, 15m); repeatable."
    ),
    since: str | None = typer.Option(
        None,
        "--since",
        help="Only windows beginning at or after this (ISO-8601 or epoch seconds): the start "
        "of a worker that began at the end of the topics.",
    ),
    settle: float = typer.Option(
        10.0,
        "--settle",
        min=0,
        help="Seconds a difference must hold still to count (windows in flight keep moving).",
    ),
    updates_topic: str | None = typer.Option(
        None, "--updates-topic", help="The topic the worker publishes to. Default: the setting."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Recompute the dashboards' windows from the source tables and compare them with what the
    workers published: equal, differs, missing, extra, and in flight."""
    from streams.dashboards.reconcile import verify
    from streams.dashboards.settings import DashboardSettings
    from streams.dashboards.verify import dashboard_rows, window_label
    from streams.dashboards.views import load_dashboards

    settings = settings_of(ctx)
    ds = DashboardSettings()
    if updates_topic:
        ds = ds.model_copy(update={"updates_topic": updates_topic})
    known = load_dashboards(ds.definitions_dir)
    unknown = [name for name in dashboard if name not in known]
    if unknown:
        fail(f"no dashboard {', '.join(unknown)}; known: {', '.join(known)}")
    chosen = {name: known[name] for name in dashboard} if dashboard else known
    labels = {window_label(spec) for spec in logic.WINDOWS}
    odd = [w for w in window if w not in labels]
    if odd:
        fail(f"no window {', '.join(odd)}; the dashboards have {', '.join(sorted(labels))}")
    cells = set().union(*(d.cells() for d in chosen.values()))
    try:
        report = verify(
            settings,
            ds,
            since=_instant(since) if since is not None else None,
            windows=window or None,
            cells=cells,
            settle_s=settle,
        )
    except (LookupError, TimeoutError) as exc:
        fail(str(exc))
    specs = [s for s in logic.WINDOWS if not window or window_label(s) in window]
    rows = dashboard_rows(report, chosen, specs)
    if as_json:
        print_json(
            {
                "ok": report.ok,
                "settled": report.settled,
                "updates_topic": ds.updates_topic,
                "windows_from": report.lower_s,
                "dropped_late": report.dropped,
                "dashboards": rows,
                "differences": [c.to_json() for c in report.differences],
                "in_flight": [c.to_json() for c in report.in_flight],
            }
        )
    else:
        _print_verification(report, rows, ds.updates_topic)
    if not report.ok:
        raise typer.Exit(1)


def _print_verification(report: Any, rows: list[dict[str, Any]], topic: str) -> None:
    print_table(
        f"dashboards ({topic}) vs source, windows from {_time(report.lower_s * 1000)}",
        ["dashboard", "window", "metric", "windows", "equal", "differs", "missing", "extra",
         "moving", "ok"],
        [
            [r["dashboard"], r["window"], r["metric"], r["windows"], r["equal"], r["differs"],
             r["missing"], r["extra"], r["in_flight"],
             "yes" if r["differs"] == r["missing"] == r["extra"] == 0 else "NO"]
            for r in rows
        ],
    )  # fmt: skip
    for cell in report.differences[:50]:
        c = cell.to_json()
        member = f" [{c['member']}]" if c["member"] is not None else ""
        late = " (maybe dropped as late)" if c.get("maybe_late") else ""
        console.print(
            f"{c['table']} {c['metric']}{member} {_time(c['window_start'] * 1000)}: "
            f"{c['status']}, source {c['source']}, dashboard {c['dashboard']}{late}"
        )
    if len(report.differences) > 50:
        console.print(f"... and {len(report.differences) - 50} more")
    dropped = ", ".join(f"{stream} {n}" for stream, n in sorted(report.dropped.items()) if n)
    console.print(f"late events dropped by the worker: {dropped or 'none'}")
    if report.in_flight:
        console.print(
            f"{len(report.in_flight)} cells were still changing when the check ended (in flight, "
            "not wrong): run it again when writes are quieter"
        )
