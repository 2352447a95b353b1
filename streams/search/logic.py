"""Search indexing, pure: a batch of one topic's change events into writes for every declared
index the topic feeds (as an index's rows, or as the children of one of its summaries).

No Faust and no I/O here. A batch is coalesced per document first (only the change with the
highest LSN of each row can matter, so a burst of updates to one row costs one write), then
shaped through `indexers.documents`, whose module docstring explains how ordering is kept.
A change that cannot be shaped becomes a dead letter naming the consumer (`Consumer.id`) it
failed for; every write carries the records it brings and their consumers (`Origin`), so a
write Elasticsearch rejects becomes a letter for each of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from headwater.models.cdc import ChangeEvent
from headwater.resilience import DeadLetter
from indexers.bulk import Action
from indexers.documents import LIVE, LSN, Params, Shaped, ShapeError, Shaper
from indexers.merge import MergeRequest
from streams.common import Record

Change = tuple[Record, ChangeEvent]


@dataclass(frozen=True)
class Consumer:
    """One use of a topic: the rows of index `shaper`, or the children of its `summary`."""

    shaper: Shaper
    alias: str
    summary: str | None = None

    @property
    def name(self) -> str:
        return self.shaper.name if self.summary is None else f"{self.shaper.name}.{self.summary}"

    @property
    def id(self) -> str:
        """The consumer's name in dead letters: stable, and unique in a worker."""
        return f"search:{self.name}"


@dataclass(frozen=True)
class Origin:
    """A record a write brings, and the consumer it brings it for."""

    record: Record
    consumer: str

    def dead_letter(self, error: str, stage: str) -> DeadLetter:
        return self.record.dead_letter(error, stage, self.consumer)


@dataclass
class Planned:
    """What a batch turns into: writes, merges per alias, and what could not be shaped."""

    actions: list[Action] = field(default_factory=list)
    merges: dict[str, list[MergeRequest]] = field(default_factory=dict)
    failures: list[DeadLetter] = field(default_factory=list)

    def merge(self, alias: str, request: MergeRequest) -> None:
        self.merges.setdefault(alias, []).append(request)

    def add(self, other: Planned) -> None:
        """Another topic's plan, written in the same call."""
        self.actions.extend(other.actions)
        for alias, requests in other.merges.items():
            self.merges.setdefault(alias, []).extend(requests)
        self.failures.extend(other.failures)


def _values(change: ChangeEvent) -> Mapping[str, Any]:
    # A delete under the default replica identity carries only the key columns in its row.
    return {**change.row, **change.key}


SHAPE = "shape"


def plan(consumers: Sequence[Consumer], changes: Sequence[Change]) -> Planned:
    """Every consumer's writes for one batch of a topic."""
    planned = Planned()
    for consumer in consumers:
        if consumer.summary is None:
            _plan_rows(consumer, changes, planned)
        else:
            _plan_children(consumer, consumer.summary, changes, planned)
    return planned


def _latest_rows(
    consumer: Consumer, changes: Sequence[Change], planned: Planned
) -> dict[str, tuple[Record, ChangeEvent, Shaped | None]]:
    """The newest change per document id (a later duplicate LSN wins a tie), shaped.

    A TOASTed field the newest change lacks is taken from an older change of the same batch.
    """
    latest: dict[str, tuple[Record, ChangeEvent, Shaped | None]] = {}
    shaper = consumer.shaper
    for record, change in changes:
        try:
            doc_id = shaper.key_id(_values(change))
            shaped = None if change.deleted else shaper.shape(change.row)
        except ShapeError as exc:
            planned.failures.append(record.dead_letter(exc, SHAPE, consumer.id))
            continue
        entry = (record, change, shaped)
        kept = latest.get(doc_id)
        if kept is not None:
            newer, older = (entry, kept) if change.lsn >= kept[1].lsn else (kept, entry)
            entry = (newer[0], newer[1], _filled(newer[2], older[2]))
        latest[doc_id] = entry
    return latest


def _filled(newer: Shaped | None, older: Shaped | None) -> Shaped | None:
    """`newer`, with the TOASTed fields it lacks taken from `older` where it has them."""
    if newer is None or older is None or not newer.keep:
        return newer
    filled = {k: older.fields[k] for k in newer.keep if k in older.fields}
    keep = tuple(k for k in newer.keep if k not in filled)
    return Shaped(newer.id, {**newer.fields, **filled}, keep)


def _plan_rows(consumer: Consumer, changes: Sequence[Change], planned: Planned) -> None:
    merged = bool(consumer.shaper.declaration.summaries)
    id_fields = consumer.shaper.declaration.id
    for doc_id, (record, change, shaped) in _latest_rows(consumer, changes, planned).items():
        if merged or (shaped is not None and shaped.keep):
            params = Params(
                lsn=change.lsn,
                live=shaped is not None,
                fields=None if shaped is None else shaped.fields,
                keep=() if shaped is None else shaped.keep,
            )
            # An insert's document is created without a read (a conflict falls back to one).
            new = change.op == "c"
            origin = (Origin(record, consumer.id),)
            planned.merge(
                consumer.alias,
                MergeRequest(doc_id, params, record.where, record.key_text, origin, new),
            )
            continue
        if shaped is None:
            values = _values(change)
            body: dict[str, Any] = {
                f: values.get(consumer.shaper.declaration.column_of(f)) for f in id_fields
            }
            body = {f: _id_document(consumer.shaper, f, v) for f, v in body.items()}
            body.update({LIVE: False, LSN: change.lsn})
        else:
            body = {**shaped.fields, LIVE: True, LSN: change.lsn}
        planned.actions.append(
            Action(
                op="index",
                index=consumer.alias,
                id=doc_id,
                body=body,
                version=change.lsn,
                where=record.where,
                key=record.key_text,
                origin=(Origin(record, consumer.id),),
            )
        )


def _id_document(shaper: Shaper, name: str, value: Any) -> Any:
    kind = shaper.types[name]
    return None if value is None else kind.to_document(kind.from_change(value))


def _plan_children(
    consumer: Consumer, summary: str, changes: Sequence[Change], planned: Planned
) -> None:
    child = consumer.shaper.child(summary)
    latest: dict[str, tuple[Record, ChangeEvent, str | None, list[Any] | None]] = {}
    for record, change in changes:
        try:
            child_id, parent_id, values = child.read(_values(change), source=False)
        except ShapeError as exc:
            planned.failures.append(record.dead_letter(exc, SHAPE, consumer.id))
            continue
        if parent_id is None:
            if change.deleted:
                planned.failures.append(
                    record.dead_letter(
                        f"a deleted {child.summary.source.table} row must carry "
                        f"{', '.join(child.summary.parent_key)} (REPLICA IDENTITY FULL)",
                        SHAPE,
                        consumer.id,
                    )
                )
            continue  # a child without a parent belongs to no summary
        kept = latest.get(child_id)
        if kept is None or change.lsn >= kept[1].lsn:
            latest[child_id] = (record, change, parent_id, None if change.deleted else values)
    per_parent: dict[str, Params] = {}
    # Every record a parent's write brings: a rejected write dead-letters each of them.
    origins: dict[str, tuple[Origin, ...]] = {}
    for child_id, (record, change, parent_id, values) in latest.items():
        assert parent_id is not None
        params = per_parent.setdefault(parent_id, Params(children={summary: {}}))
        params.children[summary][child_id] = [change.lsn, values]
        origins[parent_id] = (*origins.get(parent_id, ()), Origin(record, consumer.id))
    for parent_id, params in per_parent.items():
        record = origins[parent_id][-1].record
        planned.merge(
            consumer.alias,
            MergeRequest(parent_id, params, record.where, record.key_text, origins[parent_id]),
        )
