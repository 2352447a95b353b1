"""`headwater connectors resnapshot`: bring a source back after its place in the WAL was lost,
with the deletes its new snapshot cannot carry, and rebuild the search indexes it feeds."""

from __future__ import annotations

import typer

from headwater.console import console, fail, settings_of


def resnapshot(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The source connector."),
    reindex: bool = typer.Option(
        True, help="Rebuild the search indexes fed by the connector once it streams again."
    ),
) -> None:
    """Take a new snapshot with connector NAME (after its replication slot was dropped,
    recreated or invalidated: Debezium fails rather than skip what it missed), then rebuild
    the search indexes it feeds."""
    from connectors.client import ConnectClient, ConnectError
    from connectors.resnapshot import resnapshot as start_over
    from indexers.cli import declared, run_reindex

    settings = settings_of(ctx)
    fed = [index for index in declared(settings).values() if index.binding.connector == name]
    with ConnectClient(settings.connect.url) as client:
        try:
            done = start_over(
                client,
                settings.postgres,
                settings.kafka,
                name,
                settings.connect.apply_timeout_s,
                console.print,
            )
        except ConnectError as exc:
            fail(str(exc))
    console.print(f"[green]✓[/] {done.connector} is taking a new snapshot and streaming again")
    if not reindex:
        for index in fed:
            console.print(f"  rebuild {index.name}: headwater indexers reindex {index.name}")
        return
    for index in fed:
        # After the connector streams again: every change after the rebuild's snapshot is in
        # the topic, and everything before it (deletes included) is in the rebuilt index.
        run_reindex(settings, index, drop_old=False)
