"""Personal data masked in log text: emails anywhere, personal fields by name."""

from __future__ import annotations

import pytest

from api.masking import EMAIL_MASK, MASK, is_personal, mask_text, mask_value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail from ann.smith+shop@example.co.uk today", f"mail from {EMAIL_MASK} today"),
        ("a@b.io,c@d.io", f"{EMAIL_MASK},{EMAIL_MASK}"),
        # Percent-encoded, as in an access line's query string.
        ("/search?q=ann%40example.com&page=2", f"/search?q={EMAIL_MASK}&page=2"),
        ("no address here: a @ b, x@y", "no address here: a @ b, x@y"),
    ],
)
def test_emails_are_masked_anywhere(text: str, expected: str) -> None:
    assert mask_text(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "GET /x?name=Ann+Smith&category=books&full_name=Ann%20Smith",
            f"GET /x?name={MASK}&category=books&full_name={MASK}",
        ),
        ("?lastName=Smith&firstName=Ann", f"?lastName={MASK}&firstName={MASK}"),
        ('{"email": "ann@example.com", "id": 7}', f'{{"email": "{MASK}", "id": 7}}'),
        (
            "{'full_name': 'Ann Smith', 'city': 'Oslo'}",
            f"{{'full_name': '{MASK}', 'city': 'Oslo'}}",
        ),
        ('"name":"Ann \\"A\\" Smith"', f'"name":"{MASK}"'),
        # Fields that only end or start like a personal one are left alone.
        ("?filename=report.csv&names_count=3", "?filename=report.csv&names_count=3"),
        ("?name=", "?name="),
    ],
)
def test_personal_fields_are_masked_by_name(text: str, expected: str) -> None:
    assert mask_text(text) == expected


def test_free_text_keeps_words_that_could_be_names() -> None:
    # Names are only recognisable as a field's value; a search for them stays as typed.
    assert mask_text('search q="ann smith" returned 3') == 'search q="ann smith" returned 3'


@pytest.mark.parametrize("field", ["email", "Email", "full_name", "FULL-NAME", "customerName"])
def test_personal_field_names(field: str) -> None:
    assert is_personal(field)


@pytest.mark.parametrize("field", ["id", "sku", "category", "named", "filename", "brand"])
def test_other_field_names(field: str) -> None:
    assert not is_personal(field)


def test_values_are_masked_by_structure() -> None:
    value = {
        "email": "ann@example.com",
        "customer": {"full_name": "Ann Smith", "orders": 3, "note": "write to bob@example.org"},
        "lines": [("x", "c@d.io"), 4],
        "name": None,
    }
    assert mask_value(value) == {
        "email": MASK,
        "customer": {"full_name": MASK, "orders": 3, "note": f"write to {EMAIL_MASK}"},
        "lines": [("x", EMAIL_MASK), 4],
        "name": None,
    }
    assert mask_value(("127.0.0.1:5", "GET", "/a?email=a%40b.co", "1.1", 200)) == (
        "127.0.0.1:5",
        "GET",
        f"/a?email={MASK}",
        "1.1",
        200,
    )
