"""The change-event envelope: one Debezium record (flattened by ExtractNewRecordState) as a model.

The source connector adds `__op`, `__lsn`, `__source_ts_ms`, `__table` and `__deleted` to every
row, and `__sequence` where it is asked to (Debezium's `source.sequence`); this module turns
raw Kafka key/value bytes into a `ChangeEvent` or says exactly what is wrong with them.
It does no I/O.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

Op = Literal["c", "u", "d", "r"]
# The prefix ExtractNewRecordState gives the fields it adds: every such field is the envelope's,
# not the row's, whichever fields a connector asks for (`source.db`, `ts_ms`, ...).
_META_PREFIX = "__"


class MalformedEvent(ValueError):
    """A record that cannot be read as a change event; the message names what is wrong."""


class ChangeEvent(BaseModel):
    """One committed change of one row, in source order by `lsn`."""

    model_config = ConfigDict(frozen=True)

    table: str
    op: Op
    # Position of the change in the source's write-ahead log: a later commit has a larger LSN,
    # so it orders duplicates and out-of-order deliveries of the same key.
    lsn: int
    source_ts_ms: int
    deleted: bool
    key: dict[str, Any]
    row: dict[str, Any]
    # The LSN of the last commit the connector had streamed before this change (the first half
    # of Debezium's `sequence`), 0 when the connector does not add it. With `lsn` it orders
    # the changes a connector streams: a change delivered again after a Connect crash has a
    # position at or below one already seen. Snapshot reads (`r`) have none.
    last_commit_lsn: int = 0

    @property
    def version(self) -> int:
        return self.lsn

    @property
    def position(self) -> tuple[int, int]:
        """Where the connector streamed this change: (last commit LSN, LSN)."""
        return self.last_commit_lsn, self.lsn


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    if value is None:
        return False
    raise MalformedEvent(f"__deleted must be true or false, got {value!r}")


def _load_object(raw: bytes | str, what: str) -> dict[str, Any]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:  # also invalid UTF-8
        raise MalformedEvent(f"{what} is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise MalformedEvent(f"{what} must be a JSON object, got {type(data).__name__}")
    return data


def _last_commit_lsn(sequence: Any) -> int:
    """The first half of Debezium's `sequence` (a JSON array of two LSN strings, as text)."""
    if sequence is None:
        return 0
    try:
        pair = orjson.loads(sequence) if isinstance(sequence, str) else sequence
        return int(pair[0] or 0)
    except (orjson.JSONDecodeError, TypeError, ValueError, IndexError, KeyError) as exc:
        raise MalformedEvent(f"__sequence must be a pair of LSNs, got {sequence!r}") from exc


def decode_change(key: bytes | str | None, value: bytes | str | None) -> ChangeEvent | None:
    """Decode one record. A tombstone (no value) is None: it only tells compaction to forget."""
    if value is None:
        return None
    if key is None:
        raise MalformedEvent("record has no key: change events are keyed by primary key")
    key_obj = _load_object(key, "key")
    payload = _load_object(value, "value")
    missing = [f for f in ("__op", "__lsn", "__table") if f not in payload]
    if missing:
        raise MalformedEvent(f"value lacks the envelope fields {', '.join(missing)}")
    row = {k: v for k, v in payload.items() if not k.startswith(_META_PREFIX)}
    deleted = _as_bool(payload.get("__deleted")) or payload["__op"] == "d"
    try:
        return ChangeEvent(
            table=payload["__table"],
            op=payload["__op"],
            lsn=payload["__lsn"],
            source_ts_ms=payload.get("__source_ts_ms") or 0,
            deleted=deleted,
            key=key_obj,
            row=row,
            last_commit_lsn=_last_commit_lsn(payload.get("__sequence")),
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise MalformedEvent(f"envelope field {field}: {first['msg']}") from exc
