"""The fault matrix, short: every `headwater chaos` scenario once, under a small load, on the
real stack (its processes killed, paused and restarted), each ending equal to the source."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from headwater.cli.chaos import SCENARIOS
from headwater.settings import PROJECT_ROOT, Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def test_every_scenario_ends_with_nothing_lost_and_nothing_stale(stack: Settings) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "headwater", "chaos", "--short", "--json"],
        capture_output=True,
        text=True,
        timeout=880,
        cwd=PROJECT_ROOT,
    )
    assert result.returncode in (0, 1), result.stderr[-3000:]
    assert result.stdout.strip(), result.stderr[-3000:]  # it stopped short of its table
    outcomes = {o["scenario"]: o for o in json.loads(result.stdout)}
    assert set(outcomes) == {s.name for s in SCENARIOS}
    failed = {name: o for name, o in outcomes.items() if not o["ok"]}
    assert not failed, failed
    assert all(o["lost"] == o["stale"] == o["extra"] == 0 for o in outcomes.values())
    assert outcomes["poison"]["dead_letters"] >= 2  # one per change topic the indexes read
    assert outcomes["wrong-type"]["dead_letters"] >= 1
    assert result.returncode == 0
