"""`headwater connectors ...`: validate, apply and operate the connectors declared in specs."""

from __future__ import annotations

import os

import typer
from confluent_kafka import KafkaException

from connectors.client import ConnectClient, ConnectError, last_error, lost_its_place, summary
from connectors.purge import PurgeError, holding, purge
from connectors.spec import ConnectorSpec, SpecError, load_specs
from connectors.topics import ensure_topics, planned_topics
from headwater.console import console, fail, print_json, print_table
from headwater.secrets import holds_clear_secret, searchable
from headwater.settings import Settings

app = typer.Typer(help="Declarative Kafka Connect connectors (one YAML file per connector).")

Names = typer.Argument(None, help="Spec names (file names without .yaml); default: all.")


def _settings(ctx: typer.Context) -> Settings:
    from headwater.console import settings_of

    return settings_of(ctx)


def _specs(settings: Settings, names: list[str] | None) -> list[ConnectorSpec]:
    env = {**settings.interpolation_env(), **os.environ}
    try:
        specs = load_specs(settings.connect.specs_dir, env, names, settings.connect_env())
    except SpecError as exc:
        fail(str(exc))
    if not specs:
        fail(f"no connector specs in {settings.connect.specs_dir}")
    return specs


def _validate_all(client: ConnectClient, specs: list[ConnectorSpec]) -> None:
    """Validate every spec with Connect itself; refuse them all if any field is bad."""
    bad = 0
    for spec in specs:
        errors = client.validate(spec)
        for error in errors:
            bad += 1
            console.print(
                f"[red]✗[/] {spec.path.name}: field [bold]{error.field}[/]: "
                + "; ".join(error.messages)
            )
        if not errors:
            console.print(f"[green]✓[/] {spec.path.name} is valid")
    if bad:
        fail(f"{bad} invalid field(s); nothing was changed", code=2)


@app.command()
def validate(ctx: typer.Context, names: list[str] | None = Names) -> None:
    """Check specs with Kafka Connect's own config validation; name each bad field."""
    settings = _settings(ctx)
    specs = _specs(settings, names)
    with ConnectClient(settings.connect.url) as client:
        try:
            _validate_all(client, specs)
        except ConnectError as exc:
            fail(str(exc))


@app.command()
def apply(
    ctx: typer.Context,
    names: list[str] | None = Names,
    wait: bool = typer.Option(True, help="Wait until the connector and its tasks are RUNNING."),
) -> None:
    """Validate, then create or update each connector (idempotent PUT) and wait until RUNNING."""
    settings = _settings(ctx)
    specs = _specs(settings, names)
    with ConnectClient(settings.connect.url) as client:
        try:
            _validate_all(client, specs)
            replaced: list[str] = []
            for spec in specs:
                _ensure_topics(settings, spec)
                live = client.config(spec.name) or {}
                replaced += [v for k, v in live.items() if holds_clear_secret(k, str(v))]
                client.put(spec)
                if _failed(client, spec.name):
                    # An unchanged config does not restart a failed connector; apply does.
                    client.restart(spec.name)
                if wait:
                    with console.status(f"waiting for {spec.name} to be RUNNING"):
                        status = client.wait_running(spec.name, settings.connect.apply_timeout_s)
                    console.print(f"[green]✓[/] {spec.name} applied: {summary(status)}")
                else:
                    console.print(f"[green]✓[/] {spec.name} applied")
            _purge_replaced(settings, client, specs[-1], replaced)
        except ConnectError as exc:
            fail(str(exc))


def _failed(client: ConnectClient, name: str) -> bool:
    """Whether the connector or a task is FAILED; a connector just created has no status yet."""
    try:
        return last_error(client.status(name)) is not None
    except ConnectError:
        return False


def _purge_replaced(
    settings: Settings, client: ConnectClient, spec: ConnectorSpec, replaced: list[str]
) -> None:
    """Drop secrets that configs held in clear (now, or before an earlier apply made them
    references) from Connect's configs topic, where compaction alone may keep them for days."""
    topic = settings.connect.configs_topic
    # Known secrets are redacted to their reference; a replaced value of unknown name, masked.
    # Too short a value is left out, as the secret scan does: it would match by chance.
    known = settings.secret_values()
    unknown = {f"?{i}": v for i, v in enumerate(replaced) if v not in known.values()}
    secrets = searchable(known | unknown)
    try:
        left = holding(settings.kafka, topic, secrets).records
    except KafkaException as exc:
        console.print(f"[yellow]![/] could not read {topic} to look for old secrets: {exc}")
        return
    if not left:
        return
    console.print(
        f"[yellow]![/] {left} record(s) of {topic} hold a secret in clear (configs from before "
        "secrets were references); purging them"
    )
    with console.status(f"purging secrets from {topic}") as status:
        try:
            took = purge(
                settings.kafka,
                topic,
                secrets,
                lambda: client.put(spec),
                on_wait=lambda n: status.update(f"purging {topic}: {n} record(s) left"),
            )
        except PurgeError as exc:
            fail(str(exc))
    console.print(f"[green]✓[/] secrets purged from {topic} in {took:.0f}s")


def _ensure_topics(settings: Settings, spec: ConnectorSpec) -> None:
    """Create the change topics before the connector runs (see connectors.topics)."""
    planned = planned_topics(spec)
    try:
        created = ensure_topics(settings.kafka, planned)
    except ConnectionError as exc:
        fail(f"{spec.name}: {exc}")
    if planned:
        console.print(
            f"[green]✓[/] {spec.name} topics: {len(created)} created, "
            f"{len(planned) - len(created)} already there"
        )


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


@app.command("list")
def list_(ctx: typer.Context, json: bool = typer.Option(False, "--json")) -> None:
    """Connectors known to Kafka Connect, and the specs on disk."""
    settings = _settings(ctx)
    specs = {s.name for s in _specs(settings, None)}
    with ConnectClient(settings.connect.url) as client:
        try:
            deployed = client.statuses()
        except ConnectError as exc:
            fail(str(exc))
    rows = [
        {
            "name": name,
            "spec": name in specs,
            "deployed": name in deployed,
            "state": deployed.get(name, {}).get("connector", {}).get("state", "-"),
        }
        for name in sorted(specs | set(deployed))
    ]
    if json:
        print_json(rows)
        return
    print_table(
        "Connectors",
        ["name", "spec file", "deployed", "state"],
        [[r["name"], _yes(r["spec"]), _yes(r["deployed"]), r["state"]] for r in rows],
    )


@app.command()
def status(
    ctx: typer.Context,
    names: list[str] | None = Names,
    json: bool = typer.Option(False, "--json"),
) -> None:
    """State of each connector and its tasks, with the last error."""
    settings = _settings(ctx)
    with ConnectClient(settings.connect.url) as client:
        try:
            statuses = client.statuses()
        except ConnectError as exc:
            fail(str(exc))
    if names:
        unknown = [n for n in names if n not in statuses]
        if unknown:
            fail(f"not deployed: {', '.join(unknown)}")
        statuses = {n: statuses[n] for n in names}
    if json:
        print_json(statuses)
    else:
        print_table(
            "Connector status",
            ["name", "state", "worker", "tasks", "last error"],
            [
                [
                    name,
                    s.get("connector", {}).get("state"),
                    s.get("connector", {}).get("worker_id"),
                    ", ".join(f"{t['id']}:{t['state']}" for t in s.get("tasks", [])) or "none",
                    last_error(s) or "",
                ]
                for name, s in sorted(statuses.items())
            ],
        )
        for name, s in sorted(statuses.items()):
            if lost_its_place(last_error(s)):
                console.print(
                    f"[red]{name} missed changes[/]: its replication slot was dropped, recreated "
                    f"or invalidated. `headwater connectors resnapshot {name}` takes a new snapshot"
                )
    if any(last_error(s) for s in statuses.values()):
        raise typer.Exit(1)


def _control(ctx: typer.Context, name: str, action: str) -> None:
    settings = _settings(ctx)
    with ConnectClient(settings.connect.url) as client:
        try:
            getattr(client, action)(name)
        except ConnectError as exc:
            fail(str(exc))
    console.print(f"{action}: {name}")


@app.command()
def pause(ctx: typer.Context, name: str) -> None:
    """Pause a connector and its tasks."""
    _control(ctx, name, "pause")


@app.command()
def resume(ctx: typer.Context, name: str) -> None:
    """Resume a paused connector."""
    _control(ctx, name, "resume")


@app.command()
def restart(ctx: typer.Context, name: str) -> None:
    """Restart a connector and its tasks."""
    _control(ctx, name, "restart")


@app.command()
def delete(ctx: typer.Context, name: str) -> None:
    """Delete a connector from Kafka Connect (the spec file stays)."""
    _control(ctx, name, "delete")
