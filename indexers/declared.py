"""The declared indexes, ready to use: each with its alias, its shaper and its bound source.

Built once at an entry point (a CLI command, the worker, the API) from the declarations and
their bindings (`connectors.sources.resolve`), and passed down.
"""

from __future__ import annotations

from dataclasses import dataclass

from headwater.pipelines.declarations import Binding, Pipelines, Source
from indexers.catalog import IndexSpec
from indexers.documents import Shaper


@dataclass(frozen=True)
class DeclaredIndex:
    spec: IndexSpec
    shaper: Shaper
    binding: Binding
    # The change topic of each summarised child table, by summary name.
    child_topics: dict[str, str]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def alias(self) -> str:
        return self.spec.alias

    @property
    def topic(self) -> str:
        return self.binding.topic

    @property
    def dsn(self) -> str:
        return self.binding.dsn


class UnknownIndex(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def declared_indexes(
    pipelines: Pipelines, bindings: dict[Source, Binding], prefix: str = ""
) -> dict[str, DeclaredIndex]:
    """Every declared index (its transform imported now, so a bad one fails at start-up)."""
    out = {}
    for name, declaration in pipelines.indexes.items():
        out[name] = DeclaredIndex(
            IndexSpec(declaration, prefix),
            Shaper(declaration),
            bindings[declaration.source],
            {s.name: bindings[s.source].topic for s in declaration.summaries},
        )
    return out


def pick(indexes: dict[str, DeclaredIndex], name: str) -> DeclaredIndex:
    try:
        return indexes[name]
    except KeyError:
        known = ", ".join(sorted(indexes)) or "none declared"
        raise UnknownIndex(f"unknown index {name!r}; known: {known}") from None
