"""A chaos scenario passes only with nothing lost, stale or extra, and a timely recovery."""

from __future__ import annotations

import json
import uuid
from types import SimpleNamespace

import pytest

from headwater.cli.chaos import (
    RECOVERY_GOAL_S,
    SCENARIOS,
    Outcome,
    _absent_id,
    _hot_column,
    _next_window_start,
    _wrong_type_change,
)
from headwater.pipelines.declarations import IndexDeclaration, Pipelines
from indexers.documents import ShapeError, Shaper


def test_a_scenario_passes_only_clean_and_recovered_in_time() -> None:
    def outcome(**kw: object) -> Outcome:
        return Outcome("s", "f", 100, 50.0, **{"recovery_s": 2.0, **kw})  # type: ignore[arg-type]

    assert outcome().ok
    assert not outcome(lost=1).ok and not outcome(stale=1).ok and not outcome(extra=1).ok
    assert not outcome(unhandled=1).ok  # a bad record not dead-lettered
    assert not outcome(broken=["readiness 200"]).ok
    assert not outcome(recovery_s=None).ok  # never equal to the source again
    assert not outcome(recovery_s=RECOVERY_GOAL_S + 1).ok
    assert outcome(duplicates=7, dead_letters=2).ok  # duplicates are no-ops, not failures


def test_scenario_names_are_unique() -> None:
    names = [s.name for s in SCENARIOS]
    assert len(names) == len(set(names)) >= 7


# The scenarios work on any declared table, not only the shop's ------------------------------
def _index(declaration: IndexDeclaration) -> SimpleNamespace:
    return SimpleNamespace(shaper=Shaper(declaration))


def _declared(id_type: str, fields: dict[str, str]) -> IndexDeclaration:
    return IndexDeclaration.model_validate(
        {
            "name": "things",
            "source": {"connector": "mine", "table": "inventory.things"},
            "id": ["code"],
            "fields": {"code": {"type": id_type}, **{n: {"type": t} for n, t in fields.items()}},
        }
    )


@pytest.mark.parametrize(
    ("id_type", "absent"),
    [("bigint", -7), ("text", "headwater-chaos-absent"), ("uuid", str(uuid.UUID(int=7)))],
)
def test_a_wrong_type_change_is_for_an_absent_row_and_refused_by_its_shaper(
    id_type: str, absent: object
) -> None:
    index = _index(_declared(id_type, {"label": "text", "weight": "integer"}))
    made = _wrong_type_change(index)
    assert made is not None
    key, change = made
    assert json.loads(key) == {"code": absent}
    assert change["code"] == absent and change["__op"] == "c" and change["__table"] == "things"
    with pytest.raises(ShapeError, match="weight"):
        index.shaper.shape(change)
    # The wrong value is the change's only fault.
    assert index.shaper.shape({**change, "weight": 3}).id


def test_no_wrong_type_change_when_every_field_takes_text() -> None:
    assert _wrong_type_change(_index(_declared("text", {"label": "text"}))) is None
    assert _absent_id(_index(_declared("boolean", {"label": "text"}))) is None


def test_hot_rows_change_a_number_or_a_text_column_or_else_touch_the_row() -> None:
    assert _hot_column(_index(_declared("bigint", {"label": "text", "n": "integer"})))[0] in (
        "label",
        "n",
    )
    column, _, counted = _hot_column(_index(_declared("bigint", {"flag": "boolean"})))
    assert (column, counted) == ("code", False)


def test_the_shops_indexes_have_a_wrong_type_change(shop: Pipelines) -> None:
    index = _index(shop.index("products"))
    made = _wrong_type_change(index)
    assert made is not None
    wrong = [c for c, v in made[1].items() if isinstance(v, str) and v.startswith("\u0000")]
    assert len(wrong) == 1
    assert index.shaper.shape({**made[1], wrong[0]: None}).id


def test_a_run_begins_on_the_next_minute() -> None:
    assert _next_window_start(60, 1_000_000.5) == 1_000_020.0
    assert _next_window_start(60, 1_000_020.0) == 1_000_020.0
