"""`headwater chaos`: faults of the fault matrix under load, each as load, fault, heal, drain,
reconcile, with a table (and JSON) of what was lost, stale or duplicated and how long it took
to recover.

Every scenario runs against the local stack with a worker and search indexes of its own (an
index prefix, a consumer group, a dashboards updates topic), so the main job's stores are not
touched, and the sample workload as the load: realistic inserts, updates and deletes from one
session that reconnects after a database restart. The faults are real: processes are killed
with SIGKILL, PostgreSQL is shut down immediately, Elasticsearch is paused with SIGSTOP.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import typer

from headwater.console import console, err_console, fail, print_json, print_table, save_result
from headwater.settings import Settings
from streams.process import WorkerProcess

# A scenario recovers when its indexes equal the source this long after the heal, at most.
RECOVERY_GOAL_S = 30.0


@dataclass
class Outcome:
    scenario: str
    fault: str
    operations: int
    rate: float
    lost: int = 0  # rows the index lacks (missing)
    stale: int = 0
    extra: int = 0  # documents whose row is gone
    duplicates: int = 0  # changes delivered again and skipped as older (409 no-ops)
    dead_letters: int = 0
    # Bad records that were not dead-lettered as promised.
    unhandled: int = 0
    # Other promises the scenario checks that did not hold (say, readiness during the fault).
    broken: list[str] = field(default_factory=list)
    # Dashboard cells found equal to the source at the end (windows since the worker started).
    dashboard_cells: int = 0
    # From the end of the heal and of the load to indexes equal to the source.
    recovery_s: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.lost == self.stale == self.extra == self.unhandled == 0
            and not self.broken
            and self.recovery_s is not None
            and self.recovery_s <= RECOVERY_GOAL_S
        )


class ChaosWorker(WorkerProcess):
    """The run's own worker, killable, with its search counters added up over its lives."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        super().__init__(env, port, log)
        # Counters of the worker's earlier lives (a kill resets them).
        self._before: dict[str, int] = {}
        self._last: dict[str, int] = {}

    def counters(self) -> dict[str, int]:
        """The search counters over every life of the worker."""
        with contextlib.suppress(httpx.HTTPError, ValueError):
            self._last = {k: v for k, v in self.stats().items() if isinstance(v, int)}
        return {k: self._before.get(k, 0) + v for k, v in self._last.items()}

    def kill(self) -> None:
        self.counters()
        self._before = {k: self._before.get(k, 0) + v for k, v in self._last.items()}
        self._last = {}
        self.stop(signal.SIGKILL)


@dataclass
class Run:
    settings: Settings
    prefix: str
    worker: ChaosWorker
    hold_s: float
    short: bool = False
    updates_topic: str = ""  # where the run's worker publishes its dashboards
    started: float = 0.0  # when it was ready (epoch seconds): its dashboards begin there
    dashboards: dict[str, Any] | None = None  # the last reconcile of its dashboards
    notes: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)  # where the last reconcile differed

    def indexes(self) -> dict[str, Any]:
        from connectors.sources import resolve
        from indexers.declared import declared_indexes

        pipelines, bindings = resolve(self.settings)
        return declared_indexes(pipelines, bindings, self.prefix)

    def es(self) -> Any:
        from indexers.catalog import client

        return client(self.settings.elasticsearch, timeout_s=120)


# Faults: each injects its fault and returns how to heal it -------------------------------------
Heal = Callable[[], None]


def _signal_service(run: Run, name: str, sig: int) -> None:
    from headwater.stack import procs
    from headwater.stack.manager import Stack

    pid = Stack(run.settings).managed_pid(name)
    if pid is None:
        raise RuntimeError(f"{name} is not running")
    for p in procs.process_tree(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, sig)


def _stack_up(run: Run) -> None:
    from headwater.stack.manager import Stack, up

    up(Stack(run.settings), lambda name, what: None)


def _connector_running(run: Run, timeout_s: float = 120) -> None:
    """Wait for the source connectors; a failed task is restarted, loudly (it is in the notes)."""
    from connectors.client import ConnectClient, ConnectError, last_error

    with ConnectClient(run.settings.connect.url) as connect:
        for name in connect.names():
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    connect.wait_running(name, timeout_s=5)
                    break
                except ConnectError:
                    failure = last_error(connect.status(name))
                    if failure:
                        run.notes.append(f"connector {name} failed ({failure[:80]}); restarted")
                        connect.restart(name)
                    if time.monotonic() > deadline:
                        raise


def kill_worker(run: Run) -> Heal:
    run.worker.kill()
    return run.worker.start


def kill_service(name: str, sig: int = signal.SIGKILL) -> Callable[[Run], Heal]:
    """`sig` to the service's processes; healed by starting it again and waiting for the
    source connectors to run."""

    def inject(run: Run) -> Heal:
        _signal_service(run, name, sig)

        def heal() -> None:
            time.sleep(1)
            _stack_up(run)
            _connector_running(run)

        return heal

    return inject


def pause_elasticsearch(run: Run) -> Heal:
    _signal_service(run, "elasticsearch", signal.SIGSTOP)
    return lambda: _signal_service(run, "elasticsearch", signal.SIGCONT)


def _rebuild(run: Run, indexes: Iterable[Any]) -> None:
    from indexers.reindex import reindex

    es = run.es()
    for index in indexes:
        reindex(run.settings.elasticsearch, index.dsn, es, index.spec, index.shaper)


def reindex_under_writes(run: Run) -> Heal:
    _rebuild(run, run.indexes().values())
    return lambda: None


def _key(index: Any, values: list[Any]) -> bytes:
    """A change's key for document id `values`, as the source connector writes it."""
    import orjson

    declaration = index.shaper.declaration
    return orjson.dumps(
        {declaration.column_of(f): v for f, v in zip(declaration.id, values, strict=True)}
    )


def _absent_id(index: Any) -> list[Any] | None:
    """Id values no row has (negative numbers, a marked string), or None for other key types."""
    values: list[Any] = []
    for t in index.shaper.id_types:
        if t.name in ("smallint", "integer", "bigint"):
            values.append(-7)
        elif t.name == "uuid":
            values.append(str(uuid.UUID(int=7)))
        elif t.name == "text" or t.name.startswith(("varchar", "character")):
            values.append("headwater-chaos-absent")
        else:
            return None
    return values


def poison_records(run: Run) -> Heal:
    from confluent_kafka import Producer

    producer = Producer(run.settings.kafka.client_config())
    for index in run.indexes().values():
        key = _key(index, _absent_id(index) or [None] * len(index.shaper.id_types))
        producer.produce(index.topic, key=key, value=b"\x00not a change event")
    producer.flush(10)
    return lambda: None


def _wrong_type_change(index: Any) -> tuple[bytes, dict[str, Any]] | None:
    """A well-formed change for a row no one has, with a field whose value its type refuses,
    or None when the index has no such field (every field takes a string)."""
    from indexers.documents import ShapeError

    declaration = index.shaper.declaration
    ids = _absent_id(index)
    if ids is None:
        return None
    # Every other column null, so that the one wrong value is the only fault of the change.
    row: dict[str, Any] = {declaration.column_of(f): None for f in declaration.row_fields}
    row.update({declaration.column_of(f): v for f, v in zip(declaration.id, ids, strict=True)})
    for name in declaration.row_fields:
        if name in declaration.id:
            continue
        trial = {**row, declaration.column_of(name): "\u0000 not a value of this type"}
        try:
            index.shaper.shape(trial)
        except ShapeError:
            change = {**trial, "__op": "c", "__lsn": 1, "__table": declaration.source.table_name,
                      "__source_ts_ms": int(time.time() * 1000), "__deleted": "false"}  # fmt: skip
            return _key(index, ids), change
    return None


def wrong_type(run: Run) -> Heal:
    """One change whose value does not fit its field's type (a string for a number, say) on
    the first index that has such a field: dead-lettered, the rest of the load unharmed."""
    import orjson
    from confluent_kafka import Producer

    for index in run.indexes().values():
        made = _wrong_type_change(index)
        if made is not None:
            producer = Producer(run.settings.kafka.client_config())
            producer.produce(index.topic, key=made[0], value=orjson.dumps(made[1]))
            producer.flush(10)
            return lambda: None
    raise RuntimeError("no declared index has a field that refuses a string")


def read_only_indexes(run: Run) -> Heal:
    """What the flood-stage disk watermark does: writes answer 429 until the block is lifted."""
    es = run.es()
    block = "index.blocks.read_only_allow_delete"
    names = f"{run.prefix}*"
    es.indices.put_settings(index=names, settings={block: True})

    def heal() -> None:
        # Held longer than the retries take: the breaker is open and readiness says so.
        answer = httpx.get(run.worker.url("/ready/"), timeout=5)
        state = answer.json().get("breakers", {}).get("elasticsearch", {}).get("state")
        if answer.status_code != 503 or state != "open":
            run.broken.append(f"readiness {answer.status_code}, breaker {state}: not 503, open")
        es.indices.put_settings(index=names, settings={block: None})

    return heal


def _table(index: Any) -> Any:
    from psycopg import sql

    source = index.shaper.declaration.source
    return sql.Identifier(source.schema_name, source.table_name)


def alter_table(run: Run) -> Heal:
    """A column added to every indexed table under load, then dropped."""
    import psycopg
    from psycopg import sql

    tables = {index.shaper.declaration.source.table: index for index in run.indexes().values()}

    def alter(change: str) -> None:
        for index in tables.values():
            with psycopg.connect(index.dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("ALTER TABLE {} " + change).format(_table(index)))

    alter("ADD COLUMN headwater_chaos_note text DEFAULT 'added'")
    return lambda: alter("DROP COLUMN IF EXISTS headwater_chaos_note")


def hot_rows(run: Run) -> Heal:
    """Eight sessions updating the same five rows of the first indexed table as fast as they
    can, beside the load (a change of a row field that takes text or a number, or an update
    that changes nothing when there is none)."""
    import psycopg
    from psycopg import sql

    index = next(iter(run.indexes().values()))
    declaration = index.shaper.declaration
    keys = sql.SQL(", ").join(sql.Identifier(declaration.column_of(f)) for f in declaration.id)
    with psycopg.connect(index.dsn, autocommit=True) as conn:
        rows = conn.execute(
            sql.SQL("SELECT {} FROM {} ORDER BY {} LIMIT 5").format(keys, _table(index), keys)
        ).fetchall()
    if not rows:
        raise RuntimeError(f"{declaration.source.table} has no rows to update")
    column, value, counted = _hot_column(index)
    where = sql.SQL(" AND ").join(
        sql.SQL("{} = %s").format(sql.Identifier(declaration.column_of(f))) for f in declaration.id
    )
    update = sql.SQL("UPDATE {} SET {} = {} WHERE {}").format(
        _table(index), sql.Identifier(column), value, where
    )
    stop = threading.Event()

    def hammer(seed: int) -> None:
        with psycopg.connect(index.dsn, autocommit=True) as conn:
            n = seed
            while not stop.is_set():
                n += 1
                conn.execute(update, [*([n] if counted else []), *rows[n % len(rows)]])

    sessions = [threading.Thread(target=hammer, args=(i,), daemon=True) for i in range(8)]
    for t in sessions:
        t.start()

    def heal() -> None:
        stop.set()
        for t in sessions:
            t.join()

    return heal


def _hot_column(index: Any) -> tuple[str, Any, bool]:
    """A row column to change, the SQL of its new value, and whether that takes a counter."""
    from psycopg import sql

    declaration = index.shaper.declaration
    for name, f in declaration.row_fields.items():
        if name in declaration.id:
            continue
        if f.type in ("smallint", "integer", "bigint"):
            return declaration.column_of(name), sql.SQL("%s %% 100"), True
        if f.type == "text":
            return declaration.column_of(name), sql.SQL("'hot ' || %s"), True
    name = declaration.id[0]
    return declaration.column_of(name), sql.Identifier(declaration.column_of(name)), False


def _sources(run: Run) -> set[str]:
    return {index.binding.connector for index in run.indexes().values()}


def _slots(run: Run) -> dict[str, tuple[str, str]]:
    """Each source connector's replication slot and the DSN of its database."""
    from connectors.client import ConnectClient

    slots = {}
    with ConnectClient(run.settings.connect.url) as connect:
        for name in _sources(run):
            config = connect.config(name) or {}
            dsn = run.settings.postgres.dsn(config["database.dbname"])
            slots[name] = (config["slot.name"], dsn)
    return slots


def connect_down(run: Run) -> Heal:
    """Kafka Connect stopped (SIGTERM) under writes, for 10 minutes in a full run: each slot
    holds the WAL back meanwhile, within `max_slot_wal_keep_size`, and, once Connect is back,
    confirms everything written up to the heal."""
    import psycopg

    slots = _slots(run)
    _signal_service(run, "connect", signal.SIGTERM)

    def heal() -> None:
        marks = {}
        for slot, dsn in slots.values():
            with psycopg.connect(dsn, autocommit=True) as conn:
                bound = conn.execute("SHOW max_slot_wal_keep_size").fetchone()
                held = conn.execute(
                    "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), "
                    "pg_current_wal_lsn()::text FROM pg_replication_slots WHERE slot_name = %s",
                    [slot],
                ).fetchone()
            if bound is None or bound[0] == "-1":
                run.broken.append("max_slot_wal_keep_size is -1: a slot may fill the disk")
            if held is None:
                run.broken.append(f"replication slot {slot} is gone")
                continue
            run.notes.append(
                f"{slot} held back {float(held[0]) / 2**20:.1f} MiB of WAL at the heal "
                f"(bound {bound[0] if bound else '?'})"
            )
            marks[slot] = (dsn, held[1])
        time.sleep(1)
        _stack_up(run)
        _connector_running(run)
        for slot, (dsn, end) in marks.items():
            with psycopg.connect(dsn, autocommit=True) as conn:
                deadline = time.monotonic() + 60
                while True:
                    confirmed = conn.execute(
                        "SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots "
                        "WHERE slot_name = %s",
                        [end, slot],
                    ).fetchone()
                    if confirmed and confirmed[0]:
                        break
                    if time.monotonic() > deadline:
                        run.broken.append(f"{slot} did not confirm the WAL up to the heal in 60 s")
                        break
                    time.sleep(1)

    return heal


def drop_slot(run: Run) -> Heal:
    """Each source's replication slot dropped under writes (its walsender ended first). The
    connector must fail loudly (never stream on from a new slot, missing what came between);
    healed as an operator would: `connectors resnapshot`, which also rebuilds the indexes."""
    import psycopg

    from connectors.client import ConnectClient, last_error, lost_its_place
    from connectors.resnapshot import resnapshot

    configs = _slots(run)
    for slot, dsn in configs.values():
        with psycopg.connect(dsn, autocommit=True) as conn:
            deadline = time.monotonic() + 10
            while True:
                # The connector reconnects at once: end its walsender and drop in one go.
                conn.execute(
                    "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                    "WHERE slot_name = %s AND active_pid IS NOT NULL",
                    [slot],
                )
                try:
                    conn.execute("SELECT pg_drop_replication_slot(%s)", [slot])
                    break
                except psycopg.errors.ObjectInUse:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)

    def heal() -> None:
        with ConnectClient(run.settings.connect.url) as connect:
            for name in configs:
                deadline, failure = time.monotonic() + 90, None
                while not lost_its_place(failure) and time.monotonic() < deadline:
                    time.sleep(1)
                    failure = last_error(connect.status(name))
                if lost_its_place(failure):
                    run.notes.append(f"{name} failed as it must: {str(failure)[:90]}...")
                else:
                    run.broken.append(f"{name} went on without its slot, not failing: {failure}")
                done = resnapshot(
                    connect, run.settings.postgres, run.settings.kafka, name, 120, lambda _: None
                )
                if done.gap is not None:
                    found = sum(done.gap.deletes.values())
                    run.notes.append(f"{name}: {found} delete(s) the new snapshot missed, written")
        # The main job's indexes fed by these sources missed the same deletes as the run's.
        from indexers.cli import declared

        main = [i for i in declared(run.settings).values() if i.binding.connector in configs]
        _rebuild(run, [*run.indexes().values(), *main])

    return heal


@dataclass(frozen=True)
class Scenario:
    name: str
    fault: str
    inject: Callable[[Run], Heal]
    # How many dead letters the fault must produce.
    dead_letters: Callable[[Run], int] = lambda run: 0
    # Held at least this long, even in a short run.
    min_hold_s: float = 0.0
    # Held this long in a full run (not --short), when given.
    full_hold_s: float | None = None


SCENARIOS = (
    Scenario("worker-kill", "stream worker killed (SIGKILL), restarted", kill_worker),
    Scenario("connect-kill", "Kafka Connect killed (SIGKILL), restarted", kill_service("connect")),
    Scenario("kafka-kill", "Kafka broker killed (SIGKILL), restarted", kill_service("kafka")),
    # SIGQUIT is PostgreSQL's immediate shutdown (`pg_ctl stop -m immediate`): crash recovery.
    Scenario(
        "postgres-restart",
        "PostgreSQL immediate shutdown, restarted",
        kill_service("postgres", signal.SIGQUIT),
    ),
    Scenario("elasticsearch-pause", "Elasticsearch paused (SIGSTOP), resumed", pause_elasticsearch),
    Scenario("reindex", "every index rebuilt and swapped under writes", reindex_under_writes),
    Scenario(
        "poison",
        "undecodable records on every change topic",
        poison_records,
        lambda run: len(run.indexes()),
    ),
    Scenario(
        "wrong-type",
        "a change with a value of the wrong type for its field",
        wrong_type,
        lambda run: 1,
    ),
    # Held until well after the breaker opened (about 1.5 s in): it stays open 30 s from then.
    Scenario(
        "read-only",
        "indexes read-only (429s), then writable",
        read_only_indexes,
        min_hold_s=15.0,
    ),
    Scenario(
        "connect-down",
        "Kafka Connect stopped under writes (10 min in a full run), started again",
        connect_down,
        full_hold_s=600.0,
    ),
    Scenario(
        "slot-dropped",
        "replication slot dropped under writes; connector fails, then resnapshot",
        drop_slot,
    ),
    Scenario("alter-table", "a column added to each table under load, then dropped", alter_table),
    Scenario("hot-rows", "8 sessions updating 5 rows flat out", hot_rows),
)


# Running ---------------------------------------------------------------------------------------
def _reconcile(run: Run, settle_s: float, published: bool = True) -> tuple[bool, dict[str, int]]:
    """Indexes and dashboards against the source; `published`: the worker must have
    published dashboards by now (it has, once it took any load)."""
    from indexers.verify import verify

    es = run.es()
    counts = {"lost": 0, "stale": 0, "extra": 0}
    clean = True
    run.differences = []
    for index in run.indexes().values():
        report = verify(index.dsn, es, index.spec, index.shaper, settle_s)
        clean = clean and report.ok
        kinds = [m.kind for m in report.mismatches + report.in_flight]
        run.differences += [f"{index.name}: {m.kind} {m.id}" for m in report.mismatches[:3]]
        counts["lost"] += kinds.count("missing")
        counts["stale"] += kinds.count("stale")
        counts["extra"] += kinds.count("extra")
    dashboards = run.dashboards = _dashboards(run, settle_s)
    if dashboards is None:
        return clean and not published, counts
    run.differences += [f"dashboards: {d}" for d in dashboards.get("samples", [])]
    counts["lost"] += dashboards["missing"]
    counts["stale"] += dashboards["differs"]
    counts["extra"] += dashboards["extra"]
    clean = clean and not any(dashboards[k] for k in ("missing", "differs", "extra", "in_flight"))
    return clean, counts


# A worker that starts at the end of the topics knows a product's category only once that
# product changes: revenue of the others goes under "uncategorised". Not compared.
_UNKNOWN_BEFORE_START = {"category_revenue"}


def _dashboards(run: Run, settle_s: float) -> dict[str, Any] | None:
    """The dashboards of the run's worker against the source, for windows that began after
    it started; None while that cannot be told yet."""
    from confluent_kafka import KafkaException

    from streams.dashboards import logic
    from streams.dashboards.reconcile import reconcile_dashboards

    metrics = {m for spec in logic.WINDOWS for m in spec.metrics} - _UNKNOWN_BEFORE_START
    try:
        return reconcile_dashboards(
            run.settings, run.updates_topic, since=run.started, settle_s=settle_s, metrics=metrics
        )
    except (LookupError, KafkaException):
        # Nothing published yet, or Kafka still electing leaders after a restart: look again.
        return None


def _converged(
    run: Run, within_s: float, settle_s: float = 0.0, published: bool = True
) -> tuple[float | None, dict[str, int]]:
    start = time.monotonic()
    while True:
        clean, counts = _reconcile(run, settle_s, published)
        if clean:
            return time.monotonic() - start, counts
        if time.monotonic() - start > within_s:
            return None, counts
        time.sleep(0.5)


def run_scenario(run: Run, scenario: Scenario, rate: float, lead_s: float) -> Outcome:
    """Load for `lead_s`, the fault for `run.hold_s` (or the scenario's least) under load, heal,
    then the load's last seconds; recovery is timed from when both the heal and the load are
    over to the first reconcile that finds the indexes equal to the source."""
    from headwater.cli.workload import run_workload

    hold_s = max(run.hold_s, scenario.min_hold_s)
    if not run.short and scenario.full_hold_s is not None:
        hold_s = scenario.full_hold_s
    operations = int(rate * (lead_s + hold_s + 2))
    outcome = Outcome(scenario.name, scenario.fault, operations, rate)
    run.notes, run.broken = [], []
    if _converged(run, within_s=120, published=False)[0] is None:
        raise RuntimeError("the indexes did not equal the source before the fault")
    before = run.worker.counters()
    load: dict[str, Any] = {}

    def write() -> None:
        load["report"] = run_workload(run.settings.postgres, rate, operations, show=False)

    writer = threading.Thread(target=write)
    writer.start()
    time.sleep(lead_s)
    heal = scenario.inject(run)
    time.sleep(hold_s)
    heal()
    writer.join()
    report = load.get("report")
    if report is None:
        outcome.notes.append("the load stopped with an error")
    elif report.skipped:
        outcome.notes.append(f"{report.skipped} operations given up by the load and replaced")
    waited, counts = _converged(run, within_s=180)
    outcome.recovery_s = None if waited is None else round(waited, 1)
    if waited is None:
        _, counts = _reconcile(run, settle_s=5.0)
        run.notes.extend(f"differs: {d}" for d in run.differences)
    outcome.lost, outcome.stale, outcome.extra = counts["lost"], counts["stale"], counts["extra"]
    after = run.worker.counters()
    outcome.duplicates = after.get("stale_skipped", 0) - before.get("stale_skipped", 0)
    outcome.dead_letters = sum(
        after.get(k, 0) - before.get(k, 0) for k in ("malformed", "rejected")
    )
    expected = scenario.dead_letters(run)
    if outcome.dead_letters < expected:
        outcome.unhandled = expected - outcome.dead_letters
        outcome.notes.append(f"{outcome.unhandled} of {expected} bad records not dead-lettered")
    outcome.dashboard_cells = (run.dashboards or {}).get("equal", 0)
    run.notes.append(f"dashboards: {outcome.dashboard_cells} cells equal to the source")
    if not outcome.dashboard_cells:
        # A reconcile that compared no cell proves nothing about the dashboards.
        run.broken.append("the dashboards had nothing to compare with the source")
    outcome.notes.extend(run.notes)
    outcome.broken = run.broken
    outcome.notes.extend(f"broken: {promise}" for promise in run.broken)
    return outcome


def _next_window_start(step_s: int, now: float | None = None) -> float:
    """The next start of a `step_s` window. The dashboards are compared for the windows that
    begin after the run's worker started (it read none of the events before); beginning the run
    on a minute, the windows of every scenario are compared, the first ones' included (a run
    begun mid-minute had none before its fourth scenario)."""
    now = time.time() if now is None else now
    return float(-(-now // step_s) * step_s)


@contextlib.contextmanager
def chaos_run(settings: Settings, hold_s: float, short: bool, logs: Path) -> Iterator[Run]:
    """A worker and indexes of the run's own, built from the source; removed afterwards."""
    suffix = uuid.uuid4().hex[:8]
    prefix = f"chaos-{suffix}-"
    port = 6700 + int(suffix[:4], 16) % 200
    env = {
        **os.environ,
        "HW_STREAMS_APP_ID": f"hw-chaos-{suffix}",
        "HW_INDEXES_PREFIX": prefix,
        "HW_STREAMS_WEB_PORT": str(port),
        "HW_STREAMS_DATA_DIR": str(logs / f"streams-{suffix}"),
        "HW_STREAMS_AUTO_OFFSET_RESET": "latest",
        "HW_DASHBOARDS_UPDATES_TOPIC": f"chaos-{suffix}.updates",
    }
    logs.mkdir(parents=True, exist_ok=True)
    worker = ChaosWorker(env, port, logs / f"chaos-worker-{suffix}.log")
    run = Run(settings, prefix, worker, hold_s, short, env["HW_DASHBOARDS_UPDATES_TOPIC"])
    worker.start()
    try:
        time.sleep(2)  # the new group settles at the end of the topics
        run.started = _next_window_start(60)
        time.sleep(max(0.0, run.started - time.time()))
        reindex_under_writes(run)  # the indexes from a source snapshot
        yield run
    finally:
        worker.stop()
        with contextlib.suppress(Exception):
            es = run.es()
            es.options(ignore_status=404).indices.delete(index=f"{prefix}*")
            for index in run.indexes().values():
                es.options(ignore_status=404).indices.delete_index_template(name=index.alias)


def chaos(
    ctx: typer.Context,
    scenario: list[str] = typer.Option(
        [], "--scenario", "-s", help="A scenario; repeatable. Default: all of them."
    ),
    rate: float = typer.Option(100.0, "--rate", min=1, help="Changes per second of the load."),
    lead: float = typer.Option(10.0, "--lead", min=1, help="Seconds of load before each fault."),
    hold: float = typer.Option(10.0, "--hold", min=0, help="How long each fault lasts."),
    short: bool = typer.Option(False, "--short", help="Each fault briefly, under a small load."),
    as_json: bool = typer.Option(False, "--json", help="Print the outcomes as JSON."),
) -> None:
    """Run fault scenarios under load; each must end with nothing lost and nothing stale."""
    from headwater.console import settings_of

    settings = settings_of(ctx)
    known = {s.name: s for s in SCENARIOS}
    unknown = [name for name in scenario if name not in known]
    if unknown:
        fail(f"unknown scenario {', '.join(unknown)}; known: {', '.join(known)}")
    chosen = [known[name] for name in scenario] or list(SCENARIOS)
    if short:
        rate, lead, hold = min(rate, 50.0), min(lead, 3.0), min(hold, 3.0)
    outcomes: list[Outcome] = []
    logs = settings.stack.data_dir / "chaos"
    with chaos_run(settings, hold, short, logs) as run:
        for n, one in enumerate(chosen, 1):
            err_console.print(f"[bold]{n}/{len(chosen)} {one.name}[/]: {one.fault}")
            outcome = run_scenario(run, one, rate, lead)
            outcomes.append(outcome)
            err_console.print(
                f"  {'ok' if outcome.ok else 'FAILED'}: lost {outcome.lost}, stale "
                f"{outcome.stale}, extra {outcome.extra}, recovered in {outcome.recovery_s} s"
            )
    result = [{**asdict(o), "ok": o.ok} for o in outcomes]
    saved = save_result(settings.stack.data_dir / "results", "chaos", result)
    if as_json:
        print_json(result)
    else:
        print_table(
            "chaos: load, fault, heal, drain, reconcile",
            ["scenario", "load", "lost", "stale", "extra", "dup", "dead letters", "recovery s",
             "ok"],
            [
                [o.scenario, f"{o.operations} @ {o.rate:g}/s", o.lost, o.stale, o.extra,
                 o.duplicates, o.dead_letters, o.recovery_s if o.recovery_s is not None else "-",
                 "yes" if o.ok else "NO"]
                for o in outcomes
            ],
        )  # fmt: skip
        for o in outcomes:
            for note in o.notes:
                console.print(f"{o.scenario}: {note}")
        console.print(f"saved {saved}")
    if not all(o.ok for o in outcomes):
        raise typer.Exit(1)
