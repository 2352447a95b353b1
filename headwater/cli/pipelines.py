"""`headwater pipelines validate | plan | apply`: the declared indexes and mirrors, checked
against their sources, planned, then applied, in that order and all-or-nothing.

`validate` checks every file and field, binds each source to its connector, and reads each
source table's columns: a declared column the table lacks, or of another type, is refused with
the file and the field. `plan` adds what would change: an index to create, settings to update
in place or a new version to build (`reindex`); a mirror table to create or columns to add.
`apply` does the plan only if nothing is refused anywhere.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import typer

from headwater.console import console, fail, print_json, print_table, settings_of
from headwater.pipelines.declarations import DeclarationError, MirrorDeclaration, Pipelines
from headwater.pipelines.types import column_problem
from headwater.settings import Settings

app = typer.Typer(
    help="Declared pipelines (pipelines/indexes, pipelines/mirrors): check, plan, apply.",
    no_args_is_help=True,
)


@dataclass
class Step:
    """What applying one declaration does."""

    kind: str  # "index" or "mirror"
    name: str
    target: str
    action: str
    reasons: list[str] = field(default_factory=list)


@dataclass
class Checked:
    pipelines: Pipelines
    indexes: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _mirror_source_problems(mirror: MirrorDeclaration, columns: dict[str, str] | None) -> list[str]:
    where = f"{mirror.path or mirror.name}"
    if columns is None:
        return [f"{where}: source.table: {mirror.source.table} does not exist"]
    out = []
    for name, declared in mirror.columns.items():
        problem = column_problem(mirror.source.table, name, declared, columns)
        if problem:
            out.append(f"{where}: columns.{name}: {problem}")
    return out


def check(settings: Settings) -> Checked:
    """Every declaration parsed, bound to its connector and compared with its source table."""
    from psycopg import OperationalError

    from connectors.sources import resolve, table_columns
    from indexers import source
    from indexers.declared import declared_indexes
    from indexers.plan import source_problems

    try:
        pipelines, bindings = resolve(settings)
        indexes = declared_indexes(pipelines, bindings, settings.indexes.prefix)
    except DeclarationError as exc:
        fail(
            "the pipeline declarations are not usable (nothing changed):\n"
            + "\n".join(exc.problems)
        )
    except (ImportError, ValueError) as exc:
        fail(str(exc))
    checked = Checked(pipelines, indexes)
    for index in indexes.values():
        declaration = index.shaper.declaration
        try:
            with source.connect(index.dsn) as conn:
                columns = table_columns(conn, declaration.source)
                children = {s.name: table_columns(conn, s.source) for s in declaration.summaries}
        except OperationalError as exc:
            checked.problems.append(
                f"{declaration.path}: source: cannot read "
                f"{index.binding.database}: {str(exc).splitlines()[0]}"
            )
            continue
        found, noted = source_problems(declaration, columns, children)
        checked.problems += found
        checked.notes += noted
    for mirror in pipelines.mirrors.values():
        binding = bindings[mirror.source]
        try:
            with source.connect(binding.dsn) as conn:
                checked.problems += _mirror_source_problems(
                    mirror, table_columns(conn, mirror.source)
                )
        except OperationalError as exc:
            checked.problems.append(
                f"{mirror.path}: source: cannot read {binding.database}: {str(exc).splitlines()[0]}"
            )
    return checked


def _refuse(problems: list[str]) -> None:
    if problems:
        fail(
            "the pipeline declarations do not match their sources (nothing changed):\n"
            + "\n".join(problems)
        )


def plan_all(settings: Settings, checked: Checked) -> tuple[list[Step], list[str]]:
    """(the steps `apply` takes, problems that refuse it)."""
    from batch import io
    from batch.jobs import mirror as mirrors
    from batch.mirror_transforms import MirrorShape
    from indexers.catalog import client
    from indexers.plan import plan_index

    steps: list[Step] = []
    problems: list[str] = []
    es = client(settings.elasticsearch)
    for index in checked.indexes.values():
        p = plan_index(es, index.spec)
        steps.append(Step("index", p.index, p.alias, p.action, p.reasons))
    if checked.pipelines.mirrors:
        io.ensure_database(settings)
        with io.connect(settings) as conn:
            for mirror in checked.pipelines.mirrors.values():
                target = mirrors.Target.of(mirror)
                action, reasons, refused = mirrors.plan_tables(
                    conn, MirrorShape.of(mirror), target, mirror.history
                )
                problems += [f"{mirror.path}: {r}" for r in refused]
                steps.append(Step("mirror", mirror.name, target.label, action, reasons))
    return steps, problems


def _planned(settings: Settings) -> tuple[Checked, list[Step]]:
    """Checked and planned, or refused (naming every problem) before anything changes."""
    checked = check(settings)
    _refuse(checked.problems)
    steps, problems = plan_all(settings, checked)
    _refuse(problems)
    return checked, steps


def _print(steps: list[Step], as_json: bool) -> None:
    if as_json:
        print_json([asdict(s) for s in steps])
        return
    print_table(
        "what apply will do",
        ["kind", "name", "target", "action", "why"],
        [[s.kind, s.name, s.target, s.action, "; ".join(s.reasons)] for s in steps],
    )


@app.command("validate")
def validate(ctx: typer.Context) -> None:
    """Check every declaration and its source (connector, table, columns, types)."""
    settings = settings_of(ctx)
    checked = check(settings)
    for note in checked.notes:
        console.print(f"[dim]note:[/] {note}")
    _refuse(checked.problems)
    console.print(
        f"[green]ok[/]: {len(checked.pipelines.indexes)} indexes and "
        f"{len(checked.pipelines.mirrors)} mirrors in {settings.pipelines.dir}"
    )


@app.command("plan")
def plan(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Say what `apply` would change: indexes, settings, reindexes, warehouse tables and
    columns; change nothing."""
    settings = settings_of(ctx)
    checked, steps = _planned(settings)
    _print(steps, as_json)
    if not as_json:
        for note in checked.notes:
            console.print(f"[dim]note:[/] {note}")


@app.command("apply")
def apply(ctx: typer.Context) -> None:
    """Validate and plan everything, then create indexes, update settings, reindex, and create
    or extend the warehouse tables."""
    from batch import io
    from batch.jobs import mirror as mirrors
    from batch.mirror_transforms import MirrorShape
    from indexers.catalog import client, ensure_index
    from indexers.cli import run_reindex

    settings = settings_of(ctx)
    checked, steps = _planned(settings)
    _print(steps, False)
    es = client(settings.elasticsearch)
    for step in steps:
        if step.kind == "index":
            index = checked.indexes[step.name]
            if step.action in ("create", "update settings"):
                console.print(f"{index.alias} -> {ensure_index(es, index.spec)}")
            elif step.action == "reindex":
                run_reindex(settings, index, drop_old=False)
        elif step.action != "nothing":
            mirror = checked.pipelines.mirror(step.name)
            with io.connect(settings) as conn:
                io.ensure_schema(conn)
                mirrors.ensure_tables(
                    conn,
                    mirrors.job_name(mirror.name),
                    MirrorShape.of(mirror),
                    mirrors.Target.of(mirror),
                    mirror.history,
                )
            console.print(f"{step.target}: {step.action}")
