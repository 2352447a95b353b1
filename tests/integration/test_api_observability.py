"""The API as `headwater run` serves it (`python -m api.serve`, two processes), on the real
stack: a request's id in its answer, its log line and the `X-Opaque-Id` of the Elasticsearch
request it causes; personal data masked in the log; `/metrics` counting each request once per
route template whichever process served it, and showing the pipeline's lag.

Elasticsearch is reached through a recording proxy: a real HTTP server in this process that
forwards every request to the real Elasticsearch and keeps its headers.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.serve import ServedApi
from headwater.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SEARCH = "/api/v1/indexes/products/search"
SEARCH_ROUTE = "/api/v1/indexes/{index}/search"
# Not forwarded as they came: the proxy's own connection and length.
_HOP = {"host", "connection", "content-length", "transfer-encoding", "accept-encoding"}


class RecordingProxy:
    """Forwards to `upstream`, keeping (method, path, headers) of each request."""

    def __init__(self, settings: Settings) -> None:
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.upstream = upstream = httpx.Client(
            base_url=settings.elasticsearch.url,
            timeout=30,
            **settings.elasticsearch.httpx_options(),
        )
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k.lower(): v for k, v in self.headers.items()}
                proxy.seen.append((self.command, self.path, headers))
                answer = upstream.request(
                    self.command,
                    self.path,
                    content=body,
                    headers={k: v for k, v in headers.items() if k not in _HOP},
                )
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() not in _HOP | {"content-encoding"}:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer.content)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = forward

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def opaque_ids(self) -> list[str]:
        return [h["x-opaque-id"] for _, path, h in self.seen if "x-opaque-id" in h]


@pytest.fixture(scope="module")
def proxy(stack: Settings) -> Iterator[RecordingProxy]:
    recording = RecordingProxy(stack)
    recording.thread.start()
    yield recording
    recording.server.shutdown()
    recording.server.server_close()
    recording.upstream.close()


@pytest.fixture(scope="module")
def api(proxy: RecordingProxy, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApi]:
    log = tmp_path_factory.mktemp("api") / "api.log"
    # Open (no keys): what is tested is traceability, not access control.
    env = {
        "HW_ES_URL": proxy.url,
        "HW_API_METRICS_LAG_MAX_AGE_S": "1",
        "HW_API_ANONYMOUS": "true",
        "HW_API_RATE_LIMITS": "false",
    }
    with ServedApi(log, processes=2, env=env) as served:
        yield served


def _log_lines(log: Path, needle: str, timeout_s: float = 10.0) -> list[str]:
    """The lines of the API's log holding `needle`, once there is one (it writes them as it
    answers, from two processes)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = [line for line in log.read_text().splitlines() if needle in line]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_a_request_id_is_in_the_answer_the_log_and_the_elasticsearch_request(
    api: ServedApi, proxy: RecordingProxy
) -> None:
    rid = f"it-{uuid.uuid4().hex}"
    response = httpx.get(
        f"{api.url}{SEARCH}", params={"q": "kettle"}, headers={"X-Request-ID": rid}, timeout=30
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == rid
    assert response.json()["meta"]["requestId"] == rid
    assert rid in proxy.opaque_ids()
    (line,) = _log_lines(api.log, f"[{rid}]")
    assert f"access [{rid}] 127.0.0.1:" in line
    assert f'"GET {SEARCH}?q=kettle HTTP/1.1" 200' in line
    # A request of its own, its own id: nothing of one request is labelled with another's.
    other = httpx.get(f"{api.url}/health/live", timeout=10).headers["x-request-id"]
    assert other != rid and _log_lines(api.log, f"[{other}]")


def test_emails_and_personal_fields_are_masked_in_the_log(api: ServedApi) -> None:
    rid = f"it-{uuid.uuid4().hex}"
    email = "ann.smith@example.com"
    response = httpx.get(
        f"{api.url}{SEARCH}",
        params={"q": email, "name": "Ann Smith"},
        headers={"X-Request-ID": rid},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    (line,) = _log_lines(api.log, f"[{rid}]")
    assert "ann.smith" not in line and "Ann" not in line
    assert "q=***@***" in line and "name=***" in line


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _requests(found: dict[Any, float], route: str, status_class: str) -> float:
    labels = frozenset({("route", route), ("method", "GET"), ("status_class", status_class)})
    return found.get(("headwater_api_requests_total", labels), 0.0)


def test_metrics_count_each_request_once_per_route_template_across_processes(
    api: ServedApi,
) -> None:
    before = _samples(httpx.get(f"{api.url}/metrics", timeout=60).text)
    with httpx.Client(base_url=api.url, timeout=30) as client:
        for i in range(20):
            # A new connection each time, so both processes get some.
            assert (
                client.get(
                    SEARCH, params={"q": f"kettle {i}"}, headers={"Connection": "close"}
                ).status_code
                == 200
            )
        for i in range(3):
            assert client.get(f"/nowhere/{i}").status_code == 404
    after_text = httpx.get(f"{api.url}/metrics", timeout=60).text
    after = _samples(after_text)
    assert _requests(after, SEARCH_ROUTE, "2xx") - _requests(before, SEARCH_ROUTE, "2xx") == 20
    assert _requests(after, "unmatched", "4xx") - _requests(before, "unmatched", "4xx") == 3
    assert "/nowhere" not in after_text and "kettle" not in after_text
    count = ("headwater_api_request_duration_seconds_count",
             frozenset({("route", SEARCH_ROUTE), ("method", "GET")}))  # fmt: skip
    assert after[count] - before.get(count, 0.0) == 20


def test_metrics_show_the_pipeline_lag_per_stage(api: ServedApi) -> None:
    """Two scrapes over a second apart (the look is kept a second here): the second compares
    two looks, so each stage also has its state."""
    deadline = time.monotonic() + 60
    while True:
        found = _samples(httpx.get(f"{api.url}/metrics", timeout=60).text)
        states = {
            dict(labels)["stage"]: dict(labels)["state"]
            for (name, labels), value in found.items()
            if name == "headwater_pipeline_state" and value == 1.0
        }
        if states or time.monotonic() > deadline:
            break
        time.sleep(1.5)
    assert found[("headwater_pipeline_sample_up", frozenset())] == 1.0
    assert {"source", "wal", "kafka", "worker"} <= states.keys(), states
    assert all(state in ("ok", "busy", "stalled", "down") for state in states.values())
    assert any(name == "headwater_pipeline_behind" for name, _ in found)
