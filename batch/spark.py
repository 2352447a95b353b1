"""The Spark session of the batch jobs and the jars it needs (Kafka source, PostgreSQL driver)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from batch.settings import BatchSettings
from headwater.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

BATCH_DIR = Path(__file__).resolve().parent
POM = BATCH_DIR / "spark-pom.xml"
MAVEN_SETTINGS = BATCH_DIR / "maven-settings.xml"
# Already inside the pyspark wheel: copying them again would put two versions on the classpath.
_IN_PYSPARK = (
    "scala-library,scala-parallel-collections_2.13,slf4j-api,spark-tags_2.13,jsr305,"
    "lz4-java,snappy-java,checker-qual"
)
_MARKER = ".complete"


def jars_dir(settings: Settings, batch: BatchSettings) -> Path:
    return batch.resolved_jars_dir(settings.stack.cache_dir)


def install_jars(settings: Settings, batch: BatchSettings) -> tuple[Path, bool]:
    """Copy the jars from Maven Central into the cache; (dir, downloaded). Idempotent."""
    target = jars_dir(settings, batch)
    if (target / _MARKER).exists() and jar_paths(target):
        return target, False
    if shutil.which("mvn") is None:
        raise RuntimeError("mvn is not installed; the project's set-up installs it")
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-s",
            str(MAVEN_SETTINGS),
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
            f"-Dspark.kafka.version={batch.spark_kafka_version}",
            f"-Dspark.token.version={batch.spark_token_provider_version}",
            f"-Dpostgresql.version={batch.postgresql_jdbc_version}",
            f"-DexcludeArtifactIds={_IN_PYSPARK}",
            "-DincludeScope=runtime",
        ],
        check=True,
    )
    (staging / _MARKER).write_text(time.strftime("%Y-%m-%dT%H:%M:%S%z") + "\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target, True


def jar_paths(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.jar"))


def build_session(settings: Settings, batch: BatchSettings, app_name: str) -> SparkSession:
    """A session on `batch.spark_master` with the cached jars; never resolves packages itself."""
    from pyspark.sql import SparkSession

    jars = jar_paths(jars_dir(settings, batch))
    if not jars:
        raise RuntimeError(
            f"no Spark jars in {jars_dir(settings, batch)}; run `headwater batch install`"
        )
    return (
        SparkSession.builder.master(batch.spark_master)
        .appName(app_name)
        .config("spark.jars", ",".join(str(p) for p in jars))
        .config("spark.driver.memory", batch.driver_memory)
        .config("spark.sql.shuffle.partitions", str(batch.shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.adaptive.enabled", "true")
        .getOrCreate()
    )
