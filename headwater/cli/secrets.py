"""`headwater secrets scan`: is any secret of .env readable anywhere else?

It looks for every secret the settings hold (the databases', Kafka's, Elasticsearch's and any
HW_*_PASSWORD, _SECRET, _TOKEN or _API_KEY of .env), in clear and in base64, in:
- the project's files (tracked or not, except git-ignored ones such as .env itself);
- the stack's data directory (logs, Kafka's topic data, Connect's state, the databases' and
  Elasticsearch's files, the workers' state), and any further `--path`;
- what Kafka Connect's REST API shows of every connector (config, tasks, status);
- the command lines of the machine's processes.
A finding names the secret by its variable and the place, never the value.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path

import typer

from headwater.console import console, fail, print_json, print_table, settings_of
from headwater.secrets import Leak, find_leaks, searchable
from headwater.settings import PROJECT_ROOT, Settings

app = typer.Typer(help="Check that secrets stay in .env.", no_args_is_help=True)

CHUNK = 4 << 20
# Unpacked distributions: nothing of ours is written there.
SKIP_DIRS = frozenset({"dist", ".git", "__pycache__"})


def project_files(root: Path) -> list[Path]:
    """Tracked and untracked files that git does not ignore."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout
    return [root / name for name in listed.decode().split("\0") if name]


def tree_files(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
        return
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        if path.is_symlink():
            continue
        if path.is_dir():
            if path.name not in SKIP_DIRS:
                yield from tree_files(path)
        elif path.is_file():
            yield path


def scan_file(path: Path, secrets: dict[str, str]) -> list[Leak]:
    """The file read in chunks that overlap by the longest needle, so none is cut in two."""
    overlap = 2 * max((len(v) for v in secrets.values()), default=0)
    found: dict[tuple[str, str], Leak] = {}
    tail = b""
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(CHUNK):
                for leak in find_leaks(str(path), tail + chunk, secrets):
                    found[(leak.secret, leak.form)] = leak
                tail = chunk[-overlap:] if overlap else b""
    except OSError:
        return []  # a socket, a file removed meanwhile
    return list(found.values())


def scan_connect(settings: Settings, secrets: dict[str, str]) -> tuple[list[Leak], str]:
    from connectors.client import ConnectClient, ConnectError

    leaks: list[Leak] = []
    try:
        with ConnectClient(settings.connect.url, timeout_s=10) as client:
            for name in client.names():
                for what in ("config", "tasks", "status"):
                    body = client.call("GET", f"/connectors/{name}/{what}")
                    where = f"{settings.connect.url}/connectors/{name}/{what}"
                    leaks += find_leaks(where, repr(body).encode(), secrets)
    except ConnectError as exc:
        return leaks, f"not asked ({exc})"
    return leaks, "asked"


def scan_processes(secrets: dict[str, str]) -> list[Leak]:
    leaks = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            data = cmdline.read_bytes()
        except OSError:
            continue
        leaks += find_leaks(f"process {cmdline.parent.name} command line", data, secrets)
    return leaks


def scan(settings: Settings, paths: Iterable[Path]) -> tuple[list[Leak], dict[str, object]]:
    secrets = searchable(settings.secret_values())
    files = project_files(PROJECT_ROOT)
    for root in [settings.stack.data_dir, *paths]:
        files += list(tree_files(root.absolute()))
    with console.status(f"scanning {len(files)} files for {len(secrets)} secrets"):
        leaks = [leak for path in files for leak in scan_file(path, secrets)]
    connect_leaks, connect = scan_connect(settings, secrets)
    leaks += connect_leaks + scan_processes(secrets)
    summary = {
        "secrets": sorted(secrets),
        "files": len(files),
        "connect": connect,
        "findings": len(leaks),
    }
    return leaks, summary


@app.command("scan")
def scan_command(
    ctx: typer.Context,
    path: list[Path] = typer.Option([], "--path", help="Further files or directories."),
    json: bool = typer.Option(False, "--json", help="One JSON document."),
) -> None:
    """Find any secret of .env outside it: files, data, Connect's API, command lines."""
    settings = settings_of(ctx)
    leaks, summary = scan(settings, path)
    if json:
        print_json({**summary, "leaks": [leak.__dict__ for leak in leaks]})
    where = (
        f"{len(summary['secrets'])} secrets, {summary['files']} files, "  # type: ignore[arg-type]
        f"Connect {summary['connect']}, command lines"
    )
    if not leaks:
        if not json:
            console.print(f"[green]✓[/] no secret readable outside .env ({where})")
        return
    if not json:
        print_table(
            f"secrets readable outside .env ({where})",
            ["where", "secret", "form"],
            [(_short(leak.where), leak.secret, leak.form) for leak in leaks],
        )
    fail(f"{len(leaks)} secret(s) readable outside .env", code=1)


def _short(where: str) -> str:
    """A path inside the project, relative to it."""
    root = f"{PROJECT_ROOT}/"
    return where.removeprefix(root)
