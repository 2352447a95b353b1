"""Where every file of the local stack lives, derived from StackSettings; no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from headwater.settings import StackSettings

SERVICE_NAMES = ("postgres", "kafka", "connect", "elasticsearch")


@dataclass(frozen=True)
class StackLayout:
    """Paths of the downloads (cache_dir, shared by clones) and the runtime state (data_dir)."""

    data_dir: Path
    cache_dir: Path
    kafka_version: str
    debezium_version: str
    elasticsearch_version: str
    postgres_major: int

    @classmethod
    def of(cls, stack: StackSettings) -> StackLayout:
        return cls(
            data_dir=stack.data_dir.absolute(),
            cache_dir=stack.cache_dir.absolute(),
            kafka_version=stack.kafka_version,
            debezium_version=stack.debezium_version,
            elasticsearch_version=stack.elasticsearch_version,
            postgres_major=stack.postgres_major,
        )

    # Downloads -------------------------------------------------------------------------------
    @property
    def kafka_home(self) -> Path:
        return self.cache_dir / f"kafka-{self.kafka_version}"

    @property
    def kafka_libs(self) -> Path:
        return self.kafka_home / "libs"

    @property
    def debezium_plugin_path(self) -> Path:
        """Connect's plugin.path: the parent of one directory per plugin."""
        return self.cache_dir / f"debezium-{self.debezium_version}"

    @property
    def debezium_plugin_dir(self) -> Path:
        return self.debezium_plugin_path / "debezium-connector-postgres"

    @property
    def elasticsearch_home(self) -> Path:
        # Under data_dir, not cache_dir: the unprivileged service user must be able to read it,
        # and a root home directory is not traversable.
        return self.data_dir / "dist" / f"elasticsearch-{self.elasticsearch_version}"

    @property
    def postgres_bin(self) -> Path:
        return Path(f"/usr/lib/postgresql/{self.postgres_major}/bin")

    # Runtime state ---------------------------------------------------------------------------
    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    def log_file(self, service: str) -> Path:
        return self.logs_dir / f"{service}.log"

    def pid_file(self, service: str) -> Path:
        return self.run_dir / f"{service}.pid"

    def service_dir(self, service: str) -> Path:
        return self.data_dir / service

    @property
    def postgres_data(self) -> Path:
        return self.service_dir("postgres") / "data"

    @property
    def postgres_socket_dir(self) -> Path:
        return self.service_dir("postgres") / "socket"

    @property
    def kafka_log_dir(self) -> Path:
        return self.service_dir("kafka") / "data"

    @property
    def elasticsearch_conf(self) -> Path:
        return self.service_dir("elasticsearch") / "config"
