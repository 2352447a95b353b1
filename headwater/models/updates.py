"""The dashboards' update records: what stream workers publish and the API reads.

Each worker publishes, to the compacted updates topic, the new value of every window it changed,
its progress per partition, and product labels; the API folds the whole topic into its views.
One typed model per record, keyed so that compaction keeps the latest of each, is the contract
between the two ends (`encode` at the worker, `decode` at the API).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError


class _Update(BaseModel):
    model_config = ConfigDict(frozen=True)


class WindowUpdate(_Update):
    """The value of one window of one metric on one partition, as of the latest batch."""

    type: Literal["window"] = "window"
    table: str
    metric: str
    partition: int
    start: int
    value: Any

    @property
    def key(self) -> str:
        return f"w|{self.table}|{self.metric}|{self.partition}|{self.start}"


class ProgressUpdate(_Update):
    """How far a stream's partition has been folded in."""

    type: Literal["progress"] = "progress"
    stream: str
    partition: int
    watermark_ms: int = 0
    events: int = 0
    dropped: int = 0
    last_source_ts_ms: int = 0
    max_lsn: int = 0
    offset: int = -1

    @property
    def key(self) -> str:
        return f"p|{self.stream}|{self.partition}"


class LabelUpdate(_Update):
    """What the dashboards show for an id (a product's name and category)."""

    type: Literal["label"] = "label"
    kind: Literal["product"] = "product"
    id: int
    name: str
    category: str

    @property
    def key(self) -> str:
        return f"l|{self.kind}|{self.id}"


Update = Annotated[WindowUpdate | ProgressUpdate | LabelUpdate, Field(discriminator="type")]
_UPDATE: TypeAdapter[Update] = TypeAdapter(Update)


def encode(update: WindowUpdate | ProgressUpdate | LabelUpdate) -> tuple[bytes, bytes]:
    """The Kafka key and value of an update record."""
    return update.key.encode(), update.model_dump_json().encode()


def decode(value: bytes | str) -> Update | None:
    """An update record, or None for one of a kind this version does not know."""
    try:
        return _UPDATE.validate_json(value)
    except ValidationError:
        return None
