"""Index declarations as Elasticsearch templates: each field role becomes its mapping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from headwater.pipelines.declarations import IndexDeclaration, IndexField, load
from indexers.mapping import ANALYSIS, field_mapping, filter_path, index_settings, template

KEYWORD = {"type": "keyword", "ignore_above": 8191}
SUMMARY: dict[str, Any] = {
    "name": "kids",
    "source": {"connector": "shop-source", "table": "public.kids"},
    "id": "id",
    "parent_key": "parent_id",
    "columns": {"score": "smallint", "label": "text", "at": "timestamptz"},
    "fields": {
        "kid_count": {"op": "count"},
        "score_avg": {"op": "avg", "column": "score"},
        "score_max": {"op": "max", "column": "score"},
        "latest_label": {"op": "latest", "column": "label", "by": "at"},
    },
}


def declare(fields: dict[str, dict[str, Any]], **changes: Any) -> IndexDeclaration:
    """An index declaration with an `id` field plus `fields`."""
    return IndexDeclaration.model_validate(
        {
            "name": "things",
            "source": {"connector": "shop-source", "table": "public.things"},
            "id": "id",
            "fields": {"id": {"type": "bigint", "filter": True}, **fields},
            **changes,
        }
    )


def field(**declared: Any) -> IndexField:
    return IndexField.model_validate(declared)


def test_search_and_facet_is_analysed_text_with_a_raw_keyword() -> None:
    assert field_mapping(field(type="text", search=True, facet=True, analyzer="english")) == {
        "type": "text",
        "analyzer": "english",
        "fields": {"raw": KEYWORD},
    }


@pytest.mark.parametrize("role", ["filter", "facet", "sort"])
def test_any_exact_role_of_a_searchable_field_adds_raw(role: str) -> None:
    assert field_mapping(field(type="text", search=True, **{role: True}))["fields"] == {
        "raw": KEYWORD
    }


def test_search_only_has_no_raw_sub_field() -> None:
    assert field_mapping(field(type="text", search=True)) == {
        "type": "text",
        "analyzer": "standard",
    }


@pytest.mark.parametrize(
    ("declared", "mapping"),
    [
        ({"type": "text", "facet": True}, KEYWORD),
        ({"type": "varchar(20)", "filter": True}, KEYWORD),
        ({"type": "bigint", "sort": True}, {"type": "long"}),
        ({"type": "numeric(10,2)", "filter": True}, {"type": "double"}),
        ({"type": "timestamptz", "sort": True}, {"type": "date"}),
        ({"type": "date"}, {"type": "date", "format": "strict_date"}),
        ({"type": "text[]", "facet": True}, KEYWORD),
    ],
)
def test_exact_fields_take_their_type_mapping(
    declared: dict[str, Any], mapping: dict[str, Any]
) -> None:
    assert field_mapping(field(**declared)) == mapping


@pytest.mark.parametrize(
    ("declared", "mapping"),
    [
        ("text", {**KEYWORD, "index": False, "doc_values": False}),
        ("integer", {"type": "integer", "index": False, "doc_values": False}),
        ("timestamptz", {"type": "date", "index": False, "doc_values": False}),
        ("jsonb", {"type": "object", "enabled": False}),
        ("bytea", {"type": "binary"}),
    ],
)
def test_stored_only_is_not_indexed(declared: str, mapping: dict[str, Any]) -> None:
    assert field_mapping(field(type=declared, stored_only=True)) == mapping


def test_field_mappings_do_not_share_state_with_the_type_table() -> None:
    stored = field_mapping(field(type="text", stored_only=True))
    assert field_mapping(field(type="text", facet=True)) == KEYWORD
    assert stored["index"] is False


def test_suggest_adds_an_autocomplete_sub_field_and_the_analysis() -> None:
    declaration = declare({"name": {"type": "text", "search": True, "sort": True, "suggest": True}})
    mapping = template(declaration, "things")["template"]["mappings"]["properties"]["name"]
    assert mapping["fields"] == {
        "raw": KEYWORD,
        "suggest": {"type": "text", "analyzer": "autocomplete", "search_analyzer": "folding"},
    }
    analysis = index_settings(declaration)["analysis"]
    assert analysis == ANALYSIS
    # Every analyzer the mapping names is defined (or built in).
    assert {"autocomplete", "folding"} <= set(analysis["analyzer"])
    assert analysis["analyzer"]["autocomplete"]["filter"][-1] in analysis["filter"]


def test_suggest_on_a_keyword_field_keeps_the_keyword() -> None:
    assert field_mapping(field(type="text", filter=True, suggest=True)) == {
        **KEYWORD,
        "fields": {
            "suggest": {"type": "text", "analyzer": "autocomplete", "search_analyzer": "folding"}
        },
    }


def test_the_folding_analyzer_needs_the_analysis_too() -> None:
    declaration = declare({"name": {"type": "text", "search": True, "analyzer": "folding"}})
    assert index_settings(declaration)["analysis"] == ANALYSIS


def test_built_in_analyzers_need_no_analysis() -> None:
    settings = index_settings(declare({"name": {"type": "text", "search": True}}))
    assert "analysis" not in settings
    assert settings["number_of_shards"] == 1
    assert settings["number_of_replicas"] == 0


def test_summary_figures_get_their_types() -> None:
    properties = template(declare({}, summaries=[SUMMARY]), "things")["template"]["mappings"][
        "properties"
    ]
    assert properties["kid_count"] == {"type": "long"}
    assert properties["score_avg"] == {"type": "double"}
    assert properties["score_max"] == {"type": "short"}
    assert properties["latest_label"] == KEYWORD


def test_machinery_fields_without_summaries() -> None:
    mappings = template(declare({}), "things")["template"]["mappings"]
    assert mappings["dynamic"] == "strict"
    assert mappings["properties"]["hw_live"] == {"type": "boolean"}
    assert mappings["properties"]["hw_lsn"] == {"type": "long"}
    assert "hw_children" not in mappings["properties"]
    assert set(mappings["properties"]) == {"id", "hw_live", "hw_lsn"}


def test_machinery_fields_with_summaries() -> None:
    properties = template(declare({}, summaries=[SUMMARY]), "things")["template"]["mappings"][
        "properties"
    ]
    assert properties["hw_children"] == {"type": "object", "enabled": False}
    assert {"hw_live", "hw_lsn"} <= set(properties)


@pytest.mark.parametrize(
    ("declared", "path"),
    [
        ({"type": "text", "search": True, "facet": True}, "brand.raw"),
        ({"type": "text", "facet": True}, "brand"),
        ({"type": "bigint", "filter": True}, "brand"),
    ],
)
def test_filter_path(declared: dict[str, Any], path: str) -> None:
    assert filter_path(field(**declared), "brand") == path


def test_the_template_follows_the_alias() -> None:
    body = template(declare({}), "hw-things")
    assert body["index_patterns"] == ["hw-things-v*"]
    assert body["_meta"]["declaration"] == "things"
    assert set(body["template"]) == {"settings", "mappings"}


def test_the_products_template() -> None:
    """The shop's products declaration, end to end through its template."""
    products = load(Path(__file__).parents[3] / "pipelines").index("products")
    body = template(products, "products")["template"]
    properties = body["mappings"]["properties"]
    assert properties["brand"] == {
        "type": "text",
        "analyzer": "standard",
        "fields": {"raw": KEYWORD},
    }
    assert set(properties["name"]["fields"]) == {"raw", "suggest"}
    assert properties["sku"] == KEYWORD
    assert properties["price"] == {"type": "double"}
    assert properties["review_count"] == {"type": "long"}
    assert properties["rating_avg"] == {"type": "double"}
    assert "hw_children" in properties
    assert "analysis" in body["settings"]
