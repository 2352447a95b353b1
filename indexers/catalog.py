"""The search indexes: their names, aliases and templates, and creating them when missing.

Every declared index lives behind an alias (`products` -> `products-v1`): clients and workers
only ever name the alias, so `reindex` can build `products-v2` and swap the alias in one atomic
step. The alias filters on `hw_live: true`, hiding the dead markers deleted rows leave behind
(see `indexers.documents`). Templates are generated from the declarations (`indexers.mapping`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from elasticsearch import AsyncElasticsearch, Elasticsearch
from elasticsearch import BadRequestError as ESBadRequest

from headwater.pipelines.declarations import IndexDeclaration
from headwater.settings import ElasticsearchSettings
from indexers import mapping
from indexers.documents import LIVE

LIVE_FILTER: dict[str, Any] = {"term": {LIVE: True}}
# Index settings fixed at creation; a change to them takes `headwater indexers reindex`.
STATIC_SETTINGS = frozenset({"number_of_shards", "index.number_of_shards", "analysis"})


@dataclass(frozen=True)
class IndexSpec:
    """One declared index, named under a prefix so tests get their own."""

    declaration: IndexDeclaration
    prefix: str = ""

    @property
    def name(self) -> str:
        return self.declaration.name

    @property
    def alias(self) -> str:
        return f"{self.prefix}{self.name}"

    @property
    def template_name(self) -> str:
        return self.alias

    def versioned(self, version: int) -> str:
        return f"{self.alias}-v{version}"

    def version_of(self, index: str) -> int | None:
        match = re.fullmatch(re.escape(self.alias) + r"-v(\d+)", index)
        return int(match.group(1)) if match else None

    def template(self) -> dict[str, Any]:
        return mapping.template(self.declaration, self.alias)

    def dynamic_settings(self) -> dict[str, Any]:
        """The template's settings that a live index takes without a reindex (not shards)."""
        settings = self.template()["template"]["settings"]
        return {k: v for k, v in settings.items() if k not in STATIC_SETTINGS}

    def alias_body(self) -> dict[str, Any]:
        return {"filter": LIVE_FILTER, "is_write_index": True}


def client(settings: ElasticsearchSettings, timeout_s: float = 30.0) -> Elasticsearch:
    return Elasticsearch(settings.url, **settings.client_options(), request_timeout=timeout_s)


def async_client(settings: ElasticsearchSettings, timeout_s: float = 30.0) -> AsyncElasticsearch:
    return AsyncElasticsearch(settings.url, **settings.client_options(), request_timeout=timeout_s)


def _already_exists(exc: ESBadRequest) -> bool:
    return "resource_already_exists_exception" in str(exc)


def ensure_index(es: Elasticsearch, index: IndexSpec) -> str:
    """Install the template and create version 1 behind the alias if the alias is missing.

    Returns the index the alias points to. Idempotent and safe to race.
    """
    es.indices.put_index_template(name=index.template_name, **index.template())
    if not es.indices.exists_alias(name=index.alias):
        try:
            es.indices.create(index=index.versioned(1), aliases={index.alias: index.alias_body()})
        except ESBadRequest as exc:
            if not _already_exists(exc):
                raise
    es.indices.put_settings(index=index.alias, settings=index.dynamic_settings())
    current = current_index(es, index)
    if current is None:
        raise RuntimeError(f"alias {index.alias} points nowhere after creating it")
    return current


class MappingOutdated(RuntimeError):
    """The live index was built from another declaration: writing to it would be refused."""


async def ensure_index_async(es: AsyncElasticsearch, index: IndexSpec) -> None:
    """`ensure_index` for the workers; refuses an index whose mapping is not the declared one
    (`MappingOutdated`) rather than have every write to it rejected."""
    await es.indices.put_index_template(name=index.template_name, **index.template())
    if not await es.indices.exists_alias(name=index.alias):
        try:
            await es.indices.create(
                index=index.versioned(1), aliases={index.alias: index.alias_body()}
            )
        except ESBadRequest as exc:
            if not _already_exists(exc):
                raise
    await es.indices.put_settings(index=index.alias, settings=index.dynamic_settings())
    live = (await es.indices.get_mapping(index=index.alias)).body
    for name, body in live.items():
        changes = mapping.mapping_changes(
            index.template()["template"]["mappings"], body["mappings"]
        )
        if changes:
            raise MappingOutdated(
                f"{index.alias} ({name}) does not have the declared mapping ({'; '.join(changes)}):"
                " run `headwater pipelines apply` to build a new version of it"
            )


def current_index(es: Elasticsearch, index: IndexSpec) -> str | None:
    if not es.indices.exists_alias(name=index.alias):
        return None
    names = list(es.indices.get_alias(name=index.alias).body)
    return names[0] if names else None


def versions(es: Elasticsearch, index: IndexSpec) -> list[int]:
    found = es.indices.get(index=f"{index.alias}-v*", allow_no_indices=True).body
    return sorted(v for v in (index.version_of(name) for name in found) if v is not None)
