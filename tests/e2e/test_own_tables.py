"""A database the project has never seen, made searchable by files alone.

A new database with a composite key, decimals, timestamps with and without zone, dates, JSONB,
arrays, UUIDs, nullable and TOASTed text, and a child table summarised into its parent: a
connector file, an index declaration, a mirror declaration, and the commands a user runs
(`connectors apply`, `pipelines validate | plan | apply`, `worker`, `verify search`, `search`,
`batch run`). After inserts, updates and deletes the index and the mirror equal the source;
plural, typo and prefix queries find what they should; a changed declaration is planned as a
reindex and applied.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from headwater.settings import PROJECT_ROOT, Settings
from streams.process import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SCHEMA = """
CREATE TABLE stock_items (
    warehouse    text NOT NULL,
    item_no      integer NOT NULL,
    title        text NOT NULL,
    notes        text,
    price        numeric(12,3),
    weight       real,
    received_at  timestamp,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    best_before  date,
    attrs        jsonb,
    tags         text[],
    sizes        integer[],
    ref          uuid,
    active       boolean NOT NULL DEFAULT true,
    PRIMARY KEY (warehouse, item_no)
);
CREATE TABLE stock_moves (
    id         bigserial PRIMARY KEY,
    warehouse  text NOT NULL,
    item_no    integer NOT NULL,
    qty        integer NOT NULL,
    moved_at   timestamptz NOT NULL
);
-- Moves are summarised into their item: a deleted move must carry its item's key.
ALTER TABLE stock_moves REPLICA IDENTITY FULL;
"""

INDEX = {
    "name": "stock_items",
    "source": {"connector": "CONNECTOR", "table": "public.stock_items"},
    "id": ["warehouse", "item_no"],
    "fields": {
        "warehouse": {"type": "text", "facet": True},
        "item_no": {"type": "integer", "filter": True, "sort": True},
        "title": {
            "type": "text",
            "search": True,
            "analyzer": "english",
            "weight": 3,
            "suggest": True,
        },
        "notes": {"type": "text", "search": True},
        "price": {"type": "numeric(12,3)", "filter": True, "sort": True},
        "weight": {"type": "real"},
        "received_at": {"type": "timestamp", "sort": True},
        "updated_at": {"type": "timestamptz"},
        "best_before": {"type": "date", "filter": True},
        "attrs": {"type": "jsonb", "stored_only": True},
        "tags": {"type": "text[]", "facet": True},
        "sizes": {"type": "integer[]", "filter": True},
        "ref": {"type": "uuid", "filter": True},
        "active": {"type": "boolean", "filter": True},
    },
    "summaries": [
        {
            "name": "moves",
            "source": {"connector": "CONNECTOR", "table": "public.stock_moves"},
            "id": "id",
            "parent_key": ["warehouse", "item_no"],
            "columns": {"qty": "integer", "moved_at": "timestamptz"},
            "fields": {
                "move_count": {"op": "count"},
                "moved_qty": {"op": "sum", "column": "qty"},
                "last_move_at": {"op": "max", "column": "moved_at"},
            },
        }
    ],
}


MIRROR = {
    "name": "stock_items",
    "source": {"connector": "CONNECTOR", "table": "public.stock_items"},
    "id": ["warehouse", "item_no"],
    "target_table": "TARGET",
    "history": True,
    "columns": {
        "warehouse": "text",
        "item_no": "integer",
        "title": "text",
        "notes": "text",
        "price": "numeric(12,3)",
        "weight": "real",
        "received_at": "timestamp",
        "updated_at": "timestamptz",
        "best_before": "date",
        "attrs": "jsonb",
        "tags": "text[]",
        "sizes": "integer[]",
        "ref": "uuid",
        "active": "boolean",
    },
}
COLUMNS = list(MIRROR["columns"])  # type: ignore[call-overload]


def _connector(name: str, database: str, prefix: str) -> dict[str, Any]:
    shipped = yaml.safe_load((PROJECT_ROOT / "connectors/specs/shop-source.yaml").read_text())
    config = dict(shipped["config"])
    config.update(
        {
            "database.dbname": database,
            "topic.prefix": prefix,
            "slot.name": prefix,
            "publication.name": prefix,
            "table.include.list": "public.stock_items,public.stock_moves",
        }
    )
    return {"name": name, "config": config}


class Own:
    """A user's own database, connector file, declarations and worker, all throwaway."""

    def __init__(self, settings: Settings, tmp: Path) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.settings = settings
        self.database = f"hw_inventory_{suffix}"
        self.connector = f"inventory-{suffix}"
        self.prefix = f"inv{suffix}"
        self.index_prefix = f"own-{suffix}-"
        self.port = 6700 + int(suffix[:4], 16) % 200
        self.specs = tmp / "connectors"
        self.pipelines = tmp / "pipelines"
        (self.pipelines / "indexes").mkdir(parents=True)
        (self.pipelines / "mirrors").mkdir()
        self.schema = f"own_{suffix}"
        self.specs.mkdir()
        self.env = {
            **os.environ,
            "HW_CONNECT_SPECS_DIR": str(self.specs),
            "HW_PIPELINES_DIR": str(self.pipelines),
            "HW_STREAMS_APP_ID": f"hw-test-own-{suffix}",
            "HW_INDEXES_PREFIX": self.index_prefix,
            "HW_STREAMS_WEB_PORT": str(self.port),
            "HW_STREAMS_DATA_DIR": str(tmp / "streams"),
            # The shop's dashboards in the same worker need not replay the shop's history.
            "HW_STREAMS_AUTO_OFFSET_RESET": "earliest",
        }
        self.worker = WorkerProcess(self.env, self.port, tmp / "worker.log")

    def dsn(self) -> str:
        return self.settings.postgres.dsn(self.database)

    def declare(self, index: dict[str, Any]) -> None:
        text = json.dumps(index).replace("CONNECTOR", self.connector)
        (self.pipelines / "indexes" / "stock_items.yaml").write_text(text)

    def declare_mirror(self) -> None:
        text = json.dumps(MIRROR).replace("CONNECTOR", self.connector)
        text = text.replace("TARGET", f"{self.schema}.stock_items")
        (self.pipelines / "mirrors" / "stock_items.yaml").write_text(text)

    def headwater(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "headwater", *args],
            capture_output=True,
            text=True,
            timeout=300,
            env=self.env,
            cwd=PROJECT_ROOT,
        )

    def verified(self, wait: float = 60) -> dict[str, Any]:
        result = self.headwater("verify", "search", "--wait", str(wait), "--json")
        assert result.returncode == 0, result.stdout + result.stderr
        (report,) = json.loads(result.stdout)
        return dict(report)

    def search(self, query: str, *filters: str) -> dict[str, Any]:
        args = ["search", query, "--index", "stock_items", "--json"]
        for f in filters:
            args += ["--filter", f]
        result = self.headwater(*args)
        assert result.returncode == 0, result.stdout + result.stderr
        return dict(json.loads(result.stdout))


@pytest.fixture(scope="module")
def own(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Own]:
    tmp = tmp_path_factory.mktemp("own-tables")
    own = Own(stack, tmp)
    with psycopg.connect(stack.postgres.dsn(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{own.database}"')
    with psycopg.connect(own.dsn(), autocommit=True) as conn:
        conn.execute(SCHEMA)
    spec = _connector(own.connector, own.database, own.prefix)
    (own.specs / f"{own.connector}.yaml").write_text(yaml.safe_dump(spec))
    own.declare(INDEX)
    own.declare_mirror()
    try:
        yield own
    finally:
        own.worker.stop()
        own.headwater("connectors", "delete", own.connector)
        from indexers.catalog import client

        es = client(stack.elasticsearch)
        es.options(ignore_status=404).indices.delete(index=f"{own.index_prefix}*")
        es.options(ignore_status=404).indices.delete_index_template(
            name=f"{own.index_prefix}stock_items"
        )
        with psycopg.connect(stack.postgres.dsn(), autocommit=True) as admin:
            for _ in range(30):
                slot = admin.execute(
                    "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (own.prefix,)
                ).fetchone()
                if slot is None:
                    break
                if not slot[0]:
                    admin.execute("SELECT pg_drop_replication_slot(%s)", (own.prefix,))
                    break
                time.sleep(1)
            admin.execute(f'DROP DATABASE IF EXISTS "{own.database}" WITH (FORCE)')
        with psycopg.connect(
            stack.postgres.dsn(stack.postgres.analytics_db), autocommit=True
        ) as db:
            db.execute(f'DROP SCHEMA IF EXISTS "{own.schema}" CASCADE')


def _item(warehouse: str, item_no: int, title: str, **extra: Any) -> dict[str, Any]:
    return {
        "warehouse": warehouse,
        "item_no": item_no,
        "title": title,
        "notes": None,
        "price": "12.345",
        "weight": 1.5,
        "received_at": "2026-11-30 08:15:00.123456",
        "best_before": "2027-01-31",
        "attrs": json.dumps({"colour": "copper", "dims": [1, 2]}),
        "tags": ["kitchen", "metal"],
        "sizes": [1, 2, 3],
        "ref": str(uuid.uuid4()),
        "active": True,
        **extra,
    }


def _rows(dsn: str, table: str) -> list[tuple[Any, ...]]:
    columns = ", ".join(COLUMNS)
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(f"SELECT {columns} FROM {table} ORDER BY warehouse, item_no")
        return [tuple(json.dumps(v, sort_keys=True, default=str) for v in row) for row in rows]


def _insert(conn: psycopg.Connection[Any], row: dict[str, Any]) -> None:
    columns = ", ".join(row)
    marks = ", ".join(["%s"] * len(row))
    conn.execute(f"INSERT INTO stock_items ({columns}) VALUES ({marks})", list(row.values()))


def test_a_new_database_becomes_searchable_by_declaration(own: Own) -> None:
    applied = own.headwater("connectors", "apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    validated = own.headwater("pipelines", "validate")
    assert validated.returncode == 0, validated.stdout + validated.stderr
    plan = own.headwater("pipelines", "plan", "--json")
    assert plan.returncode == 0, plan.stderr
    assert [(p["kind"], p["action"]) for p in json.loads(plan.stdout)] == [
        ("index", "create"),
        ("mirror", "create"),
    ]
    assert own.headwater("pipelines", "apply").returncode == 0

    big = secrets.token_hex(6000)  # stored out of line (TOASTed)
    with psycopg.connect(own.dsn(), autocommit=True) as conn:
        _insert(conn, _item("north", 1, "Copper kettle", notes=big))
        _insert(conn, _item("north", 2, "Glass teapot", price=None, tags=None, attrs=None))
        _insert(conn, _item("south", 1, "Enamel kettle", weight=None, received_at=None))
        _insert(conn, _item("a|b", 7, "Odd key lamp"))
        for qty, item in ((5, 1), (3, 1), (2, 2)):
            conn.execute(
                "INSERT INTO stock_moves (warehouse, item_no, qty, moved_at) "
                "VALUES ('north', %s, %s, now())",
                (item, qty),
            )
    own.worker.start()
    report = own.verified()
    assert report["source_count"] == 4 and report["ok"]

    with psycopg.connect(own.dsn(), autocommit=True) as conn:
        # An update that leaves the TOASTed notes alone, one that changes them, a delete, a
        # deleted child and a key with the separator in it.
        conn.execute("UPDATE stock_items SET price = 9.5 WHERE warehouse = 'north' AND item_no = 1")
        conn.execute("UPDATE stock_items SET notes = 'short' WHERE warehouse = 'south'")
        conn.execute("DELETE FROM stock_items WHERE warehouse = 'north' AND item_no = 2")
        conn.execute("DELETE FROM stock_moves WHERE qty = 3")
        conn.execute("UPDATE stock_items SET title = 'Odd key lamps' WHERE warehouse = 'a|b'")
    report = own.verified()
    assert report["source_count"] == 3 and report["ok"], report

    kettle = own.search("kettle", "warehouse=north")
    (hit,) = kettle["hits"]
    assert hit["id"] == "north|1"
    assert hit["source"]["notes"] == big  # kept through the update that did not carry it
    assert hit["source"]["move_count"] == 1 and hit["source"]["moved_qty"] == 5
    assert hit["source"]["price"] == 9.5
    assert hit["source"]["attrs"] == {"colour": "copper", "dims": [1, 2]}
    # Plural, typo and prefix queries find the kettles.
    for query in ("kettles", "ketle", "kett"):
        found = {h["id"] for h in own.search(query)["hits"]}
        assert found == {"north|1", "south|1"}, query
    assert {h["id"] for h in own.search("lamp")["hits"]} == {"a%7Cb|7"}
    facets = {b["value"]: b["count"] for b in own.search("")["facets"]["tags"]}
    assert facets == {"kitchen": 3, "metal": 3}

    # The same table mirrored into the warehouse, with its history.
    loaded = own.headwater("batch", "run", "stock_items")
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    assert _rows(own.dsn(), "public.stock_items") == _rows(
        own.settings.postgres.dsn(own.settings.postgres.analytics_db), f"{own.schema}.stock_items"
    )
    with psycopg.connect(own.settings.postgres.dsn(own.settings.postgres.analytics_db)) as db:
        versions = db.execute(
            "SELECT count(*), count(*) FILTER (WHERE is_current) "
            f"FROM {own.schema}.stock_items_history WHERE warehouse = 'north' AND item_no = 1"
        ).fetchone()
    assert versions == (2, 1)  # inserted, then its price changed


def test_a_changed_declaration_is_planned_as_a_reindex_and_applied(own: Own) -> None:
    changed = json.loads(json.dumps(INDEX))
    changed["fields"]["title"]["facet"] = True
    own.declare(changed)
    plan = own.headwater("pipelines", "plan", "--json")
    assert plan.returncode == 0, plan.stderr
    step, mirror = json.loads(plan.stdout)
    assert step["action"] == "reindex" and "title" in step["reasons"][0]
    assert mirror["action"] == "nothing"
    applied = own.headwater("pipelines", "apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "-v2" in applied.stdout
    again = own.headwater("pipelines", "plan", "--json")
    assert [p["action"] for p in json.loads(again.stdout)] == ["nothing", "nothing"]
    assert own.verified(wait=30)["ok"]
    titles = {b["value"] for b in own.search("")["facets"]["title"]}
    assert "Copper kettle" in titles


def test_a_bad_declaration_is_refused_naming_the_file_and_field(own: Own) -> None:
    bad = json.loads(json.dumps(INDEX))
    bad["fields"]["price"]["type"] = "money"
    bad["fields"]["colour"] = {"type": "text"}
    own.declare(bad)
    result = own.headwater("pipelines", "apply")
    assert result.returncode != 0
    message = " ".join((result.stdout + result.stderr).split())
    assert "stock_items.yaml: fields.price.type" in message and "money" in message
    own.declare(INDEX)
