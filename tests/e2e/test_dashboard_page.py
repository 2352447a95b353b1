"""The dashboards page in headless Chromium: orders written to the source database show up live.

Source database -> Debezium -> Kafka -> a dashboards worker of this test's own (its own app id
and updates topic, reading the shop's real change topics) -> API -> the page's live stream.
The screenshot is kept under `.headwater/artifacts/`.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from websockets.sync.client import connect

from headwater.settings import PROJECT_ROOT, Settings
from streams.dashboards.harness import ApiServer, Sandbox, free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.timeout(300),
]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = PROJECT_ROOT / ".headwater" / "artifacts"


class Browser:
    """Just enough of the DevTools protocol: open a page, evaluate JS, take a screenshot."""

    def __init__(self, profile: Path) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--window-size=1400,1100",
                f"--remote-debugging-port={self.port}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                targets = httpx.get(f"http://127.0.0.1:{self.port}/json/list", timeout=2).json()
                page = next(t for t in targets if t["type"] == "page")
                break
            except (httpx.HTTPError, StopIteration):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        # Entered as a context so the websocket closes with the browser.
        self._exit = contextlib.ExitStack()
        self.ws = self._exit.enter_context(connect(page["webSocketDebuggerUrl"], max_size=None))
        self.ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self.ids)
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=30))
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        self._exit.close()
        self.process.terminate()
        self.process.wait(timeout=20)


@pytest.fixture
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed (apt-get install -y chromium)")
    # Chromium's helpers may still write to the profile as it exits: clean up leniently.
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        b = Browser(Path(profile))
        yield b
        b.close()


def _number(text: str | None) -> float | None:
    if not text or text == "—":
        return None
    return float(text.replace("$", "").replace(",", ""))


def _page_value(browser: Browser, panel_id: str) -> float | None:
    text = browser.evaluate(
        f"(document.querySelector('[data-value={panel_id}]') || {{}}).textContent || null"
    )
    return _number(text)


def test_page_shows_new_orders_live(stack: Settings, browser: Browser, tmp_path: Path) -> None:
    # The shop's real change topics, under an app id and updates topic of this test's own.
    sandbox = Sandbox(
        kafka=stack.kafka,
        work_dir=tmp_path,
        prefix=stack.kafka.topic_prefix,
        name=f"hwdash-page-{uuid.uuid4().hex[:8]}",
    )
    ds = sandbox.dashboard_settings
    sandbox.start_worker()
    try:
        with ApiServer(stack.kafka, ds) as api:
            browser.call("Page.enable")
            browser.call("Page.navigate", url=f"{api.url}/ui/dashboards#sales")
            deadline = time.monotonic() + 90
            while browser.evaluate("document.getElementById('live-text').textContent") != "live":
                assert time.monotonic() < deadline, "the page never went live"
                time.sleep(0.3)
            before = _page_value(browser, "revenue_last_15m") or 0.0

            with psycopg.connect(stack.postgres.dsn(), autocommit=True) as conn:
                customer = conn.execute(
                    "INSERT INTO customers (email, full_name, country) VALUES (%s, %s, 'NL') "
                    "RETURNING id",
                    (f"page-{uuid.uuid4().hex[:8]}@example.com", "Page Test"),
                ).fetchone()
                assert customer is not None
                for _ in range(3):
                    conn.execute(
                        "INSERT INTO orders (customer_id, status, total) VALUES (%s, 'paid', "
                        "1000.00)",
                        (customer[0],),
                    )

            deadline = time.monotonic() + 120
            shown = before
            while shown < before + 3000.0 - 0.01:
                assert time.monotonic() < deadline, f"page shows {shown}, expected +3000"
                time.sleep(0.5)
                shown = _page_value(browser, "revenue_last_15m") or 0.0
            last_event = browser.evaluate("document.getElementById('last-event').textContent")
            assert last_event and last_event not in ("—", "none yet")
            time.sleep(1.0)  # let the canvas charts draw before the picture
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            browser.screenshot(ARTIFACTS / "dashboard-sales.png")
            browser.call("Page.navigate", url=f"{api.url}/ui/dashboards#engagement")
            time.sleep(3.0)
            browser.screenshot(ARTIFACTS / "dashboard-engagement.png")
    finally:
        sandbox.stop()


def test_the_page_streams_with_an_api_key_when_the_api_wants_one(
    stack: Settings, browser: Browser
) -> None:
    """With credentials required, the page sends its key (kept for the tab) on the list and
    on the live stream, which it then reads with fetch; without it the stream would be a 401."""
    from api.app import build_app
    from api.keys import direct_store as store
    from api.settings import ApiSettings
    from headwater.cli.db import migrate
    from streams.dashboards.settings import DashboardSettings
    from streams.settings import StreamsSettings

    migrate(stack.postgres)
    keys = store(stack.postgres)
    key, token = keys.create(f"page-{uuid.uuid4().hex[:8]}", ["dashboards"])
    ds = DashboardSettings(
        updates_topic=f"hwpage-{uuid.uuid4().hex[:10]}.dashboards.updates", heartbeat_s=2.0
    )
    app = build_app(stack, ApiSettings(anonymous=False), StreamsSettings(), ds)
    try:
        with ApiServer(stack.kafka, ds, app=app) as api:
            events = httpx.get(f"{api.url}/api/v1/dashboards/sales/events", timeout=10)
            assert events.status_code == 401
            browser.call("Page.enable")
            browser.call("Page.navigate", url=f"{api.url}/health/live")
            time.sleep(1.0)
            browser.evaluate(f"sessionStorage.setItem('headwater-api-key', {json.dumps(token)})")
            browser.call("Page.navigate", url=f"{api.url}/ui/dashboards#sales")
            deadline = time.monotonic() + 60
            while browser.evaluate("document.getElementById('live-text').textContent") != "live":
                assert time.monotonic() < deadline, browser.evaluate(
                    "document.getElementById('live-text').textContent"
                )
                time.sleep(0.3)
            # The first update arrived and was drawn.
            deadline = time.monotonic() + 30
            while "events" not in (
                browser.evaluate("document.getElementById('counts').textContent") or ""
            ):
                assert time.monotonic() < deadline, "no update was drawn"
                time.sleep(0.3)
    finally:
        keys.revoke(key.id)
