"""Connector specs: one YAML file per connector, named by role, with ${ENV} interpolation.

Pure: reading a file and a mapping of variables yields a `ConnectorSpec` or a `SpecError`
that names the file and the field at fault. Nothing here talks to Kafka Connect.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

from headwater.resilience import masked

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_NAME = re.compile(r"^[a-z][a-z0-9-]*$")


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


def parse_spec(path: Path, text: str, env: Mapping[str, str]) -> ConnectorSpec:
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
    if "connector.class" not in resolved:
        raise SpecError(f"{path}: config.connector.class is required")
    resolved["name"] = name
    return ConnectorSpec(name=name, config=resolved, path=path)


def load_specs(
    directory: Path, env: Mapping[str, str], names: list[str] | None = None
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
    return [parse_spec(f, f.read_text(encoding="utf-8"), env) for f in files]
