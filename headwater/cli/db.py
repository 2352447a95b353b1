"""Source-database schema: apply the SQL migrations in `migrations/` once each, in order."""

from __future__ import annotations

from pathlib import Path

import psycopg
import typer

from headwater.console import console, fail
from headwater.settings import PostgresSettings

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

app = typer.Typer(help="The source database's schema.")


def pending(applied: set[str], available: list[Path]) -> list[Path]:
    return [p for p in available if p.name not in applied]


def migrate(pg: PostgresSettings, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply every migration not applied yet, each in its own transaction. Returns their names."""
    available = sorted(directory.glob("*.sql"))
    done: list[str] = []
    with psycopg.connect(pg.dsn(pg.source_db)) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.commit()
        applied = {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}
        for path in pending(applied, available):
            with conn.transaction():
                conn.execute(path.read_text(encoding="utf-8"))
                conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (path.name,))
            done.append(path.name)
    return done


@app.command("migrate")
def migrate_command(ctx: typer.Context) -> None:
    """Create or update the shop schema and the API's own tables in the source database."""
    from headwater.console import settings_of

    pg = settings_of(ctx).postgres
    try:
        done = migrate(pg)
    except psycopg.Error as exc:
        fail(f"migration failed on {pg.host}:{pg.port}/{pg.source_db}: {exc}")
    if done:
        console.print(f"applied: {', '.join(done)}")
    else:
        console.print("schema is up to date")
