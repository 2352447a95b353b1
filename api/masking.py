"""Personal data out of log text: email addresses anywhere, and the values of fields that name a
person (`email`, `name`, `full_name`, ...) wherever they appear as a field: in a query string
(`?email=a@b.c&name=Ann`), a JSON or Python rendering of a mapping (`"name": "Ann"`), or a
mapping itself. Pure functions; `api.logs` applies them to every log record of the API.

Free text is not searched for names (a search for "ann smith" stays as typed): only emails are
recognisable there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MASK = "***"
EMAIL_MASK = "***@***"

# Field names holding a person's name or address, compared lower case without `_` and `-`.
PERSONAL_FIELDS = frozenset(
    {
        "email",
        "emailaddress",
        "mail",
        "name",
        "fullname",
        "firstname",
        "lastname",
        "givenname",
        "familyname",
        "surname",
        "customername",
        "username",
        "displayname",
    }
)

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+(?:@|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
# Any field-like name; whether it is personal is decided by `is_personal`.
_NAME = r"[A-Za-z][A-Za-z0-9_-]{0,40}"
# `key=value` in a query string or a form (up to the next `&`, space or quote).
_QUERY_FIELD = re.compile(rf"(?<![A-Za-z0-9_-])({_NAME})=([^&\s'\"]*)")
# `"key": "value"` or `'key': 'value'` (JSON, a Python repr), with an optional space.
_QUOTED_FIELD = re.compile(rf"""(["'])({_NAME})\1(\s*[:=]\s*)(["'])((?:\\.|(?!\4).)*)\4""")


def is_personal(field: str) -> bool:
    """Whether a field of this name holds a person's name or email address."""
    return field.lower().replace("_", "").replace("-", "") in PERSONAL_FIELDS


def mask_text(text: str) -> str:
    """`text` with every email address replaced, and the values of personal fields too."""
    if not text:
        return text

    def query_field(match: re.Match[str]) -> str:
        key, value = match.group(1), match.group(2)
        return f"{key}={MASK}" if is_personal(key) and value else match.group(0)

    def quoted_field(match: re.Match[str]) -> str:
        quote, key, sep, vquote, value = match.groups()
        if not is_personal(key) or not value:
            return match.group(0)
        return f"{quote}{key}{quote}{sep}{vquote}{MASK}{vquote}"

    # Each pattern only where its anchor character is: most lines have none of them.
    masked = text
    if '"' in masked or "'" in masked:
        masked = _QUOTED_FIELD.sub(quoted_field, masked)
    if "=" in masked:
        masked = _QUERY_FIELD.sub(query_field, masked)
    if "@" in masked or "%40" in masked:
        masked = _EMAIL.sub(EMAIL_MASK, masked)
    return masked


def mask_value(value: Any) -> Any:
    """A value as a log record may carry it: strings masked, mappings by field (personal fields
    replaced whole), sequences item by item; anything else (numbers, None) as it is."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, Mapping):
        return {
            k: (MASK if isinstance(k, str) and is_personal(k) and v else mask_value(v))
            for k, v in value.items()
        }
    if isinstance(value, tuple):
        return tuple(mask_value(v) for v in value)
    if isinstance(value, list):
        return [mask_value(v) for v in value]
    return value
