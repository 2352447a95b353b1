"""The local Elasticsearch's analysis plugin (indexers/analysis-plugin/): build, install, freshness.

The integ-test distribution the stack runs lacks the analysis-common module, so the stack builds a
small plugin with the same analyzer and filter names from the Lucene jars the distribution ships.
Its version is a digest of everything the build reads, so an unchanged plugin is never rebuilt and
a running node can be asked whether it loaded the build that is installed.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from headwater.settings import PROJECT_ROOT
from headwater.stack.system import StackError

PLUGIN_NAME = "headwater-analysis"
SOURCE_DIR = PROJECT_ROOT / "indexers" / "analysis-plugin"
DESCRIPTOR = "plugin-descriptor.properties"
JAVA_RELEASE = "21"  # Elasticsearch 9 and Lucene 10 need Java 21


# Pure --------------------------------------------------------------------------------------------
def build_inputs(source_dir: Path) -> dict[str, bytes]:
    """The files the build reads from the source directory, by relative path."""
    return {
        path.relative_to(source_dir).as_posix(): path.read_bytes()
        for path in sorted(source_dir.rglob("*"))
        if path.is_file() and (path.suffix == ".java" or path.name == DESCRIPTOR)
    }


def plugin_version(
    sources: Mapping[str, bytes], elasticsearch_version: str, lib_jars: Iterable[str]
) -> str:
    """A digest of the sources, the Elasticsearch version and the jars compiled against."""
    digest = hashlib.sha256()
    for part in (
        elasticsearch_version.encode(),
        *(name.encode() for name in sorted(lib_jars)),
        *(f"{path}\0".encode() + sources[path] for path in sorted(sources)),
    ):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()[:16]


def render_descriptor(template: str, version: str, elasticsearch_version: str) -> str:
    return template.replace("@VERSION@", version).replace(
        "@ELASTICSEARCH_VERSION@", elasticsearch_version
    )


def descriptor_version(text: str) -> str | None:
    """`version=` of a plugin-descriptor.properties."""
    match = re.search(r"^version\s*[=:]\s*(\S+)\s*$", text, re.MULTILINE)
    return match.group(1) if match else None


def loaded_plugins(nodes: Any) -> dict[str, str] | None:
    """name -> version from GET /_nodes/_local/plugins; None for an answer of another shape.

    With filter_path, a node without plugins answers `{}`: that is "no plugins", not "unknown".
    """
    if not isinstance(nodes, dict):
        return None
    found: dict[str, str] = {}
    for node in (nodes.get("nodes") or {}).values():
        for plugin in (node or {}).get("plugins") or []:
            if isinstance(plugin, dict) and plugin.get("name"):
                found[str(plugin["name"])] = str(plugin.get("version") or "")
    return found


def needs_restart(installed: str | None, loaded: Mapping[str, str] | None) -> bool:
    """Whether a running node must restart to load the installed build of the plugin.

    `installed` is the version on disk (None: none installed, nothing to load); `loaded` is what
    the node reports (None: it could not be asked, so leave it alone).
    """
    if installed is None or loaded is None:
        return False
    return loaded.get(PLUGIN_NAME) != installed


# Files -------------------------------------------------------------------------------------------
def plugin_dir(elasticsearch_home: Path) -> Path:
    return elasticsearch_home / "plugins" / PLUGIN_NAME


def installed_version(elasticsearch_home: Path) -> str | None:
    try:
        return descriptor_version((plugin_dir(elasticsearch_home) / DESCRIPTOR).read_text())
    except OSError:
        return None


def wanted_version(elasticsearch_home: Path, elasticsearch_version: str) -> str:
    """The version a build from the current sources against this distribution would have."""
    jars = [path.name for path in (elasticsearch_home / "lib").glob("*.jar")]
    return plugin_version(build_inputs(SOURCE_DIR), elasticsearch_version, jars)


def _run(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        output = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
        raise StackError(f"{Path(argv[0]).name} failed building the analysis plugin:\n{output}")


def build(
    jdk_home: Path, elasticsearch_home: Path, elasticsearch_version: str, version: str, out: Path
) -> None:
    """Compile the sources against the distribution's own jars into `out` (jar + descriptor)."""
    javac, jar = jdk_home / "bin" / "javac", jdk_home / "bin" / "jar"
    if not javac.exists():
        raise StackError(f"{javac} is missing: building the analysis plugin needs a full JDK")
    sources = sorted(str(path) for path in (SOURCE_DIR / "src").rglob("*.java"))
    with tempfile.TemporaryDirectory(prefix="hw-analysis-") as classes:
        _run(
            [
                str(javac),
                "--release",
                JAVA_RELEASE,
                "-nowarn",
                "-cp",
                str(elasticsearch_home / "lib" / "*"),
                "-d",
                classes,
                *sources,
            ]
        )
        _run([str(jar), "--create", "--file", str(out / f"{PLUGIN_NAME}.jar"), "-C", classes, "."])
    template = (SOURCE_DIR / DESCRIPTOR).read_text()
    (out / DESCRIPTOR).write_text(render_descriptor(template, version, elasticsearch_version))


def install(jdk_home: Path, elasticsearch_home: Path, elasticsearch_version: str) -> str | None:
    """Build and install the plugin unless the installed build is current: its version if built."""
    version = wanted_version(elasticsearch_home, elasticsearch_version)
    if installed_version(elasticsearch_home) == version:
        return None
    target = plugin_dir(elasticsearch_home)
    # Staged beside the plugins directory, not in it: Elasticsearch reads every entry there.
    staging = Path(tempfile.mkdtemp(prefix=f".{PLUGIN_NAME}-", dir=elasticsearch_home))
    try:
        build(jdk_home, elasticsearch_home, elasticsearch_version, version, staging)
        # Readable by the unprivileged user that runs Elasticsearch, whatever our umask.
        staging.chmod(0o755)
        for path in staging.iterdir():
            path.chmod(0o644)
        old = staging.with_name(staging.name + "-old")
        if target.exists():
            target.rename(old)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return version
