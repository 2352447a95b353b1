"""docker-compose.yml: the same four services as the local stack, on the same loopback ports.

With a working `docker compose` the file is also checked by `docker compose config`; this
machine kind has no compose plugin, so the structural checks below always run.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from headwater.settings import (
    PROJECT_ROOT,
    ConnectSettings,
    ElasticsearchSettings,
    KafkaSettings,
    PostgresSettings,
    Settings,
    StackSettings,
)
from headwater.stack.config import host_port

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
REQUIRED = ("postgres", "kafka", "connect", "elasticsearch")
# `${NAME}`, `${NAME:-default}`, `${NAME-default}`, `${NAME:?message}`; `$$` escapes a dollar.
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)((?::?[-?+])[^}]*)?\}")


def settings_variables() -> set[str]:
    """Every environment variable a settings class reads: its prefix plus a field name."""
    names = set()
    for cls in (
        PostgresSettings,
        KafkaSettings,
        ConnectSettings,
        ElasticsearchSettings,
        StackSettings,
    ):
        prefix = cls.model_config.get("env_prefix", "")
        names |= {f"{prefix}{field}".upper() for field in cls.model_fields}
    return names


def default_host_ports() -> dict[str, int]:
    """Each service's host port as the settings defaults have it."""
    fields = PostgresSettings.model_fields
    return {
        "postgres": int(fields["port"].default),
        "kafka": host_port(str(KafkaSettings.model_fields["bootstrap_servers"].default), 9092)[1],
        "connect": host_port(str(ConnectSettings.model_fields["url"].default), 8083)[1],
        "elasticsearch": host_port(str(ElasticsearchSettings.model_fields["url"].default), 9200)[1],
    }


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return []


def compose_problems(doc: dict[str, Any]) -> list[str]:
    """Everything wrong with a compose document, as readable sentences (empty: fine)."""
    problems: list[str] = []
    services = doc.get("services") or {}
    known = settings_variables()
    expected_ports = default_host_ports()
    for name in REQUIRED:
        service = services.get(name)
        if not isinstance(service, dict):
            problems.append(f"service {name!r} is missing")
            continue
        if not service.get("image"):
            problems.append(f"{name}: no image")
        test = (service.get("healthcheck") or {}).get("test")
        if not test or test == ["NONE"]:
            problems.append(f"{name}: no healthcheck")
        published = []
        for port in service.get("ports") or []:
            text = str(port)
            if not text.startswith("127.0.0.1:"):
                problems.append(f"{name}: port {text!r} is not bound to 127.0.0.1")
                continue
            published.append(int(text.split(":")[1]))
        if expected_ports[name] not in published:
            problems.append(
                f"{name}: host port {expected_ports[name]} (the settings default) is not published"
            )
    for text in _strings(doc):
        for var, modifier in VARIABLE.findall(text):
            has_default = modifier.startswith((":-", "-"))
            if not var.startswith("HW_"):
                problems.append(f"${{{var}}} is not a HW_* variable")
            elif var not in known and not has_default:
                problems.append(f"${{{var}}} is not a settings field and has no default")
    password_refs = [t for t in _strings(doc) if "${HW_PG_PASSWORD" in t]
    if not password_refs or not all("${HW_PG_PASSWORD:?" in t for t in password_refs):
        problems.append("HW_PG_PASSWORD must be required: ${HW_PG_PASSWORD:?set HW_PG_PASSWORD}")
    kafka_env = (services.get("kafka") or {}).get("environment") or {}
    advertised = str(kafka_env.get("KAFKA_ADVERTISED_LISTENERS", ""))
    if "127.0.0.1:9092" not in advertised or "kafka:" not in advertised:
        problems.append("kafka must advertise 127.0.0.1:9092 to the host and kafka:<port> inside")
    return problems


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(doc, dict)
    return doc


def test_compose_file_matches_the_local_stack(compose: dict[str, Any]) -> None:
    assert compose_problems(compose) == []


def test_connect_reaches_kafka_on_the_internal_listener(compose: dict[str, Any]) -> None:
    connect_env = compose["services"]["connect"]["environment"]
    advertised = compose["services"]["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert f"//{connect_env['BOOTSTRAP_SERVERS']}" in advertised
    assert connect_env["GROUP_ID"] == "headwater-connect"


def test_postgres_runs_with_logical_decoding_and_bounded_slots(
    compose: dict[str, Any], settings: Settings
) -> None:
    command = compose["services"]["postgres"]["command"]
    assert "wal_level=logical" in command
    # The same bound as the local stack's: a slot never holds back more WAL than this.
    assert f"max_slot_wal_keep_size={settings.stack.postgres_max_slot_wal_keep_size}" in command


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (lambda d: d["services"].pop("connect"), "service 'connect' is missing"),
        (lambda d: d["services"]["kafka"].pop("healthcheck"), "kafka: no healthcheck"),
        (lambda d: d["services"]["elasticsearch"].update(ports=["9200:9200"]), "not bound"),
        (lambda d: d["services"]["postgres"].update(ports=["127.0.0.1:5433:5432"]), "5432"),
        (
            lambda d: d["services"]["postgres"]["environment"].update(POSTGRES_DB="${HW_PG_DB}"),
            "${HW_PG_DB} is not a settings field",
        ),
        (
            lambda d: d["services"]["postgres"]["environment"].update(X="${PGPASSWORD:-x}"),
            "${PGPASSWORD} is not a HW_* variable",
        ),
        (
            lambda d: d["services"]["postgres"]["environment"].update(
                POSTGRES_PASSWORD="${HW_PG_PASSWORD:-changeme}"
            ),
            "HW_PG_PASSWORD must be required",
        ),
    ],
)
def test_the_checks_catch_a_broken_file(
    compose: dict[str, Any], break_it: Any, expected: str
) -> None:
    broken = copy.deepcopy(compose)
    break_it(broken)
    assert any(expected in problem for problem in compose_problems(broken)), compose_problems(
        broken
    )


def _docker_compose_works() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
    return probe.returncode == 0


def test_compose_file_is_valid(compose: dict[str, Any]) -> None:
    """`docker compose config` where the plugin exists; the structural checks everywhere."""
    assert compose_problems(compose) == []
    if not _docker_compose_works():
        return
    env = {**os.environ, "HW_PG_PASSWORD": "compose-check"}
    proc = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
    )
    assert proc.returncode == 0, proc.stderr


def test_elasticsearch_is_the_full_official_image(compose: dict[str, Any]) -> None:
    """The official image bundles the analysis-common module (language analyzers, stemmer,
    synonyms, n-grams, folding), so compose needs nothing for them; the local stack's minimal
    distribution gets the same names from indexers/analysis-plugin/, at the same version."""
    image = compose["services"]["elasticsearch"]["image"]
    name, _, tag = image.partition(":")
    assert name == "docker.elastic.co/elasticsearch/elasticsearch"
    default = StackSettings.model_fields["elasticsearch_version"].default
    assert tag == f"${{HW_STACK_ELASTICSEARCH_VERSION:-{default}}}"


def test_compose_connect_resolves_every_secret_the_connector_files_reference() -> None:
    from connectors.spec import load_specs
    from headwater.secrets import references

    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    environment = compose["services"]["connect"]["environment"]
    assert environment["CONNECT_CONFIG_PROVIDERS"] == "env,file"
    assert environment["CONNECT_CONFIG_PROVIDERS_ENV_CLASS"].endswith("EnvVarConfigProvider")
    env = {name: "x" for name in settings_variables()}
    names = {
        ref.key
        for spec in load_specs(PROJECT_ROOT / "connectors" / "specs", env)
        for value in spec.config.values()
        for ref in references(value)
        if ref.provider == "env"
    }
    assert names == {"HW_PG_PASSWORD"}
    assert all(name in environment for name in names)
