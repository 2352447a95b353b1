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

from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter, model_validator
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


KAFKA_PROTOCOLS = ("PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL")
SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


class KafkaSettings(_Component):
    """The Kafka cluster, how clients authenticate to it, and the names of the change topics.

    Every client (librdkafka, aiokafka, Faust, Spark, Kafka Connect) takes its connection and
    credentials from the methods below, so a secured cluster needs settings, not code.
    """

    model_config = _config("HW_KAFKA_")

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "SCRAM-SHA-512"
    username: str | None = None
    password: SecretStr | None = None
    # A CA bundle for SSL/SASL_SSL listeners; the system's CAs when unset.
    ssl_ca: Path | None = None
    # Debezium's topic.prefix: a table's changes land on `<prefix>.<schema>.<table>`.
    topic_prefix: str = "shop"
    source_schema: str = "public"
    dead_letter_suffix: str = ".dlq"

    @model_validator(mode="after")
    def _credentials_complete(self) -> KafkaSettings:
        if self.security_protocol not in KAFKA_PROTOCOLS:
            raise ValueError(
                f"HW_KAFKA_SECURITY_PROTOCOL must be one of {', '.join(KAFKA_PROTOCOLS)}, "
                f"got {self.security_protocol!r}"
            )
        if self.sasl_mechanism not in SASL_MECHANISMS:
            raise ValueError(
                f"HW_KAFKA_SASL_MECHANISM must be one of {', '.join(SASL_MECHANISMS)}, "
                f"got {self.sasl_mechanism!r}"
            )
        if self.uses_sasl and not (self.username and self.password):
            raise ValueError(
                f"HW_KAFKA_SECURITY_PROTOCOL={self.security_protocol} needs HW_KAFKA_USERNAME "
                "and HW_KAFKA_PASSWORD"
            )
        return self

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    def _secret(self) -> str:
        return self.password.get_secret_value() if self.password else ""

    def client_config(self) -> dict[str, str]:
        """librdkafka (confluent-kafka) settings: the servers and, when secured, credentials."""
        config = {"bootstrap.servers": self.bootstrap_servers}
        if self.security_protocol != "PLAINTEXT":
            config["security.protocol"] = self.security_protocol
        if self.uses_sasl:
            config |= {
                "sasl.mechanism": self.sasl_mechanism,
                "sasl.username": self.username or "",
                "sasl.password": self._secret(),
            }
        if self.ssl_ca is not None:
            config["ssl.ca.location"] = str(self.ssl_ca)
        return config

    def aiokafka_options(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's consumers, producers and admin client."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
        }
        if self.uses_sasl:
            options |= {
                "sasl_mechanism": self.sasl_mechanism,
                "sasl_plain_username": self.username,
                "sasl_plain_password": self._secret(),
            }
        if self.security_protocol.endswith("SSL"):
            import ssl

            cafile = str(self.ssl_ca) if self.ssl_ca else None
            options["ssl_context"] = ssl.create_default_context(cafile=cafile)
        return options

    def java_client_properties(self, password: str | None = None) -> dict[str, str]:
        """Java client settings (Kafka Connect, Spark) for the security of the cluster.

        `password` is what goes into the JAAS line: Connect gets a config-provider reference
        such as `${env:HW_KAFKA_PASSWORD}` so that no file holds the value; Spark, which keeps
        it in memory only, gets the value itself (the default).
        """
        if self.security_protocol == "PLAINTEXT":
            return {}
        props = {"security.protocol": self.security_protocol}
        if self.uses_sasl:
            module = (
                "org.apache.kafka.common.security.plain.PlainLoginModule"
                if self.sasl_mechanism == "PLAIN"
                else "org.apache.kafka.common.security.scram.ScramLoginModule"
            )
            secret = self._secret() if password is None else password
            props |= {
                "sasl.mechanism": self.sasl_mechanism,
                "sasl.jaas.config": (
                    f'{module} required username="{self.username}" password="{secret}";'
                ),
            }
        if self.ssl_ca is not None:
            props |= {"ssl.truststore.type": "PEM", "ssl.truststore.location": str(self.ssl_ca)}
        return props

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
    # Connect's config.storage.topic: where it keeps connector configs (the local stack's and
    # compose's name); `apply` purges values a migration replaced from it.
    configs_topic: str = "headwater-connect-configs"


class ElasticsearchSettings(_Component):
    """The Elasticsearch endpoint and its credentials (none on the plain local stack)."""

    model_config = _config("HW_ES_")

    url: str = "http://127.0.0.1:9200"
    username: str | None = None
    password: SecretStr | None = None
    # The CA that signed the server's HTTP certificate (https URLs); the system's when unset.
    ca_certs: Path | None = None

    def basic_auth(self) -> tuple[str, str] | None:
        if self.username and self.password:
            return (self.username, self.password.get_secret_value())
        return None

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for the elasticsearch-py clients, after the URL."""
        options: dict[str, Any] = {"basic_auth": self.basic_auth()}
        if self.ca_certs is not None:
            options["ca_certs"] = str(self.ca_certs)
        return options

    def httpx_options(self) -> dict[str, Any]:
        """Keyword arguments for an httpx request or client talking to Elasticsearch."""
        options: dict[str, Any] = {"auth": self.basic_auth()}
        if self.ca_certs is not None:
            import ssl

            # Before `stack up` made the CA, trust nothing but the system's: verification
            # fails closed ("certificate verify failed") instead of raising here.
            cafile = str(self.ca_certs) if self.ca_certs.exists() else None
            options["verify"] = ssl.create_default_context(cafile=cafile)
        return options


class IndexSettings(_Component):
    """The search indexes (env prefix HW_INDEXES_)."""

    model_config = _config("HW_INDEXES_")

    # Prepended to every alias, index and template name, so tests can run on their own indexes.
    prefix: str = ""


class PipelinesSettings(_Component):
    """Where the pipeline declarations live (`indexes/`, `mirrors/`): the shop's by default."""

    model_config = _config("HW_PIPELINES_")

    dir: Path = PROJECT_ROOT / "pipelines"


class StatusSettings(_Component):
    """How `headwater status` and the workers' readiness judge lag (env prefix HW_STATUS_)."""

    model_config = _config("HW_STATUS_")

    # A stage whose oldest waiting record is at most this old is "ok": records in flight, not
    # a backlog (a worker commits every second; Debezium polls every 50 ms).
    ok_lag_s: float = Field(default=5.0, gt=0.0)
    # `headwater status` looks twice, this far apart, to tell a stage that advances ("busy")
    # from one that does not ("stalled").
    sample_s: float = Field(default=3.0, gt=0.0)
    # A worker behind by more than ok_lag_s that commits nothing for this long reads "stalled"
    # on its readiness page (longer than a slow bulk request, so busy is not called stalled).
    stall_after_s: float = Field(default=15.0, gt=0.0)
    # WAL a replication slot may hold back before it is a warning (PostgreSQL keeps it all
    # until the slot's consumer confirms it; a stopped connector grows it without bound).
    wal_warn_bytes: int = Field(default=1024**3, ge=0)


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
    # The most WAL a replication slot may hold back while its connector is down or behind;
    # past it the slot is invalidated (the connector then fails, and `connectors resnapshot`
    # brings it back) instead of the disk filling up.
    postgres_max_slot_wal_keep_size: str = "4GB"

    # Sized for a 2-core, 24 GiB machine that also runs Spark and the workers.
    kafka_heap: str = "1g"
    connect_heap: str = "1g"
    elasticsearch_heap: str = "1g"

    kafka_controller_port: int = 9093
    up_timeout_s: float = 180.0

    # The secured local mode: Kafka's client listener takes SASL/SCRAM and Elasticsearch runs
    # with security on and TLS on HTTP, as production clusters do. Clients follow (see
    # `secured_defaults`); the passwords are HW_KAFKA_PASSWORD and HW_ES_PASSWORD in .env.
    secure: bool = False
    kafka_user: str = "headwater"
    es_user_name: str = "elastic"

    @property
    def es_http_ca(self) -> Path:
        """The CA certificate `stack up` makes for Elasticsearch's HTTP layer (secure mode)."""
        return self.data_dir / "elasticsearch" / "config" / "certs" / "http_ca.crt"

    @model_validator(mode="before")
    @classmethod
    def _reachable_data_dir(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("data_dir") is None:
            default_shared = cls.model_fields["shared_data_root"].default
            shared = Path(data.get("shared_data_root") or default_shared)
            as_root = os.geteuid() == 0
            data_dir = default_data_dir(PROJECT_ROOT, shared, as_root)
            # The secured stack keeps its own state: Kafka formatted with its SCRAM user,
            # Elasticsearch with its keystore and certificates. Switching never mixes them.
            if TypeAdapter(bool).validate_python(data.get("secure") or False):
                data_dir = data_dir.with_name(f"{data_dir.name}-secure")
            data = {**data, "data_dir": data_dir}
        return data


def secured_defaults(stack: StackSettings) -> tuple[dict[str, Any], dict[str, Any]]:
    """How clients reach the local stack in secure mode (Kafka, Elasticsearch); none otherwise.

    They are defaults: a value set in the environment or .env still wins, so the same settings
    reach a production cluster.
    """
    if not stack.secure:
        return {}, {}
    kafka = {"security_protocol": "SASL_PLAINTEXT", "username": stack.kafka_user}
    es = {
        "url": "https://127.0.0.1:9200",
        "username": stack.es_user_name,
        "ca_certs": stack.es_http_ca,
    }
    return kafka, es


def _secrets_of_environment() -> dict[str, SecretStr]:
    """HW_*_PASSWORD (etc.) variables of the environment and of .env; the environment wins."""
    from dotenv import dotenv_values

    from headwater.secrets import secret_env

    env_file = Path(os.environ.get("HW_ENV_FILE", ".env"))
    from_file = dotenv_values(env_file) if env_file.is_file() else {}
    merged = {k: v for k, v in from_file.items() if v is not None} | dict(os.environ)
    return {name: SecretStr(value) for name, value in secret_env(merged.items()).items()}


def _with_defaults(cls: type[_Component], defaults: dict[str, Any]) -> Any:
    """`cls()` from the environment, with `defaults` for the fields the environment left unset."""
    from_env = cls()
    unset = {k: v for k, v in defaults.items() if k not in from_env.model_fields_set}
    return cls(**unset) if unset else from_env


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
    status: StatusSettings = Field(default_factory=StatusSettings)
    # Further secrets of the environment and .env (HW_*_PASSWORD, _SECRET, _TOKEN, _API_KEY),
    # e.g. the password of a user's own database, for their connectors to reference.
    extra_secrets: dict[str, SecretStr] = Field(default_factory=dict)

    @classmethod
    def load(cls) -> Settings:
        stack = StackSettings()
        kafka_defaults, es_defaults = secured_defaults(stack)
        return cls(
            postgres=PostgresSettings(),
            kafka=_with_defaults(KafkaSettings, kafka_defaults),
            connect=ConnectSettings(),
            elasticsearch=_with_defaults(ElasticsearchSettings, es_defaults),
            stack=stack,
            pipelines=PipelinesSettings(),
            indexes=IndexSettings(),
            status=StatusSettings(),
            extra_secrets=_secrets_of_environment(),
        )

    def as_dict(self) -> dict[str, dict[str, Any]]:
        components = [n for n in type(self).model_fields if n != "extra_secrets"]
        dumped = {name: getattr(self, name).as_dict() for name in components}
        return dumped | {"extra_secrets": {name: "**********" for name in self.extra_secrets}}

    def secret_values(self) -> dict[str, str]:
        """Every secret these settings hold, by the variable that sets it: what must not leak."""
        values = {name: secret.get_secret_value() for name, secret in self.extra_secrets.items()}
        values["HW_PG_PASSWORD"] = self.postgres.password.get_secret_value()
        for name, secret in (
            ("HW_KAFKA_PASSWORD", self.kafka.password),
            ("HW_ES_PASSWORD", self.elasticsearch.password),
        ):
            if secret is not None and secret.get_secret_value():
                values[name] = secret.get_secret_value()
        return values

    def connect_env(self) -> dict[str, str]:
        """What Kafka Connect gets in its environment: the secrets, which connector configs
        name as ${env:NAME} and Connect resolves at run time (its REST API and its configs
        topic keep the reference, never the value)."""
        return self.secret_values()

    def interpolation_env(self) -> dict[str, str]:
        """Values a connector spec may reference as ${NAME}, beyond the process environment.

        No secret: a spec names a secret as ${env:NAME}, resolved by Connect itself.
        """
        pg, kafka = self.postgres, self.kafka
        return {
            "HW_PG_HOST": pg.host,
            "HW_PG_CONNECT_HOST": pg.connect_host,
            "HW_PG_PORT": str(pg.port),
            "HW_PG_USER": pg.user,
            "HW_PG_SOURCE_DB": pg.source_db,
            "HW_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
            "HW_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        }
