"""Where a declared source's changes and rows are: its change topic and its database.

A declaration names its source as a connector file and a `schema.table`; the connector file is
the one place that says which database that is and how its changes reach Kafka. Pure:
`bind` checks every declared source against the connector specs (the connector exists, is a
Debezium PostgreSQL source capturing the table, with the encodings the type table expects) and
returns a `Binding` per source, or a `DeclarationError` naming each file and field at fault.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from connectors.spec import ConnectorSpec, load_specs
from headwater.pipelines.declarations import Binding, DeclarationError, Pipelines, Source, load
from headwater.secrets import resolve_env
from headwater.settings import PostgresSettings, Settings

POSTGRES_CONNECTOR = "io.debezium.connector.postgresql.PostgresConnector"
# The encodings `headwater.pipelines.types` reads (Debezium's defaults differ for the first two).
EXPECTED = {
    "decimal.handling.mode": "string",
    "time.precision.mode": "adaptive_time_microseconds",
}
FLATTEN = "io.debezium.transforms.ExtractNewRecordState"


def _declared_sources(pipelines: Pipelines) -> Iterable[tuple[Path | None, str, Source]]:
    for index in pipelines.indexes.values():
        yield index.path, "source", index.source
        for i, summary in enumerate(index.summaries):
            yield index.path, f"summaries.{i}.source", summary.source
    for mirror in pipelines.mirrors.values():
        yield mirror.path, "source", mirror.source


def _captured(spec: ConnectorSpec) -> set[str]:
    return {t.strip() for t in spec.config.get("table.include.list", "").split(",") if t.strip()}


def connector_problems(spec: ConnectorSpec) -> list[str]:
    """Why a connector's records cannot feed declared pipelines (empty when they can)."""
    config = spec.config
    problems = []
    if spec.connector_class != POSTGRES_CONNECTOR:
        return [f"{spec.path}: connector.class must be {POSTGRES_CONNECTOR}"]
    for key, value in EXPECTED.items():
        if config.get(key) != value:
            problems.append(f"{spec.path}: config.{key} must be {value!r}")
    transforms = [t.strip() for t in config.get("transforms", "").split(",") if t.strip()]
    flattening = [t for t in transforms if config.get(f"transforms.{t}.type") == FLATTEN]
    if not flattening:
        problems.append(f"{spec.path}: transforms must include {FLATTEN}")
    else:
        added = config.get(f"transforms.{flattening[0]}.add.fields", "")
        wanted = {"op", "lsn", "table"}
        if not wanted <= {f.strip() for f in added.split(",")}:
            problems.append(
                f"{spec.path}: transforms.{flattening[0]}.add.fields must include op,lsn,table"
            )
    return problems


def _dsn(spec: ConnectorSpec, postgres: PostgresSettings, secrets: Mapping[str, str]) -> str:
    config = spec.config
    password = resolve_env(config.get("database.password", ""), secrets)
    host = config.get("database.hostname", postgres.host)
    # The database as Connect reaches it may have another name from here (compose: "postgres").
    if host == postgres.connect_host:
        host = postgres.host
    return (
        f"host={host} port={config.get('database.port', postgres.port)} "
        f"dbname={config.get('database.dbname', '')} "
        f"user={config.get('database.user', postgres.user)} "
        f"password={password}"
    )


def bind(
    pipelines: Pipelines,
    specs: list[ConnectorSpec],
    postgres: PostgresSettings,
    secrets: Mapping[str, str],
) -> dict[Source, Binding]:
    """Each declared source bound to its connector, topic and database; `secrets` resolve the
    `${env:NAME}` references of the connector files for our own connections."""
    by_name = {spec.name: spec for spec in specs}
    problems: list[str] = []
    bindings: dict[Source, Binding] = {}
    checked: dict[str, list[str]] = {}
    for path, where, source in _declared_sources(pipelines):
        spec = by_name.get(source.connector)
        if spec is None:
            known = ", ".join(sorted(by_name)) or "none"
            problems.append(
                f"{path}: {where}.connector: no connector file named "
                f"{source.connector!r} (known: {known})"
            )
            continue
        if spec.name not in checked:
            checked[spec.name] = connector_problems(spec)
            # Named once, with the first declaration that needs the connector: the fix is in
            # the connector file, the declaration says why it matters.
            problems.extend(
                f"{path}: {where}.connector: {spec.name} cannot feed pipelines: {problem}"
                for problem in checked[spec.name]
            )
        if checked[spec.name]:
            continue
        if source.table not in _captured(spec):
            problems.append(
                f"{path}: {where}.table: {source.table} is not in {spec.path} table.include.list"
            )
            continue
        topic = f"{spec.config.get('topic.prefix', '')}.{source.table}"
        bindings[source] = Binding(
            source,
            spec.name,
            topic,
            _dsn(spec, postgres, secrets),
            spec.config.get("database.dbname", ""),
        )
    if problems:
        raise DeclarationError(sorted(set(problems), key=problems.index))
    return bindings


def resolve(settings: Settings) -> tuple[Pipelines, dict[Source, Binding]]:
    """The declarations of `settings.pipelines.dir`, every source bound to its connector."""
    pipelines = load(settings.pipelines.dir)
    specs = load_specs(settings.connect.specs_dir, settings.interpolation_env())
    return pipelines, bind(pipelines, specs, settings.postgres, settings.secret_values())


_COLUMNS = """
SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""


def table_columns(conn: Any, source: Source) -> dict[str, str] | None:
    """Column name -> `format_type` of a source table; None if there is no such table."""
    found = conn.execute(_COLUMNS, (source.schema_name, source.table_name)).fetchall()
    if not found:
        return None
    return {_field(row, "name", 0): _field(row, "type", 1) for row in found}


def _field(row: Any, name: str, at: int) -> str:
    return str(row[name] if isinstance(row, dict) else row[at])
