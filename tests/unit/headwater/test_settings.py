from pathlib import Path

import pytest
from pydantic import ValidationError

from headwater.settings import (
    KafkaSettings,
    PostgresSettings,
    Settings,
    StackSettings,
    default_data_dir,
)


def test_password_is_required_and_secret(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.delenv("HW_PG_PASSWORD", raising=False)
    monkeypatch.setenv("HW_ENV_FILE", str(tmp_path / "absent.env"))
    with pytest.raises(ValidationError, match="password"):
        PostgresSettings()  # type: ignore[call-arg]


def test_settings_read_the_environment_and_mask_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HW_PG_PASSWORD", "hunter2")
    monkeypatch.setenv("HW_PG_PORT", "6543")
    monkeypatch.setenv("HW_KAFKA_TOPIC_PREFIX", "acme")
    settings = Settings.load()
    assert settings.postgres.port == 6543
    assert settings.kafka.cdc_topic("orders") == "acme.public.orders"
    dumped = str(settings.as_dict())
    assert "hunter2" not in dumped
    assert "**********" in dumped
    assert "hunter2" in settings.postgres.dsn()


def test_settings_are_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HW_PG_PASSWORD", "x")
    pg = PostgresSettings()  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        pg.port = 1  # type: ignore[misc]


def test_a_bad_value_is_refused_naming_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HW_PG_PASSWORD", "x")
    monkeypatch.setenv("HW_PG_PORT", "not-a-port")
    with pytest.raises(ValidationError, match="port"):
        PostgresSettings()  # type: ignore[call-arg]


def test_dead_letter_topic_name() -> None:
    assert KafkaSettings().dead_letter_topic("shop.public.orders") == "shop.public.orders.dlq"


def test_data_dir_stays_in_the_project_when_the_service_user_can_reach_it() -> None:
    open_project = Path("/usr/lib")  # every directory on the way is o+x
    shared = Path("/var/lib/hw")
    assert default_data_dir(open_project, shared, as_root=True) == open_project / ".headwater"


def test_data_dir_moves_out_of_a_checkout_others_cannot_enter(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    project = closed / "project"
    project.mkdir(parents=True)
    closed.chmod(0o700)
    shared = Path("/var/lib/hw")
    moved = default_data_dir(project, shared, as_root=True)
    assert moved.parent == shared
    assert moved.name.startswith("project-")
    # One directory per checkout, the same on every call.
    assert moved == default_data_dir(project, shared, as_root=True)
    other = tmp_path / "closed" / "other" / "project"
    other.mkdir(parents=True)
    assert default_data_dir(other, shared, as_root=True) != moved
    # Not root: the services run as ourselves, who can always reach our own checkout.
    assert default_data_dir(project, shared, as_root=False) == project / ".headwater"


def test_an_explicit_data_dir_is_kept(tmp_path: Path) -> None:
    assert StackSettings(data_dir=tmp_path / "mine").data_dir == tmp_path / "mine"


@pytest.fixture
def no_env_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """Settings from the variables a test sets only (no .env, no HW_* of the shell)."""
    import os

    for name in [n for n in os.environ if n.startswith("HW_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # the settings classes read ./.env: there is none here
    monkeypatch.setenv("HW_ENV_FILE", str(tmp_path / "absent.env"))
    monkeypatch.setenv("HW_PG_PASSWORD", "pg-secret")
    return monkeypatch


def test_a_plain_cluster_gets_no_credentials(no_env_file: pytest.MonkeyPatch) -> None:
    settings = Settings.load()
    assert settings.kafka.client_config() == {"bootstrap.servers": "127.0.0.1:9092"}
    assert settings.kafka.java_client_properties() == {}
    assert settings.kafka.aiokafka_options()["security_protocol"] == "PLAINTEXT"
    assert settings.elasticsearch.client_options() == {"basic_auth": None}


def test_secure_mode_makes_every_client_authenticate(no_env_file: pytest.MonkeyPatch) -> None:
    no_env_file.setenv("HW_STACK_SECURE", "true")
    no_env_file.setenv("HW_KAFKA_PASSWORD", "kafka-secret")
    no_env_file.setenv("HW_ES_PASSWORD", "es-secret")
    settings = Settings.load()
    rdkafka = settings.kafka.client_config()
    assert rdkafka["security.protocol"] == "SASL_PLAINTEXT"
    assert rdkafka["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (rdkafka["sasl.username"], rdkafka["sasl.password"]) == ("headwater", "kafka-secret")
    aio = settings.kafka.aiokafka_options()
    assert aio["sasl_plain_password"] == "kafka-secret"
    # Connect's worker file gets a reference that Connect resolves, never the value.
    java = settings.kafka.java_client_properties("${env:HW_KAFKA_PASSWORD}")
    assert 'password="${env:HW_KAFKA_PASSWORD}"' in java["sasl.jaas.config"]
    assert "kafka-secret" not in str(java)
    assert "kafka-secret" in settings.kafka.java_client_properties()["sasl.jaas.config"]
    es = settings.elasticsearch
    assert es.url.startswith("https://")
    assert es.client_options()["basic_auth"] == ("elastic", "es-secret")
    assert es.client_options()["ca_certs"] == str(settings.stack.es_http_ca)
    dumped = str(settings.as_dict())
    assert "kafka-secret" not in dumped and "es-secret" not in dumped


def test_an_explicit_setting_wins_over_the_secure_defaults(
    no_env_file: pytest.MonkeyPatch,
) -> None:
    no_env_file.setenv("HW_STACK_SECURE", "true")
    no_env_file.setenv("HW_KAFKA_PASSWORD", "k")
    no_env_file.setenv("HW_ES_PASSWORD", "e")
    no_env_file.setenv("HW_ES_URL", "https://search.example:9243")
    no_env_file.setenv("HW_KAFKA_USERNAME", "svc-headwater")
    settings = Settings.load()
    assert settings.elasticsearch.url == "https://search.example:9243"
    assert settings.kafka.client_config()["sasl.username"] == "svc-headwater"


def test_sasl_without_credentials_is_refused_naming_them(no_env_file: pytest.MonkeyPatch) -> None:
    no_env_file.setenv("HW_STACK_SECURE", "true")
    with pytest.raises(ValidationError, match="HW_KAFKA_PASSWORD"):
        Settings.load()
    no_env_file.setenv("HW_KAFKA_SECURITY_PROTOCOL", "SASL_TLS")
    with pytest.raises(ValidationError, match="HW_KAFKA_SECURITY_PROTOCOL"):
        KafkaSettings()
