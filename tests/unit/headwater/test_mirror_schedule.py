"""A mirror declaration's schedule: Airflow's presets or a five-field cron line."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from headwater.pipelines.declarations import MirrorDeclaration

BASE: dict[str, Any] = {
    "name": "things",
    "source": {"connector": "shop-source", "table": "public.things"},
    "id": "id",
    "columns": {"id": "bigint"},
}


def test_hourly_unless_declared() -> None:
    assert MirrorDeclaration.model_validate(BASE).schedule == "@hourly"
    for schedule in ("@daily", "*/5 * * * *"):
        assert MirrorDeclaration.model_validate({**BASE, "schedule": schedule}).schedule == schedule


@pytest.mark.parametrize("schedule", ["", "hourly", "* * *", "@sometimes"])
def test_other_schedules_are_refused(schedule: str) -> None:
    with pytest.raises(ValidationError, match="cron line of five fields"):
        MirrorDeclaration.model_validate({**BASE, "schedule": schedule})
