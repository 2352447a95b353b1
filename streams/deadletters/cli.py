"""`headwater dlq list | show | redrive`: the dead letters of the workers' consumers, and
replaying them, each to the consumer that failed on it, after a fix."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import typer

from headwater.console import console, err_console, fail, print_json, print_table, settings_of
from headwater.resilience import DeadLetter
from headwater.settings import KafkaSettings
from streams.deadletters.logic import (
    OPEN,
    REDRIVEN,
    Mark,
    Selection,
    counts,
    find,
    mark_key,
    parse_since,
    pretty_value,
    redrivable,
    select,
    short_error,
    status,
)

app = typer.Typer(
    help="Dead letters: one per record a consumer failed on; list, show, and redrive them to "
    "that consumer after a fix.",
    no_args_is_help=True,
)

SINCE = typer.Option(
    None, "--since", help="Only letters last seen since: a duration back (30m, 2h, 1d) or a time."
)
KEY = typer.Option(None, "--key", help='Only letters of this record key: {"id":42}, or 42.')
CONSUMER = typer.Option(
    None, "--consumer", "-c", help="Only this consumer's letters (a pattern: search:*)."
)
APP = typer.Option(
    None, "--app", help="The worker app (consumer group); default HW_STREAMS_APP_ID's."
)
JSON = typer.Option(False, "--json", help="Print JSON.")


def _app_id(app_id: str | None) -> str:
    from streams.settings import StreamsSettings

    return app_id or StreamsSettings().app_id


def _selection(
    app_id: str, since: str | None, key: str | None, consumer: str | None, statuses: set[str]
) -> Selection:
    try:
        at = parse_since(since, datetime.now(UTC)) if since else None
    except ValueError as exc:
        fail(str(exc))
    return Selection(app_id, at, key, consumer, frozenset(statuses))


def _load(kafka: KafkaSettings, app_id: str) -> tuple[list[DeadLetter], dict[str, Mark]]:
    from streams.deadletters.store import read_letters, read_marks

    try:
        letters, unreadable = read_letters(kafka)
        marks = read_marks(kafka, app_id)
    except Exception as exc:  # Kafka unreachable, or a topic unreadable: say so plainly
        fail(f"cannot read the dead letters from Kafka: {exc}")
    if unreadable:
        err_console.print(f"[yellow]{unreadable} records of the dead-letter topics are no letters")
    return letters, marks


def _time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _as_json(letter: DeadLetter, marks: dict[str, Mark]) -> dict[str, Any]:
    mark = marks.get(mark_key(letter))
    return {
        "id": letter.id,
        "status": status(letter, marks),
        "where": letter.where,
        **letter.model_dump(mode="json"),
        "redriven_at": mark.at.isoformat() if mark and status(letter, marks) == REDRIVEN else None,
    }


@app.command("list")
def list_(
    ctx: typer.Context,
    since: str | None = SINCE,
    key: str | None = KEY,
    consumer: str | None = CONSUMER,
    app_id: str | None = APP,
    everything: bool = typer.Option(False, "--all", help="Redriven letters too."),
    as_json: bool = JSON,
) -> None:
    """The dead letters still to act on (with --all, the redriven ones too), and counts."""
    settings = settings_of(ctx)
    app_id = _app_id(app_id)
    letters, marks = _load(settings.kafka, app_id)
    statuses = {OPEN, REDRIVEN} if everything else {OPEN}
    chosen = select(letters, marks, _selection(app_id, since, key, consumer, statuses))
    tally = counts(chosen, marks)
    if as_json:
        print_json(
            {
                "app": app_id,
                "letters": [_as_json(x, marks) for x in chosen],
                "counts": {c: dict(n) for c, n in sorted(tally.items())},
            }
        )
        return
    print_table(
        f"{len(chosen)} dead letters of app {app_id}",
        ["id", "where", "consumer", "stage", "key", "error", "attempts", "first seen",
         "last seen", "status"],
        [
            [x.id, x.where, x.consumer or "-", x.stage, x.key, short_error(x.error, 40),
             x.attempts, _time(x.first_seen), _time(x.last_seen), status(x, marks)]
            for x in chosen
        ],
    )  # fmt: skip
    for name, n in sorted(tally.items()):
        console.print(f"{name}: " + ", ".join(f"{v} {k}" for k, v in sorted(n.items())))


@app.command()
def show(
    ctx: typer.Context,
    letter_id: str = typer.Argument(..., metavar="ID", help="A letter's id (from list)."),
    app_id: str | None = APP,
    as_json: bool = JSON,
) -> None:
    """One dead letter in full: where its record is, why and how often it failed, its value."""
    settings = settings_of(ctx)
    app_id = _app_id(app_id)
    letters, marks = _load(settings.kafka, app_id)
    found = find([x for x in letters if x.app in (app_id, "")], letter_id)
    if not found:
        fail(f"no dead letter {letter_id!r} in app {app_id} (see `headwater dlq list --all`)")
    if len(found) > 1:
        fail(f"{letter_id!r} names {len(found)} letters: " + ", ".join(x.id for x in found))
    letter = found[0]
    if as_json:
        print_json(_as_json(letter, marks))
        return
    mark = marks.get(mark_key(letter))
    rows = [
        ("id", letter.id),
        ("status", status(letter, marks)),
        ("app", letter.app or "-"),
        ("consumer", letter.consumer or "-"),
        ("stage", letter.stage),
        ("where", letter.where),
        ("key", letter.key),
        ("attempts", letter.attempts),
        ("first seen", _time(letter.first_seen)),
        ("last seen", _time(letter.last_seen)),
        ("last redrive", f"{mark.outcome} at {_time(mark.at)}" if mark else "-"),
    ]
    print_table(f"dead letter {letter.id}", ["field", "value"], rows)
    console.print("[bold]error[/]")
    console.print(letter.error, markup=False, highlight=False)
    console.print("[bold]value[/]")
    console.print(pretty_value(letter.value), markup=False, highlight=False)


@app.command()
def redrive(
    ctx: typer.Context,
    since: str | None = SINCE,
    key: str | None = KEY,
    consumer: str | None = CONSUMER,
    app_id: str | None = APP,
    dry_run: bool = typer.Option(False, "--dry-run", help="Only say what would be redriven."),
    timeout: float = typer.Option(
        120.0, "--timeout", min=1, help="Seconds to wait for the workers' answers."
    ),
    as_json: bool = JSON,
) -> None:
    """Replay the chosen open letters, each to the consumer that failed on it (no other
    consumer sees it again). Safe to repeat: a letter already redriven is never applied twice,
    and a redriven change older than what a consumer holds does not overwrite it. Exits 1 if
    any failed again or got no answer."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from streams.deadletters.store import NoWorker, Redriver

    settings = settings_of(ctx)
    app_id = _app_id(app_id)
    letters, marks = _load(settings.kafka, app_id)
    chosen = select(letters, marks, _selection(app_id, since, key, consumer, {OPEN}))
    skipped = [x for x in chosen if not redrivable(x)]
    chosen = [x for x in chosen if redrivable(x)]
    if skipped:
        err_console.print(
            f"[yellow]{len(skipped)} letters name no consumer (written before letters did) "
            "and cannot be redriven"
        )
    if dry_run or not chosen:
        if as_json:
            print_json({"app": app_id, "dry_run": dry_run, "would_redrive": [
                _as_json(x, marks) for x in chosen]})  # fmt: skip
        else:
            print_table(
                f"{'would redrive' if dry_run else 'nothing to redrive:'} {len(chosen)} letters",
                ["id", "consumer", "where", "key", "attempts", "error"],
                [[x.id, x.consumer, x.where, x.key, x.attempts, short_error(x.error)]
                 for x in chosen],
            )  # fmt: skip
        return
    redriver = Redriver(settings.kafka, app_id)
    try:
        try:
            progress = redriver.send(chosen)
        except NoWorker as exc:
            fail(str(exc))
        columns = (TextColumn("redriving"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[last]}"))  # fmt: skip
        with Progress(*columns, console=err_console, disable=as_json) as bar:
            task = bar.add_task("redrive", total=len(chosen), last="")

            def answered(key: str, mark: Mark) -> None:
                bar.update(task, advance=1, last=f"{key}: {mark.outcome}")

            redriver.follow(progress, timeout, answered)
    finally:
        redriver.close()
    summary = progress.summary()
    results = []
    for letter_key, letter in progress.asked.items():
        mark = progress.outcomes.get(letter_key)
        outcome = "pending" if mark is None else ("already" if mark.repeat else mark.outcome)
        results.append((letter, outcome))
    if as_json:
        print_json(
            {
                "app": app_id,
                "request": progress.request,
                "summary": summary,
                "letters": [{**_as_json(x, marks), "outcome": o} for x, o in results],
            }
        )
    else:
        print_table(
            f"redrive {progress.request} of app {app_id}",
            ["id", "consumer", "where", "key", "outcome"],
            [[x.id, x.consumer, x.where, x.key, o] for x, o in results],
        )
        console.print(", ".join(f"{v} {k}" for k, v in summary.items()))
        if summary["failed"]:
            console.print("the failed ones are dead letters again: `headwater dlq list`")
        if summary["pending"]:
            console.print(f"no answer within {timeout:g} s: is a worker of app {app_id} running?")
    if summary["failed"] or summary["pending"] or summary["unknown"]:
        raise typer.Exit(1)
