"""`headwater api-keys`: create, list and revoke the API's keys (kept in PostgreSQL, hashed;
a key's secret is shown once, when it is made)."""

from __future__ import annotations

from typing import NoReturn

import psycopg
import typer

from api.keys import BadScope, direct_store
from api.settings import SCOPES
from headwater.console import console, fail, print_json, print_table, settings_of
from headwater.settings import PostgresSettings

app = typer.Typer(help="The HTTP API's keys.", no_args_is_help=True)


def _failed(pg: PostgresSettings, exc: psycopg.Error) -> NoReturn:
    hint = " (run `headwater db migrate`)" if isinstance(exc, psycopg.errors.UndefinedTable) else ""
    fail(f"the key table on {pg.host}:{pg.port}/{pg.source_db}: {exc}{hint}")


@app.command("create")
def create(
    ctx: typer.Context,
    name: str = typer.Option(..., "--name", help="Who or what the key is for."),
    scope: list[str] = typer.Option(
        ..., "--scope", help=f"Granted scope, repeatable: {', '.join(SCOPES)} (admin: all)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Make a key; its secret is printed this once and never stored."""
    pg = settings_of(ctx).postgres
    try:
        key, token = direct_store(pg).create(name, scope)
    except BadScope as exc:
        fail(str(exc))
    except psycopg.Error as exc:
        _failed(pg, exc)
    if as_json:
        print_json({**key.as_dict(), "key": token})
        return
    console.print(f"created key [bold]{key.id}[/] ({key.name}; scopes {', '.join(key.scopes)})")
    console.print("the key, shown only now (send it as `Authorization: Bearer <key>`):")
    print(token)


@app.command("list")
def list_keys(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    active: bool = typer.Option(False, "--active", help="Only keys not revoked."),
) -> None:
    """The keys: id, name, scopes, when made and revoked (never their secrets)."""
    pg = settings_of(ctx).postgres
    try:
        keys = direct_store(pg).list_keys(include_revoked=not active)
    except psycopg.Error as exc:
        _failed(pg, exc)
    if as_json:
        print_json([k.as_dict() for k in keys])
        return
    print_table(
        "API keys",
        ["id", "name", "scopes", "created", "revoked"],
        [
            [
                k.id,
                k.name,
                " ".join(k.scopes),
                f"{k.created_at:%Y-%m-%d %H:%M:%S}",
                f"{k.revoked_at:%Y-%m-%d %H:%M:%S}" if k.revoked_at else "",
            ]
            for k in keys
        ],
    )


@app.command("revoke")
def revoke(ctx: typer.Context, key_id: str = typer.Argument(..., help="The key's id.")) -> None:
    """Revoke a key: every API process refuses it from its next request."""
    pg = settings_of(ctx).postgres
    try:
        key = direct_store(pg).revoke(key_id)
    except psycopg.Error as exc:
        _failed(pg, exc)
    if key is None:
        fail(f"no key {key_id!r} (see `headwater api-keys list`)")
    console.print(f"revoked key {key.id} ({key.name})")
