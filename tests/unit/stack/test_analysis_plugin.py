"""The analysis plugin's version, install decision and restart decision, without Java or a node."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from headwater.settings import (
    ConnectSettings,
    ElasticsearchSettings,
    KafkaSettings,
    PostgresSettings,
    Settings,
    StackSettings,
)
from headwater.stack import analysis_plugin, manager
from headwater.stack.analysis_plugin import PLUGIN_NAME
from headwater.stack.manager import Stack, Started
from headwater.stack.services import ServiceStatus, State

SOURCES = {"src/a/P.java": b"class P {}", "plugin-descriptor.properties": b"version=@VERSION@\n"}
JARS = ["lucene-core-10.5.0.jar", "elasticsearch-9.5.0.jar"]


def test_the_version_is_stable_and_changes_with_every_build_input() -> None:
    version = analysis_plugin.plugin_version(SOURCES, "9.5.0", JARS)
    assert version == analysis_plugin.plugin_version(
        dict(reversed(SOURCES.items())), "9.5.0", JARS[::-1]
    )
    changed = [
        analysis_plugin.plugin_version({**SOURCES, "src/a/P.java": b"class P { }"}, "9.5.0", JARS),
        analysis_plugin.plugin_version({**SOURCES, "src/a/Q.java": b""}, "9.5.0", JARS),
        analysis_plugin.plugin_version(SOURCES, "9.5.1", JARS),
        analysis_plugin.plugin_version(SOURCES, "9.5.0", ["lucene-core-10.5.1.jar", JARS[1]]),
    ]
    assert version not in changed and len(set(changed)) == len(changed)


def test_build_inputs_are_the_java_sources_and_the_descriptor(tmp_path: Path) -> None:
    (tmp_path / "src" / "x").mkdir(parents=True)
    (tmp_path / "src" / "x" / "A.java").write_text("class A {}")
    (tmp_path / "plugin-descriptor.properties").write_text("version=@VERSION@")
    (tmp_path / "src" / "x" / ".A.java.swp").write_text("editor state")
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "A.class").write_bytes(b"\xca\xfe")
    assert set(analysis_plugin.build_inputs(tmp_path)) == {
        "src/x/A.java",
        "plugin-descriptor.properties",
    }


def test_the_real_descriptor_renders_what_elasticsearch_requires() -> None:
    template = (analysis_plugin.SOURCE_DIR / analysis_plugin.DESCRIPTOR).read_text()
    text = analysis_plugin.render_descriptor(template, "0123abcd", "9.5.0")
    keys = dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    assert keys["name"] == PLUGIN_NAME
    assert keys["version"] == "0123abcd" and keys["elasticsearch.version"] == "9.5.0"
    assert keys["classname"] == "headwater.analysis.CommonAnalysisPlugin"
    assert {"description", "java.version"} <= set(keys)
    assert "@" not in text
    assert analysis_plugin.descriptor_version(text) == "0123abcd"


def test_the_plugins_a_node_reports() -> None:
    answer = {"nodes": {"n1": {"plugins": [{"name": PLUGIN_NAME, "version": "abc"}]}}}
    assert analysis_plugin.loaded_plugins(answer) == {PLUGIN_NAME: "abc"}
    # filter_path leaves nothing of a node without plugins: known to have none.
    assert analysis_plugin.loaded_plugins({}) == {}
    assert analysis_plugin.loaded_plugins(["not", "an", "object"]) is None


@pytest.mark.parametrize(
    ("installed", "loaded", "restart"),
    [
        ("v2", {PLUGIN_NAME: "v2"}, False),
        ("v2", {PLUGIN_NAME: "v1"}, True),  # rebuilt while the node ran
        ("v2", {}, True),  # installed after the node started
        ("v2", {"other": "v2"}, True),
        (None, {}, False),  # nothing installed: nothing to load
        ("v2", None, False),  # the node could not be asked: leave it alone
    ],
)
def test_needs_restart(installed: str | None, loaded: dict[str, str] | None, restart: bool) -> None:
    assert analysis_plugin.needs_restart(installed, loaded) is restart


@pytest.fixture
def es_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake distribution and plugin sources; `build` writes files instead of running javac."""
    sources = tmp_path / "analysis-plugin"
    (sources / "src").mkdir(parents=True)
    (sources / "src" / "P.java").write_text("class P {}")
    (sources / "plugin-descriptor.properties").write_text("version=@VERSION@\n")
    monkeypatch.setattr(analysis_plugin, "SOURCE_DIR", sources)
    home = tmp_path / "elasticsearch-9.5.0"
    (home / "lib").mkdir(parents=True)
    (home / "lib" / "lucene-core-10.5.0.jar").write_bytes(b"")

    def fake_build(jdk: Path, home: Path, es_version: str, version: str, out: Path) -> None:
        (out / f"{PLUGIN_NAME}.jar").write_bytes(b"jar")
        (out / "plugin-descriptor.properties").write_text(f"version={version}\n")

    monkeypatch.setattr(analysis_plugin, "build", fake_build)
    return home


def test_install_builds_once_and_again_only_when_an_input_changes(es_home: Path) -> None:
    first = analysis_plugin.install(Path("/jdk"), es_home, "9.5.0")
    assert first is not None
    assert analysis_plugin.installed_version(es_home) == first
    assert analysis_plugin.install(Path("/jdk"), es_home, "9.5.0") is None

    (analysis_plugin.SOURCE_DIR / "src" / "P.java").write_text("class P { int x; }")
    second = analysis_plugin.install(Path("/jdk"), es_home, "9.5.0")
    assert second not in (None, first)
    assert analysis_plugin.installed_version(es_home) == second
    # Only the plugin itself is left: no staging directory, nothing else in plugins/.
    assert sorted(p.name for p in es_home.iterdir()) == ["lib", "plugins"]
    assert [p.name for p in (es_home / "plugins").iterdir()] == [PLUGIN_NAME]


def test_the_installed_plugin_is_readable_by_the_service_user(es_home: Path) -> None:
    analysis_plugin.install(Path("/jdk"), es_home, "9.5.0")
    directory = analysis_plugin.plugin_dir(es_home)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o755
    assert {stat.S_IMODE(p.stat().st_mode) for p in directory.iterdir()} == {0o644}


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    return Stack(
        Settings(
            postgres=PostgresSettings(password="pw"),
            kafka=KafkaSettings(),
            connect=ConnectSettings(),
            elasticsearch=ElasticsearchSettings(),
            stack=StackSettings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache"),
        )
    )


def _healthy_then_stopped(stack: Stack, monkeypatch: pytest.MonkeyPatch, calls: list[str]) -> None:
    states = iter([State.HEALTHY, State.STOPPED])

    def status_of(name: str) -> ServiceStatus:
        return ServiceStatus(name, next(states), None, 9200, None, None)

    def starter(name: str) -> Any:
        def start() -> Started:
            calls.append(f"start {name}")
            return Started(name, 0.0)

        return start

    monkeypatch.setattr(stack, "status_of", status_of)
    monkeypatch.setattr(stack, "stop", lambda name: calls.append(f"stop {name}") or "stopped")
    monkeypatch.setattr(stack, "_starter", starter)
    monkeypatch.setattr(stack, "_ports_taken", lambda service: [])


def test_up_restarts_a_node_that_loaded_another_plugin_build(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    _healthy_then_stopped(stack, monkeypatch, calls)
    monkeypatch.setattr(analysis_plugin, "installed_version", lambda home: "v2")
    monkeypatch.setattr(manager, "elasticsearch_plugins", lambda settings: {PLUGIN_NAME: "v1"})
    started = stack.ensure_started("elasticsearch")
    assert calls == ["stop elasticsearch", "start elasticsearch"]
    assert started is not None and "restarting" in started.why


def test_up_leaves_a_node_with_the_installed_build_running(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    _healthy_then_stopped(stack, monkeypatch, calls)
    monkeypatch.setattr(analysis_plugin, "installed_version", lambda home: "v2")
    monkeypatch.setattr(manager, "elasticsearch_plugins", lambda settings: {PLUGIN_NAME: "v2"})
    assert stack.ensure_started("elasticsearch") is None
    assert calls == []
