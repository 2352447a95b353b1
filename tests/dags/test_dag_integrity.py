"""Every DAG imports, has a schedule, retries with backoff, tags and no cycles; every declared
mirror has its DAG.

Airflow lives in .venv-airflow (it disagrees with faust-streaming on croniter), so the DagBag is
built by that venv's python in a subprocess that reports back as JSON. In CI a missing venv
fails; locally it skips with the command that creates it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_PYTHON = ROOT / ".venv-airflow" / "bin" / "python"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

PROBE = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag

def cyclic(dag):
    # Depth-first search over downstream edges; a grey node met again is a cycle.
    state = {}
    def visit(task_id):
        state[task_id] = "grey"
        for nxt in dag.get_task(task_id).downstream_task_ids:
            if state.get(nxt) == "grey" or (nxt not in state and visit(nxt)):
                return True
        state[task_id] = "black"
        return False
    return any(t not in state and visit(t) for t in dag.task_ids)

bag = DagBag(dag_folder=sys.argv[1])
out = {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in bag.dags.items():
    out["dags"][dag_id] = {
        "schedule": str(getattr(dag, "schedule", None)),
        "has_timetable": bool(dag.timetable.can_be_scheduled),
        "tags": sorted(dag.tags),
        "catchup": dag.catchup,
        "cyclic": cyclic(dag),
        "tasks": {t.task_id: {"retries": t.retries,
                              "backoff": bool(t.retry_exponential_backoff),
                              "command": getattr(t, "bash_command", None)} for t in dag.tasks},
    }
print("DAGBAG " + json.dumps(out))
"""


def build_dagbag(**env: str) -> dict:
    if not AIRFLOW_PYTHON.exists():
        message = f"{AIRFLOW_PYTHON} missing: run batch/airflow/setup.sh"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(ROOT / ".headwater" / "airflow-test"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        **env,
    }
    done = subprocess.run(
        [str(AIRFLOW_PYTHON), "-c", PROBE, str(ROOT / "dags")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("DAGBAG ")), None)
    assert done.returncode == 0 and line, f"DagBag failed:\n{done.stdout}\n{done.stderr}"
    return json.loads(line.removeprefix("DAGBAG "))


@pytest.fixture(scope="module")
def dagbag() -> dict:
    # The shop's declarations, wherever the environment points the pipelines directory.
    return build_dagbag(HW_PIPELINES_DIR=str(ROOT / "pipelines"))


def test_dags_import_without_errors(dagbag: dict) -> None:
    assert dagbag["errors"] == {}
    assert {"warehouse_hourly", "daily_sales", "warehouse_backfill"} <= set(dagbag["dags"])


def test_every_dag_has_a_schedule_retries_and_tags(dagbag: dict) -> None:
    for dag_id, dag in dagbag["dags"].items():
        # A DAG runs on a timer, or says it is triggered by hand with the "manual" tag.
        assert dag["has_timetable"] or "manual" in dag["tags"], dag_id
        assert dag["tags"], dag_id
        assert dag["catchup"] is False, dag_id
        for task_id, task in dag["tasks"].items():
            assert task["retries"] >= 1 and task["backoff"], f"{dag_id}.{task_id}"


def test_schedules(dagbag: dict) -> None:
    dags = dagbag["dags"]
    assert dags["warehouse_hourly"]["has_timetable"]
    assert dags["daily_sales"]["has_timetable"]
    assert not dags["warehouse_backfill"]["has_timetable"]


def test_no_cycles(dagbag: dict) -> None:
    assert not any(d["cyclic"] for d in dagbag["dags"].values())


def test_every_declared_mirror_has_a_dag_running_its_job(dagbag: dict) -> None:
    declared = sorted(p.stem for p in (ROOT / "pipelines" / "mirrors").glob("*.yaml"))
    assert declared, "the shop declares mirrors"
    mirrors = sorted(d.removeprefix("mirror_") for d in dagbag["dags"] if d.startswith("mirror_"))
    assert mirrors == declared
    for name in declared:
        dag = dagbag["dags"][f"mirror_{name}"]
        assert dag["has_timetable"] and "mirror" in dag["tags"]
        assert dag["tasks"]["mirror"]["command"].endswith(f"-m batch.jobs.mirror {name}")


def test_a_new_declaration_file_is_a_new_dag(tmp_path: Path) -> None:
    (tmp_path / "mirrors").mkdir()
    (tmp_path / "mirrors" / "things.yaml").write_text(
        "name: things\n"
        "source: {connector: shop-source, table: public.things}\n"
        "id: id\n"
        "columns: {id: bigint}\n"
        'schedule: "*/5 * * * *"\n',
        encoding="utf-8",
    )
    bag = build_dagbag(HW_PIPELINES_DIR=str(tmp_path))
    assert bag["errors"] == {}
    assert [d for d in bag["dags"] if d.startswith("mirror_")] == ["mirror_things"]
    assert bag["dags"]["mirror_things"]["schedule"] == "*/5 * * * *"
