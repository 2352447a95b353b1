"""Commands of the search path: `worker`, `search`, `verify search`, `indexers ...`."""

from __future__ import annotations

import time

import typer

from headwater.console import console, fail, print_json, print_table
from headwater.settings import Settings
from streams.settings import StreamsSettings


def _settings(ctx: typer.Context) -> Settings:
    from headwater.cli import settings_of

    return settings_of(ctx)


def worker(
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Worker processes."),
    loglevel: str = typer.Option("INFO", "--loglevel", help="DEBUG, INFO, WARNING or ERROR."),
) -> None:
    """Start the stream workers in the foreground (Ctrl-C stops them)."""
    from streams import worker as runner

    if workers == 1:
        runner.run(0, loglevel)
    else:
        raise typer.Exit(runner.run_many(workers, loglevel))


def search(
    ctx: typer.Context,
    query: str = typer.Argument("", help="Words to look for; empty lists everything."),
    index: str = typer.Option("products", "--index", "-i", help="products or reviews."),
    filters: list[str] = typer.Option(
        [], "--filter", "-f", help="field=value, e.g. category=books; repeatable."
    ),
    size: int = typer.Option(10, "--size", "-n", min=1, max=100),
    page: int = typer.Option(1, "--page", min=1),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Search an index and print the top hits."""
    from indexers.catalog import client, spec
    from indexers.search import SEARCHABLE, SearchError
    from indexers.search import search as run_search

    settings = _settings(ctx)
    prefix = StreamsSettings().index_prefix
    try:
        alias = spec(index, prefix).alias
        result = run_search(
            client(settings.elasticsearch), alias, index, query, filters, page, size
        )
    except (SearchError, ValueError) as exc:
        fail(str(exc))
    if as_json:
        print_json(result)
        return
    columns = SEARCHABLE[index].columns
    print_table(
        f"{result['total']} {index} match {query!r}" if query else f"{result['total']} {index}",
        [*columns, "score"],
        [
            [hit["source"].get(c) for c in columns]
            + [f"{hit['score']:.2f}" if hit["score"] is not None else ""]
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
    table: list[str] = typer.Option(
        [], "--table", "-t", help="products or reviews; repeatable. Default: both."
    ),
    wait: float = typer.Option(0.0, "--wait", help="Retry for up to this many seconds."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Reconcile source tables and search indexes: counts and a content hash per id."""
    from indexers.catalog import client
    from indexers.verify import TABLES, verify

    settings = _settings(ctx)
    tables = table or list(TABLES)
    for name in tables:
        if name not in TABLES:
            fail(f"--table must be one of {', '.join(TABLES)}; got {name!r}")
    es = client(settings.elasticsearch)
    prefix = StreamsSettings().index_prefix
    deadline = time.monotonic() + wait
    while True:
        reports = [verify(settings, es, name, prefix) for name in tables]
        if all(r.ok for r in reports) or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    if as_json:
        print_json(
            [
                {
                    "table": r.table,
                    "index": r.index,
                    "source_count": r.source_count,
                    "index_count": r.index_count,
                    "ok": r.ok,
                    "mismatches": [m.__dict__ for m in r.mismatches],
                }
                for r in reports
            ]
        )
    else:
        print_table(
            "search indexes vs source",
            ["table", "index", "source rows", "index docs", "missing", "extra", "stale", "ok"],
            [
                [
                    r.table,
                    r.index,
                    r.source_count,
                    r.index_count,
                    *(
                        sum(m.kind == k for m in r.mismatches)
                        for k in ("missing", "extra", "stale")
                    ),
                    "yes" if r.ok else "NO",
                ]
                for r in reports
            ],
        )
        for r in reports:
            for m in r.mismatches[:50]:
                console.print(
                    f"{r.table} id={m.id}: {m.kind} (source {m.source_hash}, index {m.index_hash})"
                )
            if len(r.mismatches) > 50:
                console.print(f"... and {len(r.mismatches) - 50} more in {r.table}")
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


indexers_app = typer.Typer(help="Search indexes behind aliases.", no_args_is_help=True)


@indexers_app.command("ensure")
def ensure(ctx: typer.Context) -> None:
    """Install the index templates and create each index behind its alias if missing."""
    from indexers.catalog import INDEX_NAMES, client, ensure_index, spec

    es = client(_settings(ctx).elasticsearch)
    prefix = StreamsSettings().index_prefix
    for name in INDEX_NAMES:
        index = spec(name, prefix)
        console.print(f"{index.alias} -> {ensure_index(es, index)}")


@indexers_app.command("reindex")
def reindex(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="products or reviews"),
    drop_old: bool = typer.Option(False, "--drop-old", help="Delete the previous version."),
) -> None:
    """Build the next version of NAME from the source and swap its alias atomically."""
    from indexers.catalog import client, spec
    from indexers.reindex import reindex as run_reindex

    settings = _settings(ctx)
    try:
        index = spec(name, StreamsSettings().index_prefix)
    except ValueError as exc:
        fail(str(exc))
    result = run_reindex(
        settings, client(settings.elasticsearch, timeout_s=300), index, drop_old, console.print
    )
    console.print(
        f"[green]{result.alias}[/] -> {result.new_index}: {result.loaded} from the source "
        f"(LSN {result.snapshot_lsn}), {result.copied} carried over from {result.old_index}"
    )
