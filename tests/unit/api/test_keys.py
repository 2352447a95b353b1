"""API keys: their shape, parsing and the digest kept of their secret."""

from __future__ import annotations

import pytest

from api import keys


def test_a_new_key_parses_back_to_its_id_and_matches_only_its_digest() -> None:
    key_id, token, stored = keys.new_token()
    assert token.startswith(f"hwk_{key_id}_") and len(key_id) == 16
    assert keys.looks_like_key(token)
    parsed = keys.parse(token)
    assert parsed is not None and parsed[0] == key_id
    secret = parsed[1]
    assert len(secret) >= 43  # 32 random bytes, base64url
    assert keys.matches(secret, stored)
    assert not keys.matches(secret[:-1] + ("A" if secret[-1] != "A" else "B"), stored)
    assert stored == keys.digest(secret) and secret.encode() not in stored


def test_two_keys_share_nothing() -> None:
    first, second = keys.new_token(), keys.new_token()
    assert first[0] != second[0] and first[1] != second[1] and first[2] != second[2]


@pytest.mark.parametrize(
    "token",
    [
        "",
        "hwk_",
        "hwk_0123456789abcdef",
        "hwk_0123456789abcdef_",
        "hwk_0123456789ABCDEF_secret",
        "hwk_0123_secret",
        "xyz_0123456789abcdef_secret",
        "eyJhbGciOiJIUzI1NiJ9.e30.sig",
    ],
)
def test_a_malformed_key_does_not_parse(token: str) -> None:
    assert keys.parse(token) is None


def test_a_secret_with_underscores_parses_whole() -> None:
    assert keys.parse("hwk_0123456789abcdef_a_b-c") == ("0123456789abcdef", "a_b-c")


def test_scopes_are_checked_and_put_in_order() -> None:
    assert keys.checked_scopes(["dashboards", "search", "search"]) == ("search", "dashboards")
    with pytest.raises(keys.BadScope, match="unknown scope write"):
        keys.checked_scopes(["search", "write"])
    with pytest.raises(keys.BadScope, match="at least one"):
        keys.checked_scopes([])
