"""The machine around the stack: the unprivileged service user, directory access, JDK discovery."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

JVM_ROOT = Path("/usr/lib/jvm")
MIN_JAVA_MAJOR = 21


class StackError(Exception):
    """A failure the user can act on; the CLI prints the message and exits non-zero."""


@dataclass(frozen=True)
class ServiceUser:
    """Who PostgreSQL and Elasticsearch run as; both refuse to run as root."""

    name: str
    uid: int
    gid: int
    home: Path
    groups: frozenset[int]

    def command(self, argv: list[str]) -> list[str]:
        return [
            "setpriv",
            f"--reuid={self.uid}",
            f"--regid={self.gid}",
            "--init-groups",
            "--",
            *argv,
        ]


def is_root() -> bool:
    return os.geteuid() == 0


def lookup_user(name: str) -> ServiceUser | None:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    groups = frozenset(os.getgrouplist(name, entry.pw_gid))
    return ServiceUser(name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir), groups)


def service_user(name: str) -> ServiceUser | None:
    """The user to drop to when we are root; None means 'run as ourselves'."""
    if not is_root():
        return None
    user = lookup_user(name)
    if user is None:
        raise StackError(
            f"the service user {name!r} does not exist; run `headwater stack install` first"
        )
    return user


def ensure_user(name: str) -> bool:
    """Create a system user (with a home and its own group) if missing; True if created."""
    if lookup_user(name) is not None:
        return False
    subprocess.run(
        [
            "useradd",
            "--system",
            "--create-home",
            "--user-group",
            "--shell",
            "/usr/sbin/nologin",
            name,
        ],
        check=True,
        capture_output=True,
    )
    return True


def chown(path: Path, user: ServiceUser | None, recursive: bool = False) -> None:
    if user is None:
        return
    if recursive:
        shutil.chown(path, user.uid, user.gid)
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                os.lchown(os.path.join(root, name), user.uid, user.gid)
    else:
        shutil.chown(path, user.uid, user.gid)


def owned_dir(path: Path, user: ServiceUser | None) -> Path:
    """mkdir -p, then hand the directory to the service user."""
    path.mkdir(parents=True, exist_ok=True)
    chown(path, user)
    return path


def make_reachable_dir(path: Path) -> Path:
    """mkdir -p where each directory it creates is 0755 whatever the umask: the service user
    must be able to enter it."""
    path = path.absolute()
    missing = [d for d in [*reversed(path.parents), path] if not d.exists()]
    path.mkdir(parents=True, exist_ok=True)
    for directory in missing:
        directory.chmod(0o755)
    return path


def can_traverse(mode: int, owner: int, group: int, uid: int, groups: frozenset[int]) -> bool:
    """Whether a user may enter a directory with this mode and ownership (uid 0 always may)."""
    if uid == 0:
        return True
    if owner == uid:
        return bool(mode & stat.S_IXUSR)
    if group in groups:
        return bool(mode & stat.S_IXGRP)
    return bool(mode & stat.S_IXOTH)


def first_untraversable(path: Path, user: ServiceUser) -> Path | None:
    """The first directory on the way to `path` the user cannot enter, if any."""
    for directory in [*reversed(path.absolute().parents), path.absolute()]:
        try:
            st = directory.stat()
        except FileNotFoundError:
            return None
        if not can_traverse(st.st_mode, st.st_uid, st.st_gid, user.uid, user.groups):
            return directory
    return None


def parse_java_major(release_text: str) -> int | None:
    """The feature version in a JDK's `release` file: "25.0.3" -> 25, "1.8.0" -> 8."""
    match = re.search(r'^JAVA_VERSION="([0-9.]+)', release_text, re.MULTILINE)
    if not match:
        return None
    parts = match.group(1).split(".")
    return int(parts[1]) if parts[0] == "1" and len(parts) > 1 else int(parts[0])


def find_jdk(minimum: int = MIN_JAVA_MAJOR, root: Path = JVM_ROOT) -> tuple[Path, int]:
    """The newest JDK under /usr/lib/jvm that is at least `minimum`: (JAVA_HOME, major)."""
    found: list[tuple[int, Path]] = []
    for home in sorted(root.iterdir()) if root.is_dir() else []:
        release = home / "release"
        if home.is_symlink() or not (home / "bin" / "java").exists() or not release.exists():
            continue
        major = parse_java_major(release.read_text(errors="replace"))
        if major is not None and major >= minimum:
            found.append((major, home))
    if not found:
        raise StackError(
            f"no JDK >= {minimum} under {root}: Elasticsearch needs one; install one there "
            f"(a Temurin or an openjdk-{minimum}-jdk-headless package)"
        )
    major, home = max(found)
    return home, major
