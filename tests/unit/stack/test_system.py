"""Directory traversal for the service user and JDK discovery."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from headwater.stack import system


@pytest.mark.parametrize(
    ("mode", "owner", "group", "expected"),
    [
        (0o755, 0, 0, True),  # others may enter
        (0o700, 0, 0, False),  # /root
        (0o750, 0, 1000, True),  # through the group
        (0o750, 0, 5, False),  # a group the user is not in
        (0o700, 1000, 1000, True),  # its own directory
        (0o644, 1000, 1000, False),  # owner without x
    ],
)
def test_can_traverse(mode: int, owner: int, group: int, expected: bool) -> None:
    assert system.can_traverse(mode, owner, group, 1000, frozenset({1000})) is expected


def test_root_can_always_traverse() -> None:
    assert system.can_traverse(0o700, 5, 5, 0, frozenset({0}))


def test_first_untraversable_names_the_blocking_directory(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    (locked / "inside").mkdir(parents=True)
    locked.chmod(0o700)
    stranger = system.ServiceUser("nobody", 65534, 65534, Path("/"), frozenset({65534}))
    try:
        if locked.stat().st_uid == stranger.uid:
            pytest.skip("running as the stranger")
        # The locked directory, or an already private parent such as /tmp/pytest-of-<user>.
        blocked = system.first_untraversable(locked / "inside", stranger)
        assert blocked is not None and blocked in [locked, *locked.parents]
        me = system.ServiceUser("me", 0, 0, Path("/"), frozenset({0}))
        assert system.first_untraversable(locked / "inside", me) is None
    finally:
        locked.chmod(0o755)


def test_java_major_from_release_file() -> None:
    assert system.parse_java_major('IMPLEMENTOR="x"\nJAVA_VERSION="25.0.3"\n') == 25
    assert system.parse_java_major('JAVA_VERSION="17.0.15"') == 17
    assert system.parse_java_major('JAVA_VERSION="1.8.0_402"') == 8
    assert system.parse_java_major("nothing") is None


def _fake_jdk(root: Path, name: str, version: str) -> Path:
    home = root / name
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "java").write_text("")
    (home / "release").write_text(f'JAVA_VERSION="{version}"\n')
    return home


def test_find_jdk_picks_the_newest_at_least_the_minimum(tmp_path: Path) -> None:
    _fake_jdk(tmp_path, "java-17", "17.0.15")
    newest = _fake_jdk(tmp_path, "temurin-25", "25.0.3")
    _fake_jdk(tmp_path, "temurin-21", "21.0.1")
    assert system.find_jdk(21, tmp_path) == (newest, 25)


def test_find_jdk_fails_clearly_without_one(tmp_path: Path) -> None:
    _fake_jdk(tmp_path, "java-17", "17.0.15")
    with pytest.raises(system.StackError, match="no JDK >= 21"):
        system.find_jdk(21, tmp_path)


def test_service_user_command_drops_privileges() -> None:
    user = system.ServiceUser("headwater", 999, 998, Path("/home/headwater"), frozenset({998}))
    assert user.command(["initdb", "-D", "x"]) == [
        "setpriv",
        "--reuid=999",
        "--regid=998",
        "--init-groups",
        "--",
        "initdb",
        "-D",
        "x",
    ]


def test_reachable_dirs_are_made_0755_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        made = system.make_reachable_dir(tmp_path / "shared" / "checkout")
    finally:
        os.umask(old)
    assert made == tmp_path / "shared" / "checkout"
    for directory in (tmp_path / "shared", made):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o755
    # An existing directory keeps the mode its owner chose.
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    system.make_reachable_dir(private)
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
