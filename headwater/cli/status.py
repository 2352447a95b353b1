"""`headwater status`: how far behind each stage of the pipeline is, in time, and its state."""

from __future__ import annotations

import typer

from headwater.console import print_json, print_table, settings_of


def status(
    ctx: typer.Context,
    json: bool = typer.Option(False, "--json", help="One JSON document instead of a table."),
    interval: float | None = typer.Option(
        None, "--interval", min=0.5, help="Seconds between the two looks (HW_STATUS_SAMPLE_S)."
    ),
    workers: int | None = typer.Option(
        None, "--workers", "-w", min=0, help="Stream workers to ask (HW_API_WORKERS)."
    ),
) -> None:
    """Lag per stage of the pipeline, in time, from two looks a few seconds apart.

    Rows: each source connector (source commit -> Kafka: the newest record's delay, and the
    WAL its slot has yet to send), each replication slot's retained WAL, each topic the
    worker group consumes (Kafka -> worker: records behind and the age of the oldest one not
    processed) and each worker (worker -> sink: Kafka-to-acknowledgement p95 of what it wrote
    in between). States: ok; busy (behind, but advancing); stalled (behind, and nothing moved
    between the looks); down (connector not running, slot inactive, worker unreachable).

    Exit status: 0 when every row is ok or busy, 2 when one is stalled, 3 when one is down
    (the worst wins).
    """
    from api.settings import ApiSettings
    from streams.settings import StreamsSettings
    from streams.status.logic import exit_code, table_rows, worst
    from streams.status.probe import status as look_twice

    settings = settings_of(ctx)
    streams = StreamsSettings()
    interval_s = settings.status.sample_s if interval is None else interval
    count = ApiSettings().workers if workers is None else workers
    rows = look_twice(settings, streams, count, interval_s)
    overall = worst(r.state for r in rows)
    if json:
        print_json({"state": overall, "group": streams.app_id, "interval_s": interval_s,
                    "rows": [r.as_dict() for r in rows]})  # fmt: skip
    else:
        print_table(
            f"headwater pipeline: {overall} (group {streams.app_id}, looks {interval_s:g} s apart)",
            ["stage", "name", "state", "lag", "behind", "detail"],
            table_rows(rows),
        )
    raise typer.Exit(exit_code(rows))
