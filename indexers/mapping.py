"""An index declaration as an Elasticsearch index template: settings, analysis and mappings.

Pure. Settings are those of a one-node stack: one primary shard and no replicas (a replica could
never be assigned and would turn the cluster yellow; more shards only add per-shard refresh and
merge work on 2 cores). `refresh_interval` 100 ms: a change becomes searchable at the next
refresh, so the interval is the index's share of commit-to-searchable latency (measured with
`headwater bench freshness` on 2 cores: 200 ms gave p95 529 ms at 100 changes/s, 100 ms 266 ms).
`gc_deletes` 1 h: how long a version-aware delete is remembered; deleted rows are dead markers,
so it only guards a stray real delete against late stale writes.

A field's roles decide its mapping: a searchable field is `text` with its analyzer, and gets a
`raw` keyword sub-field when it is also a filter, facet or sort key; `suggest` adds an edge
n-gram sub-field for prefix completion; `stored_only` keeps the value without indexing it.
"""

from __future__ import annotations

from typing import Any

from headwater.pipelines.declarations import IndexDeclaration, IndexField
from indexers.documents import CHILDREN, LIVE, LSN

SETTINGS: dict[str, Any] = {
    "number_of_shards": 1,
    "number_of_replicas": 0,
    "refresh_interval": "100ms",
    "index.gc_deletes": "1h",
}
# Analysis components defined per index (the built-in ones need no definition).
ANALYSIS: dict[str, Any] = {
    "filter": {"hw_edge_ngram": {"type": "edge_ngram", "min_gram": 1, "max_gram": 20}},
    "analyzer": {
        "folding": {
            "type": "custom",
            "tokenizer": "standard",
            "filter": ["lowercase", "asciifolding"],
        },
        "autocomplete": {
            "type": "custom",
            "tokenizer": "standard",
            "filter": ["lowercase", "asciifolding", "hw_edge_ngram"],
        },
    },
}
RAW = "raw"
SUGGEST = "suggest"


def field_mapping(declared: IndexField) -> dict[str, Any]:
    kind = declared.column_type
    if declared.search:
        mapping: dict[str, Any] = {"type": "text", "analyzer": declared.analyzer}
        if declared.filter or declared.facet or declared.sort:
            mapping["fields"] = {RAW: {"type": "keyword", "ignore_above": 8191}}
    else:
        mapping = dict(kind.es)
        if declared.stored_only and mapping.get("type") not in ("object", "binary"):
            mapping.update({"index": False, "doc_values": False})
    if declared.suggest:
        mapping.setdefault("fields", {})[SUGGEST] = {
            "type": "text",
            "analyzer": "autocomplete",
            "search_analyzer": "folding",
        }
    return mapping


def mappings(declaration: IndexDeclaration) -> dict[str, Any]:
    properties = {name: field_mapping(f) for name, f in declaration.fields.items()}
    for summary in declaration.summaries:
        for name in summary.fields:
            properties[name] = dict(summary.field_type(name).es)
    properties[LIVE] = {"type": "boolean"}
    properties[LSN] = {"type": "long"}
    if declaration.summaries:
        properties[CHILDREN] = {"type": "object", "enabled": False}
    return {"dynamic": "strict", "properties": properties}


def _uses_custom_analysis(declaration: IndexDeclaration) -> bool:
    return any(f.suggest or f.analyzer == "folding" for f in declaration.fields.values())


def index_settings(declaration: IndexDeclaration) -> dict[str, Any]:
    settings = dict(SETTINGS)
    if _uses_custom_analysis(declaration):
        settings["analysis"] = ANALYSIS
    return settings


def template(declaration: IndexDeclaration, alias: str) -> dict[str, Any]:
    """The body of `PUT _index_template/<alias>` for `<alias>-v*` indexes."""
    return {
        "index_patterns": [f"{alias}-v*"],
        "priority": 200,
        "_meta": {"owner": "headwater indexers", "declaration": declaration.name},
        "template": {"settings": index_settings(declaration), "mappings": mappings(declaration)},
    }


def filter_path(declared: IndexField, name: str) -> str:
    """The indexed path that exact filters, facets and sorts use for field `name`."""
    return f"{name}.{RAW}" if declared.search else name


def same(desired: Any, actual: Any) -> bool:
    """Whether a live mapping or setting says what the declaration asks (Elasticsearch returns
    numbers as strings in settings and floats in mappings)."""
    if isinstance(desired, dict):
        return (
            isinstance(actual, dict)
            and desired.keys() == actual.keys()
            and all(same(v, actual[k]) for k, v in desired.items())
        )
    if isinstance(desired, list):
        return (
            isinstance(actual, list)
            and len(desired) == len(actual)
            and all(same(d, a) for d, a in zip(desired, actual, strict=True))
        )
    if isinstance(desired, bool) or isinstance(actual, bool):
        return str(desired).lower() == str(actual).lower()
    if isinstance(desired, int | float) and isinstance(actual, int | float | str):
        try:
            return float(desired) == float(actual)
        except ValueError:
            return False
    return str(desired) == str(actual)


def mapping_changes(desired: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Which fields a live mapping lacks, has in excess, or maps differently."""
    want, have = desired.get("properties", {}), actual.get("properties", {})
    out = [f"new field {n}" for n in want if n not in have]
    out += [f"field {n} removed" for n in have if n not in want]
    out += [
        f"field {n} mapped differently" for n in want if n in have and not same(want[n], have[n])
    ]
    if str(actual.get("dynamic", "true")) != str(desired.get("dynamic")):
        out.append("dynamic mapping changed")
    return out
