"""Kafka Connect's REST API: validate, put, inspect and control connectors."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import retry, retry_if_exception, stop_after_attempt

from connectors.spec import ConnectorSpec
from headwater.resilience import RetryPolicy


class ConnectError(RuntimeError):
    """Kafka Connect answered with an error, or could not be reached."""


@dataclass(frozen=True)
class FieldError:
    field: str
    messages: list[str]


def _transient(exc: BaseException) -> bool:
    # 409: the Connect cluster is rebalancing; 5xx and transport errors: worth another try.
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, httpx.HTTPStatusError) and (
        exc.response.status_code == 409 or exc.response.status_code >= 500
    )


_retry = retry(
    retry=retry_if_exception(_transient),
    wait=RetryPolicy().tenacity_wait(),
    stop=stop_after_attempt(5),
    reraise=True,
)


def validation_errors(result: dict[str, Any]) -> list[FieldError]:
    """The fields Connect's validation rejected, from its `/config/validate` answer."""
    errors = []
    for item in result.get("configs", []):
        value = item.get("value", {})
        if value.get("errors"):
            errors.append(FieldError(field=value["name"], messages=list(value["errors"])))
    return errors


class ConnectClient:
    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        self._http = httpx.Client(base_url=url, timeout=timeout_s)
        self.url = url

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ConnectClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @_retry
    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        response.raise_for_status()
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return self._request(method, path, **kwargs)
        except httpx.HTTPStatusError as exc:
            detail = exc.response.text
            with contextlib.suppress(ValueError):
                detail = exc.response.json().get("message", detail)
            raise ConnectError(f"{method} {path}: {exc.response.status_code} {detail}") from exc
        except httpx.TransportError as exc:
            raise ConnectError(f"cannot reach Kafka Connect at {self.url}: {exc}") from exc

    def plugins(self) -> list[str]:
        return sorted(p["class"] for p in self.call("GET", "/connector-plugins"))

    def validate(self, spec: ConnectorSpec) -> list[FieldError]:
        installed = self.plugins()
        if spec.connector_class not in installed:
            known = ", ".join(installed) or "none"
            return [
                FieldError(
                    "connector.class", [f"no plugin {spec.connector_class} (installed: {known})"]
                )
            ]
        cls = spec.connector_class.rsplit(".", 1)[-1]
        result = self.call("PUT", f"/connector-plugins/{cls}/config/validate", json=spec.config)
        return validation_errors(result)

    def put(self, spec: ConnectorSpec) -> dict[str, Any]:
        result: dict[str, Any] = self.call(
            "PUT", f"/connectors/{spec.name}/config", json=spec.config
        )
        return result

    def config(self, name: str) -> dict[str, str] | None:
        """The connector's config as Connect keeps it; None if there is no such connector."""
        try:
            result: dict[str, str] = self.call("GET", f"/connectors/{name}/config")
        except ConnectError as exc:
            if ": 404 " in str(exc):
                return None
            raise
        return result

    def names(self) -> list[str]:
        return sorted(self.call("GET", "/connectors"))

    def status(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", f"/connectors/{name}/status")
        return result

    def statuses(self) -> dict[str, dict[str, Any]]:
        result = self.call("GET", "/connectors", params={"expand": "status"})
        return {name: item["status"] for name, item in (result or {}).items()}

    def pause(self, name: str) -> None:
        self.call("PUT", f"/connectors/{name}/pause")

    def resume(self, name: str) -> None:
        self.call("PUT", f"/connectors/{name}/resume")

    def restart(self, name: str) -> None:
        self.call("POST", f"/connectors/{name}/restart", params={"includeTasks": "true"})

    def delete(self, name: str) -> None:
        self.call("DELETE", f"/connectors/{name}")

    def stop(self, name: str) -> None:
        """Stop the connector and its tasks (its config stays; `resume` starts it again)."""
        self.call("PUT", f"/connectors/{name}/stop")

    def reset_offsets(self, name: str) -> None:
        """Forget where a stopped connector was: it starts from scratch when resumed."""
        self.call("DELETE", f"/connectors/{name}/offsets")

    def offsets(self, name: str) -> list[dict[str, Any]]:
        """The connector's committed source offsets (`[{partition, offset}]`)."""
        result = self.call("GET", f"/connectors/{name}/offsets")
        return list((result or {}).get("offsets") or [])

    def wait_state(self, name: str, state: str, timeout_s: float) -> None:
        """Poll until the connector itself is in `state` (STOPPED, PAUSED, ...)."""
        deadline = time.monotonic() + timeout_s
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = self.status(name)
            if status.get("connector", {}).get("state") == state:
                return
            time.sleep(0.5)
        raise ConnectError(
            f"connector {name} not {state} after {timeout_s:.0f}s: {summary(status)}"
        )

    def wait_running(self, name: str, timeout_s: float) -> dict[str, Any]:
        """Poll until the connector and all its tasks are RUNNING; raise with the last error."""
        deadline = time.monotonic() + timeout_s
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                status = self.status(name)
            except ConnectError:
                status = {}
            if is_running(status):
                return status
            failure = last_error(status)
            if lost_its_place(failure):
                raise ConnectError(
                    f"connector {name} failed: {failure}. Its replication slot was dropped, "
                    "recreated or invalidated, and changes were missed: restarting cannot help; "
                    f"`headwater connectors resnapshot {name}` takes a new snapshot"
                )
            if failure:
                raise ConnectError(f"connector {name} failed: {failure}")
            time.sleep(0.5)
        raise ConnectError(
            f"connector {name} not RUNNING after {timeout_s:.0f}s: {summary(status)}"
        )


def is_running(status: dict[str, Any]) -> bool:
    tasks = status.get("tasks", [])
    return (
        status.get("connector", {}).get("state") == "RUNNING"
        and bool(tasks)
        and all(t.get("state") == "RUNNING" for t in tasks)
    )


def last_error(status: dict[str, Any]) -> str | None:
    """The first line of the newest failure trace, if the connector or a task FAILED."""
    parts = [status.get("connector", {}), *status.get("tasks", [])]
    for part in parts:
        if part.get("state") == "FAILED":
            trace = part.get("trace") or "no trace"
            return trace.strip().splitlines()[0]
    return None


def lost_its_place(failure: str | None) -> bool:
    """Whether a failure is Debezium finding that the changes after its offset are gone from
    the server: its replication slot was dropped, recreated or invalidated. Changes were missed;
    restarting cannot help, only a new snapshot (`headwater connectors resnapshot`)."""
    return failure is not None and "no longer available on the server" in failure


def summary(status: dict[str, Any]) -> str:
    if not status:
        return "unknown"
    tasks = ",".join(f"{t.get('id')}:{t.get('state')}" for t in status.get("tasks", []))
    return f"connector {status.get('connector', {}).get('state')}, tasks [{tasks or 'none'}]"
