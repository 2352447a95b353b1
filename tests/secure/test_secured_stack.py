"""The secured mode, on a stack started with HW_STACK_SECURE=true (`make test` starts one on
ports of its own): nothing answers without credentials, every client of ours authenticates,
and no service shows a secret.

`scripts/test.sh` runs these after the search path and a batch load from tests/integration,
against the same secured stack; plain runs of the suite leave this folder out.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from headwater.secrets import find_leaks, searchable
from headwater.settings import PROJECT_ROOT, Settings

HEADWATER = str(PROJECT_ROOT / ".venv" / "bin" / "headwater")


@pytest.fixture(scope="module", autouse=True)
def secured(stack: Settings) -> Settings:
    assert stack.stack.secure, "run with HW_STACK_SECURE=true against the secured stack"
    return stack


def test_kafka_refuses_a_client_without_the_right_credentials(stack: Settings) -> None:
    quick = {"socket.timeout.ms": 3000, "log_level": 0}
    for config in (
        {"bootstrap.servers": stack.kafka.bootstrap_servers},
        {**stack.kafka.client_config(), "sasl.password": "not-the-password"},
    ):
        with pytest.raises(KafkaException):
            AdminClient({**config, **quick}).list_topics(timeout=5)
    metadata = AdminClient({**stack.kafka.client_config()}).list_topics(timeout=10)
    assert stack.kafka.cdc_topic("products") in metadata.topics


def test_elasticsearch_answers_only_over_verified_tls_with_credentials(stack: Settings) -> None:
    es = stack.elasticsearch
    assert es.url.startswith("https://") and es.ca_certs is not None
    health = f"{es.url}/_cluster/health"
    trusted = ssl.create_default_context(cafile=str(es.ca_certs))
    assert httpx.get(health, verify=trusted).status_code == 401
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(health)  # the system's CAs do not know the local CA
    with pytest.raises(httpx.HTTPError):
        httpx.get(health.replace("https://", "http://"), timeout=5)
    assert httpx.get(health, **es.httpx_options()).json()["status"] in ("green", "yellow")
    key = Path(str(es.ca_certs)).with_name("http.key")
    assert key.stat().st_mode & 0o777 == 0o600


def test_connect_keeps_references_and_shows_no_secret(stack: Settings) -> None:
    base = f"{stack.connect.url}/connectors/shop-source"
    config = httpx.get(f"{base}/config").json()
    assert config["database.password"] == "${env:HW_PG_PASSWORD}"
    secrets = searchable(stack.secret_values())
    for what in ("config", "tasks", "status"):
        body = httpx.get(f"{base}/{what}").content
        assert find_leaks(what, body, secrets) == []
    assert httpx.get(f"{base}/status").json()["connector"]["state"] == "RUNNING"


def _headwater(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [HEADWATER, *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )


def test_the_cli_works_against_the_secured_stack(stack: Settings) -> None:
    status = _headwater("stack", "status", "--json")
    assert status.returncode == 0, status.stderr
    states = {s["service"]: s["state"] for s in json.loads(status.stdout)}
    assert set(states.values()) == {"healthy"}, states
    plan = _headwater("pipelines", "plan", "--json")
    assert plan.returncode == 0, plan.stderr
    connectors = _headwater("connectors", "status", "--json")
    assert connectors.returncode == 0, connectors.stderr
    secrets = searchable(stack.secret_values())
    for done in (status, plan, connectors):
        assert find_leaks("cli", (done.stdout + done.stderr).encode(), secrets) == []


def test_the_api_searches_the_secured_elasticsearch(stack: Settings) -> None:
    import warnings

    with warnings.catch_warnings():
        # Starlette 1.x nudges towards httpx2 for its test client; httpx works and is shipped.
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        from fastapi.testclient import TestClient

    from api.app import build_app
    from api.settings import ApiSettings
    from streams.dashboards.settings import DashboardSettings
    from streams.settings import StreamsSettings

    # With the lifespan, which closes the search routes' asyncio client (the dashboards feed
    # it also starts is not waited for). Open (no keys, no limits): what is tested is the way
    # to Elasticsearch.
    app = build_app(
        stack,
        ApiSettings(anonymous=True, rate_limits=False),
        StreamsSettings(),
        DashboardSettings(),
    )
    with TestClient(app) as api:
        response = api.get("/api/v1/indexes/products/search", params={"q": "shirt"})
    assert response.status_code == 200, response.text
    assert "hits" in response.json()["data"]
