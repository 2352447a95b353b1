"""`headwater stack install`: PostgreSQL binaries, the service user, Kafka, Debezium, ES and its
analysis plugin."""

from __future__ import annotations

import getpass
import os
import re
import shutil
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from headwater.settings import Settings
from headwater.stack import analysis_plugin, system
from headwater.stack.layout import StackLayout
from headwater.stack.system import StackError

POM_DIR = Path(__file__).resolve().parent
COMPLETE_MARKER = ".headwater-complete"
ES_ARTIFACT = "org.elasticsearch.distribution.integ-test-zip:elasticsearch:{version}:zip"
DEBIAN_NO_MAIN_CLUSTER = Path("/etc/postgresql-common/createcluster.d/headwater.conf")


@dataclass(frozen=True)
class StepResult:
    component: str
    # "found", "created", "installed", "built", "cached"; "copied"/"unpacked" from the local Maven
    # repository; "downloaded" when Maven fetched something from Maven Central.
    outcome: str
    where: str
    note: str = ""

    @property
    def fetched(self) -> bool:
        return self.outcome in ("installed", "downloaded")


def maven_downloads(output: str) -> tuple[int, int]:
    """(artifacts, bytes) Maven fetched from a remote repository, from its batch-mode output."""
    count, total = 0, 0
    for match in re.finditer(
        r"^(?:\[INFO\] )?Downloaded from \S+: \S+ \((\d+(?:\.\d+)?) ([kMG]?B)", output, re.MULTILINE
    ):
        count += 1
        factor = {"B": 1, "kB": 1000, "MB": 1000**2, "GB": 1000**3}[match.group(2)]
        total += int(float(match.group(1)) * factor)
    return count, total


def fetch_outcome(local: str, count: int, size: int) -> tuple[str, str]:
    """(outcome, note) of a Maven step that fetched `count` files of `size` bytes."""
    if count == 0:
        return local, "from the local Maven repository"
    return "downloaded", f"{count} files, {size / 1e6:.1f} MB from Maven Central"


def _mvn(args: list[str], log: Path) -> str:
    if shutil.which("mvn") is None:
        raise StackError("`mvn` is not on PATH; install Maven (apt-get install maven)")
    proc = subprocess.run(["mvn", "-B", *args], capture_output=True, text=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        errors = [line for line in proc.stdout.splitlines() if line.startswith("[ERROR]")]
        raise StackError(f"mvn {' '.join(args[:2])} failed ({log}): " + " ".join(errors[:3]))
    return proc.stdout


def _copy_dependencies(
    pom: str, target: Path, properties: dict[str, str], log: Path
) -> tuple[str, str]:
    """Resolve `pom`'s runtime dependencies into `target`, atomically: (outcome, note)."""
    if (target / COMPLETE_MARKER).exists():
        return "cached", ""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        # Run from a scratch copy so Maven leaves nothing in the package directory.
        shutil.copy(POM_DIR / pom, staging / "pom.xml")
        out = staging / "jars"
        output = _mvn(
            [
                "-f",
                str(staging / "pom.xml"),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={out}",
                *(f"-D{key}={value}" for key, value in properties.items()),
            ],
            log,
        )
        (out / COMPLETE_MARKER).write_text("\n".join(sorted(p.name for p in out.iterdir())) + "\n")
        if target.exists():
            shutil.rmtree(target)
        out.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    jars = len(list(target.glob("*.jar")))
    outcome, note = fetch_outcome("copied", *maven_downloads(output))
    return outcome, f"{jars} jars; {note}"


def install_postgres(layout: StackLayout) -> StepResult:
    postgres = layout.postgres_bin / "postgres"
    if postgres.exists():
        return StepResult("postgresql", "found", str(layout.postgres_bin))
    if not system.is_root():
        raise StackError(
            f"{postgres} is missing and only root can install it: "
            f"sudo apt-get install postgresql-{layout.postgres_major}"
        )
    # We run our own data directory; keep Debian from creating and starting its own cluster.
    DEBIAN_NO_MAIN_CLUSTER.parent.mkdir(parents=True, exist_ok=True)
    DEBIAN_NO_MAIN_CLUSTER.write_text("create_main_cluster = false\n")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (
        ["apt-get", "update"],
        [
            "apt-get",
            "install",
            "-y",
            "--no-install-recommends",
            f"postgresql-{layout.postgres_major}",
        ],
    ):
        proc = subprocess.run(argv, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-10:])
            raise StackError(f"{' '.join(argv)} failed:\n{tail}")
    return StepResult("postgresql", "installed", f"postgresql-{layout.postgres_major} (apt)")


def install_service_user(settings: Settings) -> StepResult:
    name = settings.stack.es_user
    if not system.is_root():
        return StepResult("service user", "found", getpass.getuser(), "not root: runs as us")
    created = system.ensure_user(name)
    return StepResult(
        "service user", "created" if created else "found", name, "runs PostgreSQL and Elasticsearch"
    )


def install_jdk() -> StepResult:
    home, major = system.find_jdk()
    return StepResult("jdk", "found", str(home), f"Java {major}, for every JVM of the stack")


def install_kafka(settings: Settings, layout: StackLayout) -> StepResult:
    outcome, note = _copy_dependencies(
        "kafka-pom.xml",
        layout.kafka_libs,
        {"kafka.version": settings.stack.kafka_version},
        layout.cache_dir / "logs" / "mvn-kafka.log",
    )
    return StepResult(
        f"kafka {settings.stack.kafka_version}", outcome, str(layout.kafka_libs), note
    )


def install_debezium(settings: Settings, layout: StackLayout) -> StepResult:
    outcome, note = _copy_dependencies(
        "debezium-pom.xml",
        layout.debezium_plugin_dir,
        {"debezium.version": settings.stack.debezium_version},
        layout.cache_dir / "logs" / "mvn-debezium.log",
    )
    return StepResult(
        f"debezium {settings.stack.debezium_version}",
        outcome,
        str(layout.debezium_plugin_dir),
        note,
    )


def _maven_local_repo() -> Path:
    return Path.home() / ".m2" / "repository"


def _extract_zip(archive: Path, dest_parent: Path, top: str) -> None:
    """Unzip keeping the Unix permissions (zipfile alone drops the executable bits)."""
    dest_parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{top}-", dir=dest_parent))
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                path = Path(zf.extract(info, staging))
                mode = (info.external_attr >> 16) & 0o777
                if mode:
                    path.chmod(mode)
                elif path.is_dir():
                    path.chmod(0o755)
        (staging / top / COMPLETE_MARKER).write_text(archive.name + "\n")
        final = dest_parent / top
        if final.exists():
            shutil.rmtree(final)
        (staging / top).rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def install_elasticsearch(settings: Settings, layout: StackLayout) -> StepResult:
    version = settings.stack.elasticsearch_version
    name = f"elasticsearch {version}"
    home = layout.elasticsearch_home
    if (home / COMPLETE_MARKER).exists():
        return StepResult(name, "cached", str(home))
    artifact = ES_ARTIFACT.format(version=version)
    group, artifact_id = artifact.split(":")[:2]
    archive = (
        _maven_local_repo().joinpath(*group.split("."))
        / artifact_id
        / version
        / f"{artifact_id}-{version}.zip"
    )
    outcome, note = "unpacked", "from the local Maven repository"
    if not archive.exists():
        output = _mvn(
            ["dependency:get", f"-Dartifact={artifact}", "-Dtransitive=false"],
            layout.cache_dir / "logs" / "mvn-elasticsearch.log",
        )
        outcome, note = fetch_outcome("unpacked", *maven_downloads(output))
        if not archive.exists():
            raise StackError(f"Maven fetched {artifact} but {archive} is not there")
    system.make_reachable_dir(home.parent)
    _extract_zip(archive, home.parent, home.name)
    return StepResult(name, outcome, str(home), note)


def install_analysis_plugin(settings: Settings, layout: StackLayout) -> StepResult:
    """Build indexers/analysis-plugin/ into the ES home's plugins/, unless the build is current."""
    home = layout.elasticsearch_home
    jdk, _ = system.find_jdk()
    built = analysis_plugin.install(jdk, home, settings.stack.elasticsearch_version)
    where = str(analysis_plugin.plugin_dir(home))
    if built is None:
        return StepResult("analysis plugin", "cached", where, "sources unchanged")
    return StepResult("analysis plugin", "built", where, f"version {built}")


STEPS: list[tuple[str, Callable[[Settings, StackLayout], StepResult]]] = [
    ("PostgreSQL server", lambda s, lay: install_postgres(lay)),
    ("service user", lambda s, lay: install_service_user(s)),
    ("JDK >= 21", lambda s, lay: install_jdk()),
    ("Kafka jars", install_kafka),
    ("Debezium connector", install_debezium),
    ("Elasticsearch", install_elasticsearch),
    ("Elasticsearch analysis plugin", install_analysis_plugin),
]


@contextmanager
def _timed() -> Iterator[Callable[[], float]]:
    start = time.monotonic()
    yield lambda: time.monotonic() - start


def run_install(settings: Settings) -> list[StepResult]:
    """Every install step, in order, under a progress display; idempotent."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from headwater.console import console

    layout = StackLayout.of(settings.stack)
    results: list[StepResult] = []
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        for label, step in STEPS:
            task = progress.add_task(f"{label}…", total=1)
            with _timed() as elapsed:
                result = step(settings, layout)
            progress.update(
                task,
                completed=1,
                description=f"{label}: [bold]{result.outcome}[/] ({elapsed():.1f}s)",
            )
            results.append(result)
    return results
