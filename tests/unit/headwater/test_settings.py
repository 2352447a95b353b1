import pytest
from pydantic import ValidationError

from headwater.settings import KafkaSettings, PostgresSettings, Settings


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
