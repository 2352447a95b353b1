"""A chaos scenario passes only with nothing lost, stale or extra, and a timely recovery."""

from __future__ import annotations

from headwater.cli.chaos import RECOVERY_GOAL_S, SCENARIOS, Outcome


def test_a_scenario_passes_only_clean_and_recovered_in_time() -> None:
    def outcome(**kw: object) -> Outcome:
        return Outcome("s", "f", 100, 50.0, **{"recovery_s": 2.0, **kw})  # type: ignore[arg-type]

    assert outcome().ok
    assert not outcome(lost=1).ok and not outcome(stale=1).ok and not outcome(extra=1).ok
    assert not outcome(recovery_s=None).ok  # never equal to the source again
    assert not outcome(recovery_s=RECOVERY_GOAL_S + 1).ok
    assert outcome(duplicates=7, dead_letters=2).ok  # duplicates are no-ops, not failures


def test_scenario_names_are_unique() -> None:
    names = [s.name for s in SCENARIOS]
    assert len(names) == len(set(names)) >= 7
