"""The deletes a new snapshot cannot carry: which keys, and what is written for them."""

from __future__ import annotations

import orjson

from connectors.gapdeletes import Newest, delete_record, missing
from connectors.resnapshot import captured_topics, snapshot_done


def _value(op: str, lsn: int, **row: object) -> bytes:
    return orjson.dumps({**row, "__op": op, "__lsn": lsn, "__table": "t", "__deleted": "false"})


def _read(*records: tuple[int, bytes, bytes | None]) -> Newest:
    newest = Newest("p.public.t")
    for offset, (partition, key, value) in enumerate(records):
        newest.add(partition, offset, key, value)
    return newest


def test_a_key_neither_read_by_the_snapshot_nor_changed_since_is_missing() -> None:
    newest = _read(
        (0, b'{"id":1}', _value("c", 10, id=1)),
        (1, b'{"id":2}', _value("c", 11, id=2)),
        (0, b'{"id":3}', _value("c", 12, id=3)),
        (0, b'{"id":1}', _value("r", 50, id=1)),  # read again by the snapshot at 50
        (1, b'{"id":4}', _value("c", 60, id=4)),  # streamed after it
    )
    assert newest.snapshot_lsn == 50
    assert set(missing(newest, 50)) == {b'{"id":2}', b'{"id":3}'}
    assert missing(newest, 50)[b'{"id":3}'].partition == 0


def test_a_key_whose_newest_record_is_a_delete_or_tombstone_is_not_missing() -> None:
    newest = _read(
        (0, b'{"id":1}', _value("c", 10, id=1)),
        (0, b'{"id":1}', _value("d", 11, id=1)),
        (1, b'{"id":2}', _value("c", 12, id=2)),
        (1, b'{"id":2}', None),
        (1, b'{"id":3}', _value("u", 13, id=3)),
        (1, b'{"id":3}', orjson.dumps({"id": 3, "__op": "u", "__lsn": 14, "__deleted": "true"})),
    )
    assert missing(newest, 100) == {}


def test_records_that_are_no_change_events_are_counted_and_left_alone() -> None:
    newest = _read((0, b'{"id":1}', b"not json"), (0, None, _value("c", 1, id=5)))
    assert newest.records == 2 and newest.keys == {}


def test_the_delete_carries_the_last_row_at_the_snapshot_lsn() -> None:
    last = orjson.dumps(
        {"id": 7, "note": "x", "__op": "u", "__lsn": 40, "__table": "t", "__sequence": '["1","40"]'}
    )
    out = orjson.loads(delete_record(last, 99, 1234))
    assert out == {
        "id": 7,
        "note": "x",
        "__op": "d",
        "__deleted": "true",
        "__lsn": 99,
        "__source_ts_ms": 1234,
        "__table": "t",
        "__sequence": '["99","99"]',
    }


def test_a_snapshot_is_done_once_its_offset_says_so() -> None:
    during = {"lsn": 5, "snapshot": "INITIAL", "snapshot_completed": False}
    assert snapshot_done([]) is None
    assert snapshot_done([{"partition": {}, "offset": during}]) is None
    assert snapshot_done([{"offset": {**during, "last_snapshot_record": True}}]) == 5
    assert snapshot_done([{"offset": {**during, "snapshot_completed": True}}]) == 5
    assert snapshot_done([{"offset": {"lsn": 9, "lsn_proc": 9}}]) == 9


def test_the_topics_of_a_connector_come_from_its_tables_and_prefix() -> None:
    config = {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "topic.prefix": "shop",
        "table.include.list": "public.orders, app.items",
    }
    assert captured_topics("c", config) == {
        "shop.public.orders": "public.orders",
        "shop.app.items": "app.items",
    }
    routed = {**config, "transforms": "r", "transforms.r.type": "x.ByLogicalTableRouter"}
    assert captured_topics("c", routed) == {}
