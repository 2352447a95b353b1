import json

import pytest

from headwater.models import MalformedEvent, Order, decode_change


def _value(**extra: object) -> bytes:
    row = {
        "id": 7,
        "customer_id": 3,
        "status": "paid",
        "total": "12.50",
        "created_at": "2026-11-21T10:00:00.000001Z",
        "updated_at": "2026-11-21T10:00:01Z",
        "__op": "u",
        "__lsn": 123456,
        "__source_ts_ms": 1_700_000_000_000,
        "__table": "orders",
        "__deleted": "false",
    }
    row.update(extra)
    return json.dumps(row).encode()


def test_decodes_a_flattened_debezium_record() -> None:
    event = decode_change(b'{"id": 7}', _value())
    assert event is not None
    assert (event.table, event.op, event.lsn, event.deleted) == ("orders", "u", 123456, False)
    assert event.key == {"id": 7}
    assert "__lsn" not in event.row
    order = Order.model_validate(event.row)
    assert str(order.total) == "12.50"
    assert order.created_at.tzinfo is not None


def test_the_streaming_position_comes_from_debeziums_sequence() -> None:
    event = decode_change(b'{"id": 7}', _value(__sequence='["123400","123456"]'))
    assert event is not None and event.position == (123400, 123456)
    assert "__sequence" not in event.row
    # Whatever else a connector adds stays out of the row too.
    more = decode_change(b'{"id": 7}', _value(__db="shop", __ts_ms=1))
    assert more is not None and not any(k.startswith("__") for k in more.row)
    # A snapshot read has no last commit; a connector without `sequence` gives none either.
    snapshot = decode_change(b'{"id": 7}', _value(__op="r", __sequence='[null,"123456"]'))
    assert snapshot is not None and snapshot.last_commit_lsn == 0
    plain = decode_change(b'{"id": 7}', _value())
    assert plain is not None and plain.last_commit_lsn == 0


def test_delete_is_marked_deleted_whether_string_or_bool() -> None:
    for flag in ("true", True):
        event = decode_change(b'{"id": 7}', _value(__op="d", __deleted=flag))
        assert event is not None and event.deleted


def test_tombstone_is_none() -> None:
    assert decode_change(b'{"id": 7}', None) is None


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (b'{"id": 1}', b"not json", "value is not JSON"),
        (b'{"id": 1}', b"[1, 2]", "value must be a JSON object"),
        (None, _value(), "record has no key"),
        (b'{"id": 1}', b'{"id": 1}', "lacks the envelope fields __op, __lsn, __table"),
        (b'{"id": 1}', _value(__op="x"), "envelope field op"),
        (b'{"id": 1}', _value(__lsn="soon"), "envelope field lsn"),
        (b'{"id": 1}', _value(__deleted="maybe"), "__deleted must be true or false"),
        (b"\xff", _value(), "key is not JSON"),
        (b'{"id": 1}', _value(__sequence="[soon]"), "__sequence must be a pair of LSNs"),
    ],
)
def test_malformed_records_say_what_is_wrong(key, value, message) -> None:
    with pytest.raises(MalformedEvent, match=message):
        decode_change(key, value)
