"""Settings of the batch loads: where Spark runs, its jars, and where quality reports go."""

from __future__ import annotations

from pathlib import Path

from headwater.settings import PROJECT_ROOT, _Component, _config


class BatchSettings(_Component):
    """The Spark session and the warehouse loads; env prefix HW_BATCH_."""

    model_config = _config("HW_BATCH_")

    # Local by default; a cluster URL (spark://, yarn, k8s://) runs the same job unchanged.
    spark_master: str = "local[2]"
    driver_memory: str = "2g"
    # Sized for 2 cores: a handful of partitions keeps task overhead below the work.
    shuffle_partitions: int = 4
    # Versions of the jars fetched from Maven Central by `headwater batch install`.
    spark_kafka_version: str = "4.2.0"
    spark_token_provider_version: str = "4.0.0"
    postgresql_jdbc_version: str = "42.7.14"
    # None: `<stack cache_dir>/spark-jars-<spark_kafka_version>`, shared by every clone.
    jars_dir: Path | None = None
    # Validation reports of failed (and passed) loads; under the git-ignored data dir.
    reports_dir: Path = PROJECT_ROOT / ".headwater" / "batch" / "reports"
    # Kafka reads time out instead of hanging when the broker is unreachable.
    kafka_timeout_ms: int = 30_000
    # A fact load whose row count is outside [expected * (1 - tol), expected * (1 + tol)]
    # against the source events is implausible.
    row_count_tolerance: float = 0.0
    # A mirror counts its source table, then waits until the connector has been sent the WAL up
    # to that count (at most `capture_timeout_s`) and has written it to Kafka (`settle`).
    capture_timeout_s: float = 60.0
    capture_settle_s: float = 1.5
    airflow_venv: Path = PROJECT_ROOT / ".venv-airflow"
    airflow_port: int = 8080

    def resolved_jars_dir(self, cache_dir: Path) -> Path:
        return self.jars_dir or cache_dir / f"spark-jars-{self.spark_kafka_version}"
