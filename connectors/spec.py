"""Connector specs: one YAML file per connector, named by role, with ${ENV} interpolation.

Pure: reading a file and a mapping of variables yields a `ConnectorSpec` or a `SpecError`
that names the file and the field at fault. Nothing here talks to Kafka Connect.

Secrets are never interpolated: a spec names one as `${env:NAME}` (or `${file:path:key}`),
which Kafka Connect resolves at run time from its config providers, so the value is in
neither Connect's REST API nor its configs topic. A secret in clear is refused.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

from headwater.secrets import SECRET_ENV_NAME, holds_clear_secret, masked, references

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
# The config providers Connect is started with (see the stack's worker properties).
PROVIDERS = ("env", "file")


class SpecError(ValueError):
    """A connector spec that cannot be used; the message names the file and the field."""


class ConnectorSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    config: dict[str, str]
    path: Path

    @property
    def connector_class(self) -> str:
        return self.config["connector.class"]

    def safe_config(self) -> dict[str, Any]:
        """The config with secrets masked, for printing."""
        return masked(self.config)


def interpolate(text: str, env: Mapping[str, str], where: str) -> str:
    """Replace ${NAME} and ${NAME:-default}; an unset variable without default is an error."""

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if SECRET_ENV_NAME.match(name):
            raise SpecError(
                f"{where}: ${{{name}}} would copy a secret into Connect's config in clear; "
                f"write ${{env:{name}}} so that Connect reads it at run time"
            )
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise SpecError(f"{where}: variable ${{{name}}} is not set")

    return _VAR.sub(substitute, text)


def _scalar(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise SpecError(f"{where}: must be a string, number or boolean, got {type(value).__name__}")


def check_secrets(key: str, value: str, secret_names: Collection[str] | None, where: str) -> None:
    """Refuse a secret in clear, an unknown config provider, or an env secret Connect lacks."""
    if holds_clear_secret(key, value):
        raise SpecError(
            f"{where} holds a secret in clear, which Connect would show in its REST API and "
            "keep in its configs topic; name it as ${env:NAME} (a variable of .env) instead"
        )
    for ref in references(value):
        if ref.provider not in PROVIDERS:
            raise SpecError(
                f"{where}: unknown config provider {ref.provider!r} "
                f"(Connect has {', '.join(PROVIDERS)})"
            )
        if ref.provider == "env" and secret_names is not None and ref.key not in secret_names:
            raise SpecError(
                f"{where}: ${{env:{ref.key}}} is not a secret Connect is given; set it in .env "
                "(HW_ names ending in _PASSWORD, _SECRET, _TOKEN or _API_KEY) and restart "
                "Connect (`headwater stack down && headwater stack up`)"
            )


def parse_spec(
    path: Path,
    text: str,
    env: Mapping[str, str],
    secret_names: Collection[str] | None = None,
) -> ConnectorSpec:
    """A spec from its text; `secret_names`, when given, are the ${env:...} Connect can read."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise SpecError(f"{path}: must be a mapping with `name` and `config`")
    unknown = sorted(set(data) - {"name", "config"})
    if unknown:
        raise SpecError(f"{path}: unknown top-level field(s) {', '.join(unknown)}")
    name = data.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise SpecError(
            f"{path}: field `name` must be lower-case words joined by '-', got {name!r}"
        )
    if name != path.stem:
        raise SpecError(f"{path}: field `name` is {name!r} but the file is named {path.stem!r}")
    config = data.get("config")
    if not isinstance(config, dict) or not config:
        raise SpecError(f"{path}: field `config` must be a non-empty mapping")
    resolved: dict[str, str] = {}
    for key, value in config.items():
        where = f"{path}: config.{key}"
        resolved[str(key)] = interpolate(_scalar(value, where), env, where)
        check_secrets(str(key), resolved[str(key)], secret_names, where)
    if "connector.class" not in resolved:
        raise SpecError(f"{path}: config.connector.class is required")
    resolved["name"] = name
    return ConnectorSpec(name=name, config=resolved, path=path)


def load_specs(
    directory: Path,
    env: Mapping[str, str],
    names: list[str] | None = None,
    secret_names: Collection[str] | None = None,
) -> list[ConnectorSpec]:
    """Every spec in `directory` (or the named ones), all parsed before any is used."""
    files = sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml"))
    by_name = {f.stem: f for f in files}
    if names:
        missing = [n for n in names if n not in by_name]
        if missing:
            known = ", ".join(sorted(by_name)) or "none"
            raise SpecError(f"no spec named {', '.join(missing)} in {directory} (known: {known})")
        files = [by_name[n] for n in names]
    return [parse_spec(f, f.read_text(encoding="utf-8"), env, secret_names) for f in files]
