"""What applying the index declarations will do, decided before anything changes.

`source_problems` checks a declaration against its table's columns
(`connectors.sources.table_columns`) (every declared column
exists with the declared type); `plan_index` compares the generated template with the live
index: create it, update its dynamic settings in place, build a new version (`reindex`) because
its mappings or analysis changed, or nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from elasticsearch import Elasticsearch

from headwater.pipelines.declarations import IndexDeclaration
from headwater.pipelines.types import column_problem
from indexers.catalog import IndexSpec, current_index
from indexers.mapping import mapping_changes, same

Action = Literal["create", "update settings", "reindex", "nothing"]


@dataclass
class IndexPlan:
    index: str
    alias: str
    action: Action
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def source_problems(
    declaration: IndexDeclaration, columns: dict[str, str] | None, children: dict[str, Any]
) -> tuple[list[str], list[str]]:
    """(problems, notes) of a declaration against its tables' columns (`table_columns`)."""
    where = str(declaration.path or declaration.name)
    if columns is None:
        return [f"{where}: source.table: {declaration.source.table} does not exist"], []
    problems, notes = [], []
    used = set()
    for name, declared in declaration.row_fields.items():
        column = declaration.column_of(name)
        used.add(column)
        problem = column_problem(declaration.source.table, column, declared.type, columns)
        if problem:
            problems.append(f"{where}: fields.{name}: {problem}")
    ignored = [c for c in columns if c not in used and c not in declaration.drop]
    if ignored:
        notes.append(
            f"{declaration.name}: columns not indexed (neither declared nor dropped): "
            f"{', '.join(ignored)}"
        )
    for i, summary in enumerate(declaration.summaries):
        child = children.get(summary.name)
        at = f"{where}: summaries.{i}"
        if child is None:
            problems.append(f"{at}.source.table: {summary.source.table} does not exist")
            continue
        for column in dict.fromkeys((*summary.id, *summary.parent_key, *summary.columns)):
            problem = column_problem(
                summary.source.table, column, summary.columns.get(column), child
            )
            if problem:
                problems.append(f"{at}: {problem}")
    return problems, notes


def plan_index(es: Elasticsearch, index: IndexSpec) -> IndexPlan:
    template = index.template()["template"]
    current = current_index(es, index)
    if current is None:
        return IndexPlan(index.name, index.alias, "create", [f"{index.versioned(1)} is new"])
    live_mapping = es.indices.get_mapping(index=current).body[current]["mappings"]
    live_settings = es.indices.get_settings(index=current).body[current]["settings"]["index"]
    changes = mapping_changes(template["mappings"], live_mapping)
    desired_analysis = template["settings"].get("analysis")
    if desired_analysis != live_settings.get("analysis") and not same(
        desired_analysis or {}, live_settings.get("analysis") or {}
    ):
        changes.append("analysis changed")
    if changes:
        return IndexPlan(
            index.name,
            index.alias,
            "reindex",
            [f"{current} -> a new version: " + "; ".join(changes)],
        )
    stale = [
        k
        for k, v in index.dynamic_settings().items()
        if not same(v, live_settings.get(k.removeprefix("index."), None))
    ]
    if stale:
        return IndexPlan(
            index.name, index.alias, "update settings", [f"{current}: {', '.join(stale)} changed"]
        )
    return IndexPlan(index.name, index.alias, "nothing", [f"{current} is up to date"])
