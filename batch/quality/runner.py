"""Run the suites over pandas frames and write a readable Markdown report of the verdict."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import great_expectations as gx
    import pandas as pd


@dataclass(frozen=True)
class Check:
    table: str
    expectation: str
    arguments: dict[str, Any]
    success: bool
    observed: str


@dataclass(frozen=True)
class Verdict:
    checks: list[Check] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return all(c.success for c in self.checks)

    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.success]


def _observed(result: Mapping[str, Any]) -> str:
    if "observed_value" in result:
        return f"observed {result['observed_value']}"
    if "unexpected_count" in result:
        sample = result.get("partial_unexpected_list") or []
        return f"{result['unexpected_count']} unexpected, e.g. {sample[:5]}"
    return ""


def validate(
    frames: Mapping[str, pd.DataFrame], suites: Mapping[str, gx.ExpectationSuite]
) -> Verdict:
    """Validate each frame against the suite of the same name; every expectation is reported."""
    # No usage statistics leave the machine, and no progress bars clutter the job's log.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    source = context.data_sources.add_pandas("warehouse")
    checks: list[Check] = []
    for table, suite in suites.items():
        definition = source.add_dataframe_asset(table).add_batch_definition_whole_dataframe(table)
        batch = definition.get_batch(batch_parameters={"dataframe": frames[table]})
        outcome = batch.validate(suite)
        for r in outcome.results:
            config = r.expectation_config
            assert config is not None
            arguments = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
            checks.append(
                Check(table, config.type, arguments, bool(r.success), _observed(r.result))
            )
    return Verdict(checks)


def write_report(verdict: Verdict, reports_dir: Path, title: str) -> Path:
    """A Markdown report, named after the run, in `reports_dir` (git-ignored)."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    path = reports_dir / f"{now:%Y%m%dT%H%M%S%f}-{slug}.md"
    verdict_text = "PASSED" if verdict.success else "FAILED"
    lines = [
        f"# {title}: data quality {verdict_text}",
        "",
        f"Validated {now:%Y-%m-%d %H:%M:%S} UTC; {len(verdict.checks)} expectations, "
        f"{len(verdict.failed())} failed.",
        "",
        "| table | expectation | arguments | result | observed |",
        "| --- | --- | --- | --- | --- |",
    ]
    ordered = sorted(verdict.checks, key=lambda c: (c.success, c.table))
    for c in ordered:
        args = ", ".join(f"{k}={v}" for k, v in c.arguments.items())
        mark = "pass" if c.success else "**FAIL**"
        observed = c.observed.replace("|", "\\|")
        lines.append(f"| {c.table} | {c.expectation} | {args} | {mark} | {observed} |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
