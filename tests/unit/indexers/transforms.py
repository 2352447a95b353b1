"""Transforms for the tests: what a user's `transform: package.module:function` looks like."""

from __future__ import annotations

from typing import Any


def with_label(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "label": f"{doc['name']} ({doc['sku']})"}


def broken(doc: dict[str, Any]) -> dict[str, Any]:
    raise ValueError("no luck")


def adds_undeclared(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "surprise": 1}
