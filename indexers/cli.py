"""Commands of the declared indexes: `search`, `verify search`, `indexers ...`."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import typer

from headwater.console import console, err_console, fail, print_json, print_table, settings_of
from headwater.pipelines.declarations import DeclarationError
from headwater.settings import Settings
from indexers.declared import DeclaredIndex, UnknownIndex, pick

if TYPE_CHECKING:
    from indexers.verify import Report


def declared(settings: Settings) -> dict[str, DeclaredIndex]:
    """The declared indexes of `settings`, or a clear failure naming every file and field."""
    from connectors.sources import resolve
    from indexers.declared import declared_indexes

    try:
        pipelines, bindings = resolve(settings)
        return declared_indexes(pipelines, bindings, settings.indexes.prefix)
    except DeclarationError as exc:
        fail("the pipeline declarations are not usable:\n" + "\n".join(exc.problems))
    except (ImportError, ValueError) as exc:
        fail(str(exc))


def _one(settings: Settings, name: str) -> DeclaredIndex:
    try:
        return pick(declared(settings), name)
    except UnknownIndex as exc:
        fail(str(exc))


def search(
    ctx: typer.Context,
    query: str = typer.Argument("", help="Words to look for; empty lists everything."),
    index: str = typer.Option("products", "--index", "-i", help="A declared index."),
    filters: list[str] = typer.Option(
        [], "--filter", "-f", help="field=value, e.g. category=books; repeatable."
    ),
    size: int = typer.Option(10, "--size", "-n", min=1, max=100),
    page: int = typer.Option(1, "--page", min=1),
    sort: str = typer.Option(
        "", "--sort", help="field:asc|desc, comma-separated for ties; default relevance."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Search a declared index and print the top hits and its facets."""
    from indexers.catalog import client
    from indexers.search import SearchError, searchable
    from indexers.search import search as run_search

    settings = settings_of(ctx)
    target = _one(settings, index)
    declaration = target.shaper.declaration
    try:
        result = run_search(
            client(settings.elasticsearch),
            target.alias,
            declaration,
            query,
            filters,
            page,
            size,
            sort=sort,
        )
    except SearchError as exc:
        fail(str(exc))
    if as_json:
        print_json(result)
        return
    columns = searchable(declaration).columns
    print_table(
        f"{result['total']} {index} match {query!r}" if query else f"{result['total']} {index}",
        [*columns, "score"],
        [
            [
                *(hit["source"].get(c) for c in columns),
                f"{hit['score']:.2f}" if hit["score"] is not None else "",
            ]
            for hit in result["hits"]
        ],
    )
    for name, buckets in result["facets"].items():
        console.print(
            f"[bold]{name}[/]: " + ", ".join(f"{b['value']} ({b['count']})" for b in buckets)
        )


verify_app = typer.Typer(help="Prove that derived stores equal the source.", no_args_is_help=True)


@verify_app.command("search")
def verify_search(
    ctx: typer.Context,
    index: list[str] = typer.Option(
        [], "--index", "-i", "--table", "-t", help="A declared index; repeatable. Default: all."
    ),
    settle: float = typer.Option(
        10.0,
        "--settle",
        min=0,
        help="Seconds a difference must hold still to count (changes in flight keep moving).",
    ),
    wait: float = typer.Option(0.0, "--wait", min=0, help="Retry for up to this many seconds."),
    repair: bool = typer.Option(
        False, "--repair", help="Rewrite exactly the differing documents from the source."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Reconcile source tables and search indexes: counts and a content hash per id."""
    from indexers.catalog import client
    from indexers.reindex import repair as run_repair
    from indexers.verify import verify

    settings = settings_of(ctx)
    indexes = declared(settings)
    try:
        chosen = [pick(indexes, name) for name in index] or list(indexes.values())
    except UnknownIndex as exc:
        fail(str(exc))
    es = client(settings.elasticsearch, timeout_s=120)

    def check() -> list[Report]:
        deadline = time.monotonic() + wait
        while True:
            reports = [verify(i.dsn, es, i.spec, i.shaper, settle) for i in chosen]
            if all(r.ok for r in reports) or time.monotonic() >= deadline:
                return reports
            time.sleep(0.5)

    reports = check()
    repaired: dict[str, int] = {}
    if repair and not all(r.ok for r in reports):
        for target, report in zip(chosen, reports, strict=True):
            if report.mismatches:
                ids = [m.id for m in report.mismatches]
                result = run_repair(
                    settings.elasticsearch, target.dsn, es, target.spec, target.shaper, ids,
                    progress=err_console.print,
                )  # fmt: skip
                repaired[report.index] = result.written
                err_console.print(
                    f"{report.index}: rewrote {result.written} of {len(ids)} documents from the "
                    f"source at LSN {result.snapshot_lsn} ({result.unchanged} already past it)"
                )
        reports = check()
    if as_json:
        print_json([{**_report_json(r), "repaired": repaired.get(r.index, 0)} for r in reports])
    else:
        _print_reports(reports)
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


def _report_json(r: Report) -> dict[str, object]:
    return {
        "table": r.table,
        "index": r.index,
        "source_count": r.source_count,
        "index_count": r.index_count,
        "ok": r.ok,
        "mismatches": [m.__dict__ for m in r.mismatches],
        "in_flight": [m.__dict__ for m in r.in_flight],
    }


def _print_reports(reports: list[Report]) -> None:
    print_table(
        "search indexes vs source",
        ["table", "index", "source rows", "index docs", "missing", "extra", "stale", "in flight",
         "ok"],
        [
            [
                r.table,
                r.index,
                r.source_count,
                r.index_count,
                *(sum(m.kind == k for m in r.mismatches) for k in ("missing", "extra", "stale")),
                len(r.in_flight),
                "yes" if r.ok else "NO",
            ]
            for r in reports
        ],
    )  # fmt: skip
    for r in reports:
        for m in r.mismatches[:50]:
            console.print(
                f"{r.index} id={m.id}: {m.kind} (source {m.source_hash}, index {m.index_hash})"
            )
        if len(r.mismatches) > 50:
            console.print(f"... and {len(r.mismatches) - 50} more in {r.index}")
        if r.in_flight:
            console.print(
                f"{r.index}: {len(r.in_flight)} documents were still changing when the check "
                "ended (in flight, not stale): run it again when writes are quieter"
            )


indexers_app = typer.Typer(help="Search indexes behind aliases.", no_args_is_help=True)


@indexers_app.command("ensure")
def ensure(ctx: typer.Context) -> None:
    """Install the index templates and create each index behind its alias if missing."""
    from indexers.catalog import client, ensure_index

    settings = settings_of(ctx)
    es = client(settings.elasticsearch)
    for index in declared(settings).values():
        console.print(f"{index.alias} -> {ensure_index(es, index.spec)}")


def run_reindex(settings: Settings, target: DeclaredIndex, drop_old: bool) -> None:
    from indexers.catalog import client
    from indexers.reindex import reindex

    es = client(settings.elasticsearch, timeout_s=300)
    result = reindex(
        settings.elasticsearch,
        target.dsn,
        es,
        target.spec,
        target.shaper,
        drop_old,
        console.print,
    )
    console.print(
        f"[green]{result.alias}[/] -> {result.new_index}: {result.loaded} from the source "
        f"(LSN {result.snapshot_lsn}), {result.copied} carried over from {result.old_index}"
    )


@indexers_app.command("reindex")
def reindex(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="A declared index."),
    drop_old: bool = typer.Option(False, "--drop-old", help="Delete the previous version."),
) -> None:
    """Build the next version of NAME from the source and swap its alias atomically."""
    settings = settings_of(ctx)
    run_reindex(settings, _one(settings, name), drop_old)
