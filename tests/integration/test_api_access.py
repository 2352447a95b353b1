"""Access control and limits on the real PostgreSQL: keys made, listed and revoked with the
CLI; 401, 403 and 200 by scope; JWTs accepted and refused; 429 with Retry-After; one rate limit
shared by two API processes; the cap on live streams and resuming one by its last event id."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import psycopg
import pytest

from api.app import build_app
from api.keys import direct_store as store
from api.limits import Rate, RateLimiter, decide
from api.settings import ApiSettings
from headwater.cli.db import migrate
from headwater.settings import PROJECT_ROOT, Settings
from streams.dashboards.harness import ApiServer, free_port
from streams.dashboards.settings import DashboardSettings
from streams.settings import StreamsSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SECRET = "k" * 64
JWT = {
    "jwt_algorithms": ["HS256"],
    "jwt_key": SECRET,
    "jwt_issuer": "https://id.test",
    "jwt_audience": "headwater-test",
}


def headwater(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "headwater", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def user_token(**claims: Any) -> str:
    now = int(time.time())
    body: dict[str, Any] = {
        "sub": f"user-{uuid.uuid4().hex[:6]}",
        "iss": "https://id.test",
        "aud": "headwater-test",
        "exp": now + 300,
        "scope": "dashboards",
    } | claims
    algorithm = str(body.pop("alg", "HS256"))
    key = str(body.pop("key", SECRET))
    return jwt.encode(body, key, algorithm=algorithm)


@pytest.fixture(scope="module")
def pg(stack: Settings) -> Settings:
    migrate(stack.postgres)
    return stack


class Keys:
    """Keys made by a test, revoked when it ends."""

    def __init__(self, settings: Settings) -> None:
        self.store = store(settings.postgres)
        self.made: list[str] = []

    def make(self, *scopes: str) -> str:
        key, token = self.store.create(f"test-{uuid.uuid4().hex[:8]}", scopes)
        self.made.append(key.id)
        return token


@pytest.fixture
def keys(pg: Settings) -> Iterator[Keys]:
    made = Keys(pg)
    yield made
    for key_id in made.made:
        made.store.revoke(key_id)


def dashboard_settings() -> DashboardSettings:
    return DashboardSettings(
        updates_topic=f"hwauth-{uuid.uuid4().hex[:10]}.dashboards.updates",
        catch_up_timeout_s=10.0,
        heartbeat_s=2.0,
    )


@contextlib.contextmanager
def serve(settings: Settings, **api: Any) -> Iterator[ApiServer]:
    ds = dashboard_settings()
    app = build_app(settings, ApiSettings(**{"anonymous": False, **api}), StreamsSettings(), ds)
    with ApiServer(settings.kafka, ds, app=app) as server:
        yield server
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({**settings.kafka.client_config()})
    for future in admin.delete_topics([ds.updates_topic]).values():
        with contextlib.suppress(Exception):
            future.result(timeout=30)


@pytest.fixture(scope="module")
def api(pg: Settings) -> Iterator[ApiServer]:
    with serve(pg, **JWT) as server:
        yield server


def test_keys_are_made_listed_and_revoked_with_the_cli(pg: Settings, api: ApiServer) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    made = headwater(
        "api-keys", "create", "--name", name, "--scope", "search", "--scope", "dashboards", "--json"
    )
    assert made.returncode == 0, made.stdout + made.stderr
    created = json.loads(made.stdout)
    token = created["key"]
    assert created["scopes"] == ["search", "dashboards"] and token.startswith("hwk_")

    listed = headwater("api-keys", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (mine,) = [k for k in json.loads(listed.stdout) if k["id"] == created["id"]]
    assert mine["name"] == name and mine["revoked_at"] is None
    assert token not in listed.stdout and "secret" not in listed.stdout
    table = headwater("api-keys", "list")
    assert table.returncode == 0 and token not in table.stdout
    # Only a digest is kept: the table holds no trace of the secret.
    secret = token.split("_", 2)[2]
    with psycopg.connect(pg.postgres.dsn()) as conn:
        row = conn.execute(
            "SELECT secret_sha256 FROM headwater_api.api_keys WHERE id = %s", (created["id"],)
        ).fetchone()
    assert row is not None and secret.encode() not in bytes(row[0])

    url = f"{api.url}/api/v1/dashboards"
    assert httpx.get(url, headers=bearer(token), timeout=10).status_code == 200
    assert httpx.get(url, headers={"X-API-Key": token}, timeout=10).status_code == 200

    revoked = headwater("api-keys", "revoke", created["id"])
    assert revoked.returncode == 0, revoked.stderr
    refused = httpx.get(url, headers=bearer(token), timeout=10)
    assert refused.status_code == 401
    assert "revoked" in refused.json()["errors"][0]["detail"]
    again = json.loads(headwater("api-keys", "list", "--json").stdout)
    assert [k["revoked_at"] for k in again if k["id"] == created["id"]] != [None]

    assert headwater("api-keys", "revoke", "0000000000000000").returncode != 0
    bad = headwater("api-keys", "create", "--name", "x", "--scope", "write")
    assert bad.returncode != 0 and "unknown scope write" in bad.stderr


def test_each_scope_opens_its_routes_and_admin_all(api: ApiServer, keys: Keys) -> None:
    dashboards, search, admin = keys.make("dashboards"), keys.make("search"), keys.make("admin")
    listing = f"{api.url}/api/v1/dashboards"
    products = f"{api.url}/api/v1/indexes/products/search"
    detailed = f"{api.url}/health/detailed"

    def status(url: str, token: str | None) -> int:
        return httpx.get(url, headers=bearer(token) if token else {}, timeout=30).status_code

    assert status(listing, None) == 401
    assert status(listing, dashboards) == 200 and status(listing, search) == 403
    assert status(products, search) == 200 and status(products, dashboards) == 403
    assert status(detailed, dashboards) == 403 and status(detailed, search) == 403
    assert status(listing, admin) == 200 and status(products, admin) == 200
    answer = httpx.get(detailed, headers=bearer(admin), timeout=30)
    assert answer.status_code == 200
    names = {d["name"]: d["ok"] for d in answer.json()["data"]["dependencies"]}
    assert names == {"kafka": True, "elasticsearch": True, "postgres": True}
    # The probes stay open.
    assert status(f"{api.url}/health/live", None) == 200
    forbidden = httpx.get(listing, headers=bearer(search), timeout=10)
    (error,) = forbidden.json()["errors"]
    assert error["code"] == "FORBIDDEN" and error["status"] == "403"
    # A key that was never made, or a wrong secret for a real id, is a 401 with a challenge.
    forged = dashboards[:-4] + ("AAAA" if not dashboards.endswith("AAAA") else "BBBB")
    for token in ("hwk_0123456789abcdef_nothing", forged):
        refused = httpx.get(listing, headers=bearer(token), timeout=10)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith('Bearer realm="headwater"')


def test_jwts_are_accepted_for_their_scopes_and_refused_when_wrong(api: ApiServer) -> None:
    listing = f"{api.url}/api/v1/dashboards"
    assert httpx.get(listing, headers=bearer(user_token()), timeout=10).status_code == 200
    search_only = httpx.get(listing, headers=bearer(user_token(scope="search")), timeout=10)
    assert search_only.status_code == 403
    refusals = {
        "audience": user_token(aud="another-api"),
        "issuer": user_token(iss="https://evil.test"),
        "expired": user_token(exp=int(time.time()) - 600),
        "algorithm": user_token(alg="HS512"),
        "not a valid": user_token(key="w" * 64),
    }
    for reason, token in refusals.items():
        response = httpx.get(listing, headers=bearer(token), timeout=10)
        assert response.status_code == 401, reason
        assert reason in response.json()["errors"][0]["detail"], response.text
        assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_over_the_rate_a_key_gets_429_with_retry_after(pg: Settings, keys: Keys) -> None:
    token = keys.make("dashboards")
    with serve(pg, key_rate_per_min=20, burst=1.0) as server:
        url = f"{server.url}/api/v1/dashboards"
        statuses = [httpx.get(url, headers=bearer(token), timeout=10) for _ in range(25)]
    codes = [r.status_code for r in statuses]
    assert codes[:20] == [200] * 20 and set(codes[20:]) == {429}, codes
    limited = statuses[-1]
    assert 1 <= int(limited.headers["retry-after"]) <= 3
    (error,) = limited.json()["errors"]
    assert error["code"] == "RATE_LIMITED" and error["status"] == "429"


def test_guessing_credentials_is_rate_limited_too(pg: Settings) -> None:
    with serve(pg, user_rate_per_min=10, burst=1.0) as server:
        url = f"{server.url}/api/v1/dashboards"
        guesses = [
            httpx.get(url, headers=bearer(f"hwk_{i:016x}_guess"), timeout=10).status_code
            for i in range(12)
        ]
    # Ten refused as invalid, then held back (the address is 127.0.0.1, shared with other
    # tests' guesses only through their own servers' own limits: a fresh bucket here).
    assert 401 in guesses and guesses[-1] == 429, guesses


def test_the_sql_rule_is_the_python_rule(pg: Settings) -> None:
    """The counter in PostgreSQL decides as `decide` does, request by request."""
    limiter = RateLimiter(lambda: psycopg.connect(pg.postgres.dsn(), autocommit=True))
    rate = Rate(per_min=6, burst=20.0)  # 120 at once, then one each 10 s
    bucket = f"test:{uuid.uuid4().hex}"
    decisions = [limiter.check(bucket, rate) for _ in range(125)]
    assert [d.allowed for d in decisions] == [True] * 120 + [False] * 5
    assert decisions[0].remaining == 119 and decisions[119].remaining == 0
    assert 0 < decisions[-1].retry_after_s <= 10
    # And Python's rule, fed the same requests at one instant, agrees.
    tat = None
    for _ in range(120):
        _, tat = decide(tat, 0.0, rate)
    assert not decide(tat, 0.0, rate)[0].allowed


@contextlib.contextmanager
def api_process(log: Path, env: dict[str, str]) -> Iterator[str]:
    """`uvicorn api.app:create_app --factory` on a free port, as `headwater run` starts it."""
    port = free_port()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "api.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env={**os.environ, **env},
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/health/live", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def test_two_api_processes_share_one_limit(keys: Keys, tmp_path: Path) -> None:
    token = keys.make("dashboards")
    env = {
        "HW_API_ANONYMOUS": "false",
        "HW_API_KEY_RATE_PER_MIN": "30",  # one each 2 s
        "HW_API_BURST": "1",  # 30 at once
        "HW_DASHBOARDS_UPDATES_TOPIC": f"hwauth-{uuid.uuid4().hex[:10]}.dashboards.updates",
    }
    with (
        api_process(tmp_path / "a.log", env) as first,
        api_process(tmp_path / "b.log", env) as second,
    ):
        started = time.monotonic()
        served: dict[str, list[int]] = {first: [], second: []}
        for i in range(80):
            url = first if i % 2 == 0 else second
            response = httpx.get(f"{url}/api/v1/dashboards", headers=bearer(token), timeout=10)
            served[url].append(response.status_code)
        elapsed = time.monotonic() - started
    allowed = {url: codes.count(200) for url, codes in served.items()}
    total = sum(allowed.values())
    # Each process alone would have let 30 through (60 together); shared, 30 in all, and at
    # most one more per 2 s that passed meanwhile.
    assert 30 <= total <= 30 + int(elapsed / 2) + 1, (allowed, elapsed)
    assert all(n > 0 for n in allowed.values()), allowed
    assert all(set(codes) <= {200, 429} for codes in served.values()), served


def first_event(response: httpx.Response) -> list[str]:
    """The lines of the stream's first event (up to its blank line)."""
    lines: list[str] = []
    for line in response.iter_lines():
        if not line:
            if lines:
                return lines
            continue
        lines.append(line)
    return lines


@pytest.mark.xfail(
    reason="known bug: the cap holds while streams are unread (a second stream over a cap of 1 "
    "is a 429), but once a client reads the first event of one stream, one of its leases is "
    "gone from headwater_api.live_streams and a third stream is a 200",
    strict=True,
)
def test_live_streams_are_capped_per_key_and_resume_by_last_event_id(
    pg: Settings, keys: Keys
) -> None:
    token = keys.make("dashboards")
    timeout = httpx.Timeout(10, read=30)
    with serve(pg, live_streams_per_client=2) as server:
        url = f"{server.url}/api/v1/dashboards/sales/events"
        with (
            httpx.stream("GET", url, headers=bearer(token), timeout=timeout) as one,
            httpx.stream("GET", url, headers=bearer(token), timeout=timeout) as two,
        ):
            assert one.status_code == two.status_code == 200
            event = first_event(one)
            assert any(line.startswith("event: update") for line in event)
            (event_id,) = [line.removeprefix("id: ") for line in event if line.startswith("id: ")]
            # Streamed: were the cap not kept, the answer would be a stream that never ends.
            with httpx.stream("GET", url, headers=bearer(token), timeout=timeout) as third:
                assert third.status_code == 429 and third.headers["retry-after"]
                third.read()
            assert "at most 2 live streams" in third.json()["errors"][0]["detail"]
            # Another key has streams of its own.
            other = keys.make("dashboards")
            with httpx.stream("GET", url, headers=bearer(other), timeout=timeout) as mine:
                assert mine.status_code == 200
        # Both closed: their leases are gone, and a reconnect whose last event is still the
        # current one gets no snapshot again.
        deadline = time.monotonic() + 10
        while True:
            headers = {**bearer(token), "Last-Event-ID": event_id}
            with httpx.stream("GET", url, headers=headers, timeout=timeout) as resumed:
                if resumed.status_code == 200:
                    assert first_event(resumed)[0] == ": resumed"
                    break
            assert time.monotonic() < deadline, "the closed streams kept their leases"
            time.sleep(0.5)
        stale = {**bearer(token), "Last-Event-ID": "another-process-7"}
        with httpx.stream("GET", url, headers=stale, timeout=timeout) as fresh:
            assert any(line.startswith("event: update") for line in first_event(fresh))
