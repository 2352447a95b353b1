"""Start a source connector over from a new snapshot, after its place in the WAL was lost.

When a replication slot is dropped, recreated or invalidated (`max_slot_wal_keep_size`), the
changes after the connector's offset are gone from the server. Debezium refuses to go on (its
task fails with "... no longer available on the server"): it never skips them silently. The
way back is a new snapshot: stop the connector, drop the slot it would otherwise reuse, forget
its offsets, and resume it. Debezium then creates the slot with an exported snapshot, emits
every row of its tables (op `r`), and streams from there. A snapshot carries no deletes: once
it is in the topics, the deletes of the rows it no longer found are written after it
(`connectors.gapdeletes`), so every reader of the topics forgets them too. The search indexes
are also rebuilt by the command that calls this.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from connectors.client import ConnectClient, ConnectError
from connectors.gapdeletes import GapDeletes, write_missed_deletes
from connectors.spec import ConnectorSpec
from connectors.topics import planned_topics
from headwater.settings import KafkaSettings, PostgresSettings


@dataclass(frozen=True)
class Resnapshot:
    connector: str
    slot: str | None
    slot_dropped: bool
    gap: GapDeletes | None = None  # None: its topics are not known (routed or renamed)


def snapshot_done(offsets: list[dict[str, Any]]) -> int | None:
    """The LSN a connector streams from once its snapshot is committed (every snapshot record
    is in Kafka then: Connect commits an offset only after its records were written); None
    while there is no offset yet or the snapshot is under way."""
    for entry in offsets:
        offset = entry.get("offset") or {}
        if not offset:
            continue
        if (
            not offset.get("snapshot")
            or offset.get("snapshot_completed")
            or offset.get("last_snapshot_record")
        ):
            return int(offset.get("lsn") or 0)
    return None


def captured_topics(name: str, config: dict[str, str]) -> dict[str, str]:
    """The change topics of a connector, with the `schema.table` each one carries; empty when
    its topic names cannot be known from its config."""
    spec = ConnectorSpec(name=name, config=config, path=Path(name))
    prefix = config.get("topic.prefix", "")
    return {t.name: t.name[len(prefix) + 1 :] for t in planned_topics(spec)}


def wait_snapshot(
    client: ConnectClient, name: str, timeout_s: float, progress: Callable[[str], None]
) -> int:
    """Wait until the connector's new snapshot is committed; the LSN it streams from."""
    started = time.monotonic()
    said = started
    while True:
        lsn = snapshot_done(client.offsets(name))
        if lsn is not None:
            return lsn
        now = time.monotonic()
        if now - started > timeout_s:
            raise ConnectError(f"the snapshot of {name} is not done after {timeout_s:.0f}s")
        if now - said >= 10:
            progress(f"  {name} is still taking its snapshot ({now - started:.0f}s)")
            said = now
        time.sleep(0.5)


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
    kafka: KafkaSettings,
    name: str,
    timeout_s: float,
    progress: Callable[[str], None],
    snapshot_timeout_s: float = 3600.0,
) -> Resnapshot:
    """Stop connector `name`, drop its slot, forget its offsets, and resume it: it snapshots
    its tables again and streams from the new slot. Once the snapshot is in Kafka, the deletes
    it could not carry are written after it. Returns then."""
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
    topics = captured_topics(name, config)
    if not topics:
        progress(
            f"the topics of {name} are routed or renamed: rows deleted while its slot was "
            "gone are not deleted downstream (rebuild what it feeds)"
        )
        return Resnapshot(name, slot, dropped)
    streams_from = wait_snapshot(client, name, snapshot_timeout_s, progress)
    progress(f"snapshot of {name} done; looking for rows deleted while its slot was gone")
    gap = write_missed_deletes(
        kafka, pg.dsn(config.get("database.dbname")), topics, progress, streams_from
    )
    found = sum(gap.deletes.values())
    detail = ", ".join(f"{t}: {n}" for t, n in sorted(gap.deletes.items()))
    progress(
        f"{gap.records_read:,} records read: {found} row(s) deleted while the slot was gone"
        + (f", their deletes written ({detail})" if found else "")
    )
    return Resnapshot(name, slot, dropped, gap)
