"""Airflow DAGs of the declared mirrors: one per `pipelines/mirrors/<name>.yaml`, none by hand.

Generated when Airflow parses this file, from the declarations' YAML alone (name and schedule):
no project import (Airflow has its own venv), no I/O beyond reading those files. The job checks
the whole declaration when it runs; `headwater pipelines validate` checks it before.
"""

from __future__ import annotations

import os
import shlex
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

ROOT = Path(__file__).resolve().parent.parent
PYTHON = os.environ.get("HW_BATCH_PYTHON", str(ROOT / ".venv" / "bin" / "python"))
PIPELINES = Path(os.environ.get("HW_PIPELINES_DIR", str(ROOT / "pipelines")))
START = datetime(2026, 1, 1)
# The declaration's default (headwater.pipelines.declarations.MirrorDeclaration.schedule).
SCHEDULE = "@hourly"

DEFAULT_ARGS = {
    "owner": "analytics",
    "retries": 3,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=15),
    "execution_timeout": timedelta(hours=1),
}


def declarations(directory: Path) -> list[dict[str, Any]]:
    """The mirrors' YAML documents, by file name; a file that is not a mapping is an error."""
    found = []
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("name") != path.stem:
            raise ValueError(f"{path}: not a mirror declaration named {path.stem!r}")
        found.append(data)
    return found


def command(name: str) -> str:
    return f"cd {shlex.quote(str(ROOT))} && {shlex.quote(PYTHON)} -m batch.jobs.mirror " + (
        shlex.quote(name)
    )


for mirror in declarations(PIPELINES / "mirrors"):
    name = mirror["name"]
    source = mirror.get("source") or {}
    with DAG(
        dag_id=f"mirror_{name}",
        description=f"Mirror {source.get('table', name)} into the warehouse "
        f"({'current state and history' if mirror.get('history') else 'current state'}).",
        schedule=mirror.get("schedule", SCHEDULE),
        start_date=START,
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        tags=["headwater", "batch", "mirror"],
    ):
        BashOperator(task_id="mirror", bash_command=command(name))
