"""Start a source connector over from a new snapshot, after its place in the WAL was lost.

When a replication slot is dropped, recreated or invalidated (`max_slot_wal_keep_size`), the
changes after the connector's offset are gone from the server. Debezium refuses to go on (its
task fails with "... no longer available on the server"): it never skips them silently. The
way back is a new snapshot: stop the connector, drop the slot it would otherwise reuse, forget
its offsets, and resume it. Debezium then creates the slot with an exported snapshot, emits
every row of its tables (op `r`), and streams from there. A snapshot carries no deletes, so
what was deleted meanwhile must be removed downstream by a rebuild (the search indexes are
reindexed by the command that calls this).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from connectors.client import ConnectClient, ConnectError
from headwater.settings import PostgresSettings


@dataclass(frozen=True)
class Resnapshot:
    connector: str
    slot: str | None
    slot_dropped: bool


def drop_slot(dsn: str, slot: str, timeout_s: float = 30.0) -> bool:
    """Drop replication slot `slot` once no one uses it; False if there is none."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT active FROM pg_replication_slots WHERE slot_name = %s", [slot]
            ).fetchone()
            if row is None:
                return False
            if not row[0]:
                conn.execute("SELECT pg_drop_replication_slot(%s)", [slot])
                return True
            if time.monotonic() > deadline:
                raise ConnectError(f"replication slot {slot} is still in use after {timeout_s:g}s")
            time.sleep(0.5)


def resnapshot(
    client: ConnectClient,
    pg: PostgresSettings,
    name: str,
    timeout_s: float,
    progress: Callable[[str], None],
) -> Resnapshot:
    """Stop connector `name`, drop its slot, forget its offsets, and resume it: it snapshots
    its tables again and streams from the new slot. Returns once it is RUNNING."""
    config = client.config(name)
    if config is None:
        raise ConnectError(f"no connector {name} in Kafka Connect")
    slot = config.get("slot.name")
    progress(f"stopping {name}")
    client.stop(name)
    client.wait_state(name, "STOPPED", timeout_s)
    dropped = False
    if slot:
        dropped = drop_slot(pg.dsn(config.get("database.dbname")), slot)
        progress(f"replication slot {slot} {'dropped' if dropped else 'was already gone'}")
    client.reset_offsets(name)
    progress(f"offsets of {name} forgotten; resuming: it takes a new snapshot")
    client.resume(name)
    client.wait_running(name, timeout_s)
    return Resnapshot(name, slot, dropped)
