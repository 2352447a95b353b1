"""Secrets: which config keys hold one, how a config refers to one, and finding leaked values.

Pure. A secret lives in `.env` (or the environment) and in the services' own credential
stores, nowhere else: Kafka Connect is given secrets as environment variables and connector
configs refer to them as `${env:NAME}`, which Connect resolves at run time, so neither its REST
API nor its configs topic holds the value. `find_leaks` is the check that this holds.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# A key whose value is a secret: `database.password`, `sasl.jaas.config`, `ssl.key.password`,
# `api.secret`, `token`... Matched on the lower-cased key.
_SECRET_KEY = re.compile(r"password|passwd|secret|token|credential|jaas|api[._-]?key|private")
# Kafka's config-provider reference: ${provider:key} or ${provider:path:key}.
_REFERENCE = re.compile(r"\$\{([a-zA-Z][a-zA-Z0-9_]*):(?:([^:}]*):)?([^}]+)\}")
# The names of environment variables that hold a secret Connect may be given.
SECRET_ENV_NAME = re.compile(r"^HW_[A-Z0-9_]*(PASSWORD|SECRET|TOKEN|API_KEY)$")
MASK = "**********"
# Shorter values are not searched for: they would match by chance.
MIN_SECRET_LENGTH = 8


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key.lower()))


def masked(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a config mapping safe to print: values of secret-looking keys are masked."""
    return {k: MASK if is_secret_key(k) and v not in ("", None) else v for k, v in mapping.items()}


@dataclass(frozen=True)
class Reference:
    """`${env:HW_PG_PASSWORD}`: provider 'env', no path, key 'HW_PG_PASSWORD'."""

    provider: str
    path: str | None
    key: str


def references(value: str) -> list[Reference]:
    return [Reference(m.group(1), m.group(2), m.group(3)) for m in _REFERENCE.finditer(value)]


def holds_clear_secret(key: str, value: str) -> bool:
    """Whether a config entry would put a secret value in clear into a config store.

    A secret key is fine when its value is empty or every secret in it is a reference; a JAAS
    line may keep its module and user name in clear as long as the password is a reference.
    """
    if not is_secret_key(key) or not value.strip():
        return False
    if "jaas" in key.lower():
        passwords = re.findall(r'password\s*=\s*"([^"]*)"', value)
        return any(not _REFERENCE.fullmatch(p) for p in passwords)
    return _REFERENCE.fullmatch(value.strip()) is None


def resolve_env(value: str, secrets: Mapping[str, str]) -> str:
    """`value` with its ${env:NAME} references replaced from `secrets`, for our own clients."""
    return _REFERENCE.sub(
        lambda m: secrets.get(m.group(3), "") if m.group(1) == "env" else m.group(0), value
    )


@dataclass(frozen=True)
class Leak:
    """Where a secret was found, and which one (by name, never by value)."""

    where: str
    secret: str
    form: str  # "clear" or "base64"


def _forms(value: str) -> dict[str, bytes]:
    raw = value.encode()
    return {"clear": raw, "base64": base64.b64encode(raw).rstrip(b"=")}


def searchable(secrets: Mapping[str, str]) -> dict[str, str]:
    """The secrets long enough to search for without matching by chance."""
    return {name: value for name, value in secrets.items() if len(value) >= MIN_SECRET_LENGTH}


def find_leaks(where: str, data: bytes, secrets: Mapping[str, str]) -> list[Leak]:
    """Every secret of `secrets` (name -> value) that `data` contains, in clear or base64."""
    return [
        Leak(where, name, form)
        for name, value in searchable(secrets).items()
        for form, needle in _forms(value).items()
        if needle in data
    ]


def secret_env(environ: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The HW_*_PASSWORD / _SECRET / _TOKEN / _API_KEY variables of an environment, non-empty."""
    return {name: value for name, value in environ if SECRET_ENV_NAME.match(name) and value}
