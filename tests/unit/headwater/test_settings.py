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
