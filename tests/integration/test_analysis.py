"""Analysis on the real local Elasticsearch: the analysis-common names production clusters have.

The local node is the integ-test distribution plus the stack's analysis plugin; these requests are
written as against any Elasticsearch, so they hold for the official image too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from headwater.settings import Settings
from headwater.stack import analysis_plugin
from headwater.stack.layout import StackLayout
from headwater.stack.probes import elasticsearch_plugins

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ANALYSIS = {
    "filter": {
        "kettle_synonyms": {"type": "synonym_graph", "synonyms": ["kettle, boiler"]},
        "old_synonyms": {"type": "synonym", "synonyms": ["tv => television"]},
        "prefixes": {"type": "edge_ngram", "min_gram": 2, "max_gram": 10},
        "english_stemmer": {"type": "stemmer", "language": "english"},
    },
    "analyzer": {
        # One chain with every piece: folding, index-time synonyms, then prefixes.
        "everything": {
            "type": "custom",
            "tokenizer": "standard",
            "filter": ["lowercase", "asciifolding", "old_synonyms", "kettle_synonyms", "prefixes"],
        },
        # The usual autocomplete pair: prefixes when indexing, synonyms when searching.
        "autocomplete": {
            "type": "custom",
            "tokenizer": "standard",
            "filter": ["lowercase", "asciifolding", "prefixes"],
        },
        "autocomplete_search": {
            "type": "custom",
            "tokenizer": "standard",
            "filter": ["lowercase", "asciifolding", "kettle_synonyms"],
        },
        "stemmed": {
            "type": "custom",
            "tokenizer": "standard",
            "filter": ["lowercase", "english_stemmer"],
        },
        "english_keeping_the": {"type": "english", "stopwords": "_none_"},
    },
}


@pytest.fixture(scope="module")
def es(stack: Settings) -> Iterator[httpx.Client]:
    settings = stack.elasticsearch
    with httpx.Client(
        base_url=settings.url.rstrip("/"), timeout=30, **settings.httpx_options()
    ) as client:
        yield client


@pytest.fixture
def index(es: httpx.Client, unique_name: Callable[[str], str]) -> Iterator[str]:
    """A throwaway index with the custom analyzers; deleted after the test."""
    name = unique_name("t-analysis")
    response = es.put(
        f"/{name}",
        json={
            "settings": {"number_of_shards": 1, "number_of_replicas": 0, "analysis": ANALYSIS},
            "mappings": {
                "properties": {
                    "title": {
                        "type": "text",
                        "analyzer": "autocomplete",
                        "search_analyzer": "autocomplete_search",
                    }
                }
            },
        },
    )
    assert response.status_code == 200, response.text
    yield name
    es.delete(f"/{name}")


def tokens(es: httpx.Client, body: dict[str, Any], index: str | None = None) -> list[str]:
    response = es.post(f"/{index}/_analyze" if index else "/_analyze", json=body)
    assert response.status_code == 200, response.text
    return [token["token"] for token in response.json()["tokens"]]


def test_the_node_runs_the_installed_plugin_build(stack: Settings) -> None:
    home = StackLayout.of(stack.stack).elasticsearch_home
    installed = analysis_plugin.installed_version(home)
    assert installed is not None
    assert elasticsearch_plugins(stack) == {analysis_plugin.PLUGIN_NAME: installed}


def test_english_stems_plurals_and_drops_stop_words(es: httpx.Client) -> None:
    plural = tokens(es, {"analyzer": "english", "text": "the kettles"})
    singular = tokens(es, {"analyzer": "english", "text": "a kettle"})
    assert plural == singular == ["kettl"]


def test_other_language_analyzers_are_there(es: httpx.Client) -> None:
    assert tokens(es, {"analyzer": "german", "text": "die Häuser"}) == ["haus"]
    assert tokens(es, {"analyzer": "french", "text": "l'église"}) == ["eglis"]


def test_a_configured_language_analyzer_takes_its_stopwords(es: httpx.Client, index: str) -> None:
    assert tokens(es, {"analyzer": "english_keeping_the", "text": "The kettles"}, index) == [
        "the",
        "kettl",
    ]


def test_folding_synonyms_and_prefixes_in_one_chain(es: httpx.Client, index: str) -> None:
    found = tokens(es, {"analyzer": "everything", "text": "Crème kettle tv"}, index)
    assert "creme" in found and "crème" not in found  # lowercased, then folded
    assert "boiler" in found  # synonym_graph expanded kettle
    assert "television" in found and "tv" not in found  # synonym replaced tv
    assert {"ke", "ket", "kett", "kettl", "kettle"} <= set(found)  # prefixes of kettle


def test_synonym_rules_go_through_the_filters_before_them(es: httpx.Client, index: str) -> None:
    # The rule says "kettle"; "KETTLE" matches because lowercase runs before the synonyms,
    # on the text and on the rules alike.
    assert tokens(es, {"analyzer": "autocomplete_search", "text": "KETTLE"}, index) == [
        "boiler",
        "kettle",
    ]


def test_the_stemmer_filter_with_a_language(es: httpx.Client, index: str) -> None:
    assert tokens(es, {"analyzer": "stemmed", "text": "Kettles running"}, index) == [
        "kettl",
        "run",
    ]
    inline = {
        "tokenizer": "standard",
        "filter": [{"type": "stemmer", "language": "light_english"}],
        "text": "kettles",
    }
    assert tokens(es, inline) == ["kettle"]


def test_the_edge_ngram_tokenizer(es: httpx.Client) -> None:
    body = {
        "tokenizer": {
            "type": "edge_ngram",
            "min_gram": 2,
            "max_gram": 4,
            "token_chars": ["letter"],
        },
        "text": "Ket-tle",
    }
    assert tokens(es, body) == ["Ke", "Ket", "tl", "tle"]


def test_an_autocomplete_field_finds_prefixes_folded_words_and_synonyms(
    es: httpx.Client, index: str
) -> None:
    response = es.put(
        f"/{index}/_doc/1", params={"refresh": "true"}, json={"title": "Crème kettle"}
    )
    assert response.status_code == 201, response.text
    for query in ("ket", "creme", "boiler", "CRÈME KETTLE"):
        hits = es.post(f"/{index}/_search", json={"query": {"match": {"title": query}}}).json()[
            "hits"
        ]
        assert hits["total"]["value"] == 1, query
    miss = es.post(f"/{index}/_search", json={"query": {"match": {"title": "teapot"}}}).json()
    assert miss["hits"]["total"]["value"] == 0


def test_unknown_parameters_fail_as_in_production(es: httpx.Client) -> None:
    body = {
        "tokenizer": "standard",
        "filter": [{"type": "stemmer", "language": "klingon"}],
        "text": "x",
    }
    response = es.post("/_analyze", json=body)
    assert response.status_code == 400
    assert "klingon" in response.text
