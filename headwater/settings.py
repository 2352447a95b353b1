"""Settings: one frozen class per component, read from the environment and an optional `.env`.

Build them once at an entry point (`Settings.load()`) and pass them down; nothing deeper in the
code reads `os.environ`. Secrets are `SecretStr` and `as_dict()` masks them, so a settings dump
can be logged safely.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _config(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(
        env_prefix=prefix,
        env_file=os.environ.get("HW_ENV_FILE", ".env"),
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )


class _Component(BaseSettings):
    def as_dict(self) -> dict[str, Any]:
        """Every field, with secrets shown as '**********'."""
        return self.model_dump(mode="json")


class PostgresSettings(_Component):
    """The PostgreSQL server holding the source database and the analytics database."""

    model_config = _config("HW_PG_")

    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "headwater"
    password: SecretStr = Field(
        description="Password of `user`; `make setup` writes a random one to .env."
    )
    source_db: str = "shop"
    # The host name Kafka Connect uses to reach PostgreSQL ("postgres" inside docker compose).
    connect_host: str = "127.0.0.1"
    analytics_db: str = "analytics"

    def dsn(self, database: str | None = None) -> str:
        """A libpq connection string; contains the password, so never log it."""
        db = database or self.source_db
        return (
            f"host={self.host} port={self.port} dbname={db} user={self.user} "
            f"password={self.password.get_secret_value()}"
        )

    def jdbc_url(self, database: str | None = None) -> str:
        return f"jdbc:postgresql://{self.host}:{self.port}/{database or self.analytics_db}"


class KafkaSettings(_Component):
    """The Kafka cluster and the names of the change-event topics."""

    model_config = _config("HW_KAFKA_")

    bootstrap_servers: str = "127.0.0.1:9092"
    # Debezium's topic.prefix: a table's changes land on `<prefix>.<schema>.<table>`.
    topic_prefix: str = "shop"
    source_schema: str = "public"
    dead_letter_suffix: str = ".dlq"

    def cdc_topic(self, table: str) -> str:
        return f"{self.topic_prefix}.{self.source_schema}.{table}"

    def dead_letter_topic(self, topic: str) -> str:
        return f"{topic}{self.dead_letter_suffix}"


class ConnectSettings(_Component):
    """The Kafka Connect REST endpoint and where connector specs live."""

    model_config = _config("HW_CONNECT_")

    url: str = "http://127.0.0.1:8083"
    specs_dir: Path = PROJECT_ROOT / "connectors" / "specs"
    # How long `apply` waits for the connector and its tasks to reach RUNNING.
    apply_timeout_s: float = 90.0


class ElasticsearchSettings(_Component):
    """The Elasticsearch endpoint (no security on the local stack)."""

    model_config = _config("HW_ES_")

    url: str = "http://127.0.0.1:9200"
    username: str | None = None
    password: SecretStr | None = None

    def basic_auth(self) -> tuple[str, str] | None:
        if self.username and self.password:
            return (self.username, self.password.get_secret_value())
        return None


class IndexSettings(_Component):
    """The search indexes (env prefix HW_INDEXES_)."""

    model_config = _config("HW_INDEXES_")

    # Prepended to every alias, index and template name, so tests can run on their own indexes.
    prefix: str = ""


class PipelinesSettings(_Component):
    """Where the pipeline declarations live (`indexes/`, `mirrors/`): the shop's by default."""

    model_config = _config("HW_PIPELINES_")

    dir: Path = PROJECT_ROOT / "pipelines"


def others_can_enter(path: Path) -> bool:
    """Whether every directory from / down to `path` has the 'others may enter' bit (o+x)."""
    path = path.absolute()
    return all(
        bool(d.stat().st_mode & stat.S_IXOTH) for d in [*reversed(path.parents), path] if d.exists()
    )


def default_data_dir(project_root: Path, shared_root: Path, as_root: bool) -> Path:
    """`.headwater` in the project, unless the service user could not reach it.

    As root, PostgreSQL and Elasticsearch run as an unprivileged user that must enter the data
    directory. A checkout under a directory others cannot enter (a root home, a 0700 work
    directory) then keeps its state in shared_root/<project>-<hash of its path> instead, one
    directory per checkout.
    """
    local = project_root / ".headwater"
    if not as_root or others_can_enter(project_root):
        return local
    digest = hashlib.sha256(str(project_root.absolute()).encode()).hexdigest()[:10]
    return shared_root / f"{project_root.name}-{digest}"


class StackSettings(_Component):
    """The local, Docker-free stack: versions, where things are cached and kept, JVM heaps."""

    model_config = _config("HW_STACK_")

    # Runtime state (databases, logs, pid files). Git-ignored. Unset: see default_data_dir().
    data_dir: Path = PROJECT_ROOT / ".headwater"
    # Downloads and unpacked distributions, shared by every clone on the machine.
    cache_dir: Path = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "headwater"
    # PostgreSQL and Elasticsearch refuse to run as root; when we are root they run as this
    # user. shared_data_root holds the data directories of checkouts that user cannot reach.
    es_user: str = "headwater"
    shared_data_root: Path = Path("/var/lib/headwater")

    kafka_version: str = "4.3.1"
    debezium_version: str = "3.7.0.Final"
    elasticsearch_version: str = "9.5.0"
    postgres_major: int = 15

    # Sized for a 2-core, 24 GiB machine that also runs Spark and the workers.
    kafka_heap: str = "1g"
    connect_heap: str = "1g"
    elasticsearch_heap: str = "1g"

    kafka_controller_port: int = 9093
    up_timeout_s: float = 180.0

    @model_validator(mode="before")
    @classmethod
    def _reachable_data_dir(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("data_dir") is None:
            default_shared = cls.model_fields["shared_data_root"].default
            shared = Path(data.get("shared_data_root") or default_shared)
            as_root = os.geteuid() == 0
            data = {**data, "data_dir": default_data_dir(PROJECT_ROOT, shared, as_root)}
        return data


class Settings(BaseModel):
    """All component settings, built once at the entry point."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    postgres: PostgresSettings
    kafka: KafkaSettings
    connect: ConnectSettings
    elasticsearch: ElasticsearchSettings
    stack: StackSettings
    pipelines: PipelinesSettings = Field(default_factory=PipelinesSettings)
    indexes: IndexSettings = Field(default_factory=IndexSettings)

    @classmethod
    def load(cls) -> Settings:
        return cls(
            postgres=PostgresSettings(),
            kafka=KafkaSettings(),
            connect=ConnectSettings(),
            elasticsearch=ElasticsearchSettings(),
            stack=StackSettings(),
            pipelines=PipelinesSettings(),
            indexes=IndexSettings(),
        )

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {name: getattr(self, name).as_dict() for name in type(self).model_fields}

    def interpolation_env(self) -> dict[str, str]:
        """Values a connector spec may reference as ${NAME}, beyond the process environment."""
        pg, kafka = self.postgres, self.kafka
        return {
            "HW_PG_HOST": pg.host,
            "HW_PG_CONNECT_HOST": pg.connect_host,
            "HW_PG_PORT": str(pg.port),
            "HW_PG_USER": pg.user,
            "HW_PG_PASSWORD": pg.password.get_secret_value(),
            "HW_PG_SOURCE_DB": pg.source_db,
            "HW_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
            "HW_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        }
