"""Run the dashboards end to end on topics of their own: the benchmark and the tests use this.

A `Sandbox` names a topic prefix, app id and updates topic nobody else uses, creates the source
topics, starts and kills standalone dashboard workers (`python -m streams.dashboards.worker`) as
child processes, and serves the dashboards API from a thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from fastapi import FastAPI

from headwater.settings import KafkaSettings
from streams.dashboards.settings import DashboardSettings
from streams.dashboards.views import stream_snapshots

SOURCE_TABLES = ("orders", "order_items", "interactions", "products")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kafka_env(kafka: KafkaSettings) -> dict[str, str]:
    """`kafka`'s connection and credentials as HW_KAFKA_* variables, for a child worker."""
    env = {
        "HW_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "HW_KAFKA_SECURITY_PROTOCOL": kafka.security_protocol,
        "HW_KAFKA_SASL_MECHANISM": kafka.sasl_mechanism,
    }
    if kafka.username is not None:
        env["HW_KAFKA_USERNAME"] = kafka.username
    if kafka.password is not None:
        env["HW_KAFKA_PASSWORD"] = kafka.password.get_secret_value()
    if kafka.ssl_ca is not None:
        env["HW_KAFKA_SSL_CA"] = str(kafka.ssl_ca)
    return env


@dataclass
class Sandbox:
    kafka: KafkaSettings
    work_dir: Path
    prefix: str = field(default_factory=lambda: f"hwdash{uuid.uuid4().hex[:8]}")
    partitions: int = 3
    lateness_s: float = 120.0
    # Read another prefix's source topics (e.g. the shop's real ones) under a name of our own.
    name: str = ""
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def kafka_settings(self) -> KafkaSettings:
        """`kafka` (its servers and credentials) with the sandbox's topic prefix."""
        return self.kafka.model_copy(update={"topic_prefix": self.prefix})

    @property
    def dashboard_settings(self) -> DashboardSettings:
        return DashboardSettings(
            app_id=f"{self.name or self.prefix}-app",
            updates_topic=f"{self.name or self.prefix}.dashboards.updates",
            data_dir=self.work_dir / "state",
            allowed_lateness_s=self.lateness_s,
            heartbeat_s=2.0,
        )

    def env(self) -> dict[str, str]:
        ds = self.dashboard_settings
        env = dict(os.environ)
        env.update(
            kafka_env(self.kafka),
            HW_KAFKA_TOPIC_PREFIX=self.prefix,
            HW_DASHBOARDS_APP_ID=ds.app_id,
            HW_DASHBOARDS_UPDATES_TOPIC=ds.updates_topic,
            HW_DASHBOARDS_DATA_DIR=str(ds.data_dir),
            HW_DASHBOARDS_ALLOWED_LATENESS_S=str(self.lateness_s),
            HW_DASHBOARDS_WEB_PORT=str(free_port()),
        )
        return env

    def topic(self, table: str) -> str:
        return self.kafka_settings.cdc_topic(table)

    def create_topics(self) -> None:
        # {**...}: a dict typed as AdminClient's config, whose values may also be int or bool.
        admin = AdminClient({**self.kafka.client_config()})
        futures = admin.create_topics(
            [NewTopic(self.topic(t), self.partitions, 1) for t in SOURCE_TABLES]
        )
        for future in futures.values():
            future.result(timeout=30)

    def delete_topics(self) -> None:
        if self.name:
            return  # the source topics are borrowed (see `name`): never ours to delete
        admin = AdminClient({**self.kafka.client_config()})
        names = [n for n in admin.list_topics(timeout=10).topics if n.startswith(self.prefix)]
        if names:
            for future in admin.delete_topics(names).values():
                # Best effort: a leftover test topic harms nobody.
                with contextlib.suppress(Exception):
                    future.result(timeout=30)

    def producer(self) -> Producer:
        return Producer({**self.kafka.client_config(), "linger.ms": 5})

    def start_worker(
        self, log_name: str = "worker", env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        with (self.work_dir / f"{log_name}.log").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "streams.dashboards.worker"],
                env={**self.env(), **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.workers.append(process)
        return process

    def kill_worker(self, process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        if process.poll() is None:
            os.killpg(process.pid, sig)
            process.wait(timeout=30)

    def stop(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                self.kill_worker(process, signal.SIGTERM)


class ApiServer:
    """The dashboards API, served by uvicorn from a thread, for the tests and the benchmark."""

    def __init__(self, kafka: KafkaSettings, ds: DashboardSettings, app: FastAPI | None = None):
        from api.app import dashboards_app

        if app is None:
            app = dashboards_app(kafka, ds)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ApiServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the dashboards API did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)

    def dashboard(self, name: str) -> dict[str, Any]:
        """The dashboard's current values (the `data` of its API answer)."""
        response = httpx.get(f"{self.url}/api/v1/dashboards/{name}", timeout=30)
        response.raise_for_status()
        return dict(response.json()["data"])

    def stream(self, name: str, timeout: float = 60.0) -> Iterator[dict[str, Any]]:
        """Snapshots from the live stream, as they arrive."""
        url = f"{self.url}/api/v1/dashboards/{name}/events"
        with httpx.stream("GET", url, timeout=httpx.Timeout(10.0, read=timeout)) as response:
            yield from stream_snapshots(response.iter_lines())


def panel(snapshot: dict[str, Any], panel_id: str) -> dict[str, Any]:
    for item in snapshot["panels"]:
        if item["id"] == panel_id:
            return dict(item)
    raise KeyError(panel_id)


def wait_for(api: ApiServer, name: str, predicate: Any, timeout: float = 60.0) -> dict[str, Any]:
    """Poll a dashboard until `predicate(snapshot)` holds; the last snapshot on timeout."""
    deadline = time.monotonic() + timeout
    snapshot = api.dashboard(name)
    while not predicate(snapshot):
        if time.monotonic() > deadline:
            raise AssertionError(f"dashboard {name} never matched; last: {json.dumps(snapshot)}")
        time.sleep(0.25)
        snapshot = api.dashboard(name)
    return snapshot
