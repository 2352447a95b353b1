"""Dead letters on the real stack: one per failing consumer, and a redrive after the fix that
reaches that consumer alone, never overwrites newer data and does nothing the second time.

A worker of its own reads change topics of its own (Debezium-shaped records written straight
to Kafka), feeding the dashboards and a search index declared over the same interactions: a
record can fail for the index and succeed for the dashboards. Elasticsearch is made to refuse
the index's writes (a default ingest pipeline that does not exist: every write is a 400), which
the test then fixes, as an operator would fix a mapping or a pipeline.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from headwater.resilience import DeadLetter
from headwater.settings import PROJECT_ROOT, Settings
from indexers.catalog import client
from streams.dashboards import synthetic
from streams.dashboards.harness import ApiServer, Sandbox, panel, wait_for
from streams.deadletters.logic import REDRIVEN, current, mark_key
from streams.deadletters.store import Redriver, read_letters, read_marks
from streams.process import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(300)]

INDEX = """\
name: interactions
source: {connector: shop-source, table: public.interactions}
id: id
fields:
  id: {type: bigint, filter: true, sort: true}
  customer_id: {type: bigint, filter: true}
  product_id: {type: bigint, filter: true}
  kind: {type: text, search: true, facet: true}
  occurred_at: {type: timestamptz, sort: true}
columns: [id, customer_id, kind]
"""
SEARCH = "search:interactions"
DASHBOARDS = "dashboards:interactions"


class Run:
    def __init__(self, stack: Settings, tmp: Path) -> None:
        self.stack = stack
        self.sandbox = Sandbox(kafka=stack.kafka, work_dir=tmp, lateness_s=3600.0)
        suffix = uuid.uuid4().hex[:8]
        self.app_id = f"hw-test-dlq-{suffix}"
        self.alias = f"t-dlq-{suffix}-interactions"
        (tmp / "pipelines" / "indexes").mkdir(parents=True)
        (tmp / "pipelines" / "indexes" / "interactions.yaml").write_text(INDEX)
        port = 6000 + int(suffix[:4], 16) % 150
        self.env = {
            **os.environ,
            "HW_KAFKA_TOPIC_PREFIX": self.sandbox.prefix,
            "HW_PIPELINES_DIR": str(tmp / "pipelines"),
            "HW_STREAMS_APP_ID": self.app_id,
            "HW_INDEXES_PREFIX": f"t-dlq-{suffix}-",
            "HW_STREAMS_WEB_PORT": str(port),
            "HW_STREAMS_DATA_DIR": str(tmp / "streams"),
            "HW_STREAMS_AUTO_OFFSET_RESET": "earliest",
            "HW_DASHBOARDS_UPDATES_TOPIC": self.sandbox.dashboard_settings.updates_topic,
            "HW_DASHBOARDS_ALLOWED_LATENESS_S": "3600",
        }
        self.worker = WorkerProcess(self.env, port, tmp / "worker.log")
        self.producer = self.sandbox.producer()
        self.es = client(stack.elasticsearch)

    def send(self, key: bytes, value: bytes) -> None:
        self.producer.produce(self.sandbox.topic("interactions"), key=key, value=value)
        self.producer.flush(10)

    def refuse_writes(self, refuse: bool) -> None:
        pipeline = f"{self.app_id}-absent" if refuse else "_none"
        self.es.indices.put_settings(
            index=self.alias, settings={"index.default_pipeline": pipeline}
        )

    def doc(self, doc_id: int) -> dict[str, Any] | None:
        found = self.es.options(ignore_status=404).get(index=self.alias, id=str(doc_id))
        return dict(found.body) if found.body.get("found") else None

    def letters(self) -> list[DeadLetter]:
        return current(x for x in read_letters(self.stack.kafka)[0] if x.app == self.app_id)

    def dlq(self, *args: str) -> tuple[int, dict[str, Any]]:
        done = subprocess.run(
            [sys.executable, "-m", "headwater", "dlq", *args, "--json"],
            cwd=PROJECT_ROOT,
            env=self.env,
            capture_output=True,
            timeout=180,
        )
        assert done.stdout, done.stderr.decode()
        return done.returncode, json.loads(done.stdout)


@pytest.fixture
def run(stack: Settings, tmp_path: Path) -> Iterator[Run]:
    running = Run(stack, tmp_path)
    running.sandbox.create_topics()
    running.worker.start()
    yield running
    running.worker.stop()
    running.sandbox.delete_topics()
    running.es.options(ignore_status=404).indices.delete(index=f"{running.alias}*")
    running.es.options(ignore_status=404).indices.delete_index_template(name=running.alias)


def until(what: str, check: Any, timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:g} s")
        time.sleep(0.5)


def page_views(api: ApiServer) -> float | None:
    return panel(api.dashboard("engagement"), "page_views_this_minute").get("value")


def test_one_letter_per_failing_consumer_and_a_redrive_to_it_alone(run: Run) -> None:
    now = datetime.now(UTC).replace(second=20, microsecond=0)
    lsn = itertools.count(1000)
    with ApiServer(run.sandbox.kafka_settings, run.sandbox.dashboard_settings) as api:
        for i in range(1, 6):
            run.send(*synthetic.interaction(i, lsn=next(lsn), at=now, customer_id=i))
        until("the first five indexed", lambda: run.doc(5))
        wait_for(api, "engagement", lambda s: page_views(api) == 5.0)

        # The index refuses writes: interactions 6 and 7 fail there, and count on the
        # dashboards; a record nobody can read fails for both consumers.
        run.refuse_writes(True)
        run.send(*synthetic.interaction(6, lsn=next(lsn), at=now, customer_id=6))
        old_seven = next(lsn)
        run.send(*synthetic.interaction(7, lsn=old_seven, at=now, customer_id=7))
        run.send(b'{"id":99}', b"\x00not a change event")
        wait_for(api, "engagement", lambda s: page_views(api) == 7.0)

        def four_letters() -> list[DeadLetter]:
            letters = run.letters()
            return letters if len(letters) >= 4 else []

        until("the dead letters", four_letters)
        time.sleep(3)  # any letter too many would show by now
        letters = run.letters()
        by = {(x.consumer, x.key, x.stage.split(":")[0]) for x in letters}
        assert by == {
            (SEARCH, '{"id":6}', "index"),
            (SEARCH, '{"id":7}', "index"),
            (SEARCH, '{"id":99}', "decode"),
            (DASHBOARDS, '{"id":99}', "decode"),
        }, letters
        assert all(x.attempts == 1 and x.app == run.app_id for x in letters)
        poison_first_seen = {x.consumer: x.first_seen for x in letters if x.key == '{"id":99}'}

        # The fix; and meanwhile a newer change of interaction 7, which the redrive of its
        # older change must not overwrite.
        run.refuse_writes(False)
        run.send(*synthetic.change("interactions", {
            "id": 7, "customer_id": 777, "product_id": 1, "kind": "page_view", "query": None,
            "occurred_at": synthetic.iso(now)}, lsn=next(lsn), op="u"))  # fmt: skip
        until("the newer change of 7", lambda: (run.doc(7) or {}).get("_source", {}).get(
            "customer_id") == 777)  # fmt: skip
        assert run.doc(6) is None

        code, dry = run.dlq("redrive", "--consumer", SEARCH, "--dry-run")
        assert code == 0 and len(dry["would_redrive"]) == 3
        assert run.doc(6) is None  # a dry run writes nothing

        code, result = run.dlq("redrive", "--consumer", SEARCH, "--timeout", "60")
        assert result["summary"] == {
            "asked": 3, "redriven": 2, "failed": 1, "already": 0, "unknown": 0, "pending": 0,
        }, result  # fmt: skip
        assert code == 1  # the poison record failed again
        six = run.doc(6)
        assert six is not None and six["_source"]["customer_id"] == 6
        seven = run.doc(7)
        assert seven is not None and seven["_source"]["customer_id"] == 777  # newer data kept
        time.sleep(3)  # had the dashboards seen the redrive, they would have counted again
        assert page_views(api) == 7.0

        # The poison record failed again for the search consumer only: attempt 2, first seen
        # kept; the dashboards' letter of it is untouched.
        letters = {(x.consumer, x.key): x for x in run.letters()}
        again = letters[(SEARCH, '{"id":99}')]
        assert again.attempts == 2 and again.first_seen == poison_first_seen[SEARCH]
        assert again.last_seen > again.first_seen
        assert letters[(DASHBOARDS, '{"id":99}')].attempts == 1
        marks = read_marks(run.stack.kafka, run.app_id)
        assert marks[mark_key(letters[(SEARCH, '{"id":6}')])].outcome == REDRIVEN

        # A second redrive finds nothing left to do for the fixed letters...
        code, result = run.dlq("redrive", "--consumer", SEARCH, "--key", "6")
        assert code == 0 and result["would_redrive"] == []
        code, listed = run.dlq("list", "--all", "--key", "6")
        assert [x["status"] for x in listed["letters"]] == [REDRIVEN]
        # ...and a worker asked again anyway applies nothing twice.
        version = run.doc(6)["_version"]  # type: ignore[index]
        redriver = Redriver(run.stack.kafka, run.app_id)
        progress = redriver.send([letters[(SEARCH, '{"id":6}')]])
        redriver.follow(progress, 60, lambda key, mark: None)
        redriver.close()
        assert progress.summary()["already"] == 1
        assert run.doc(6)["_version"] == version  # type: ignore[index]

        # The dashboards' own letter goes to the dashboards alone (and fails again there).
        code, result = run.dlq("redrive", "--consumer", DASHBOARDS)
        assert result["summary"]["failed"] == 1 and code == 1
        letters = {(x.consumer, x.key): x for x in run.letters()}
        assert letters[(DASHBOARDS, '{"id":99}')].attempts == 2
        assert letters[(SEARCH, '{"id":99}')].attempts == 2
        time.sleep(2)
        assert page_views(api) == 7.0

        code, shown = run.dlq("show", letters[(DASHBOARDS, '{"id":99}')].id)
        assert shown["consumer"] == DASHBOARDS and shown["attempts"] == 2
