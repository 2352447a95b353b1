"""`headwater bench search`'s pure parts: the query mix, the bodies sent to Elasticsearch
directly, percentiles and the goal."""

from __future__ import annotations

from collections import Counter
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest

from api import bench
from headwater.pipelines.declarations import Pipelines
from indexers.search import search_body, sortable, suggest_body

DOCS = [
    {"name": "Steel kettle", "brand": "Acme", "description": "Boils water fast"},
    {"name": "Camping lantern", "brand": "Lumo", "description": None},
]


def test_words_are_distinct_lower_case_and_long_enough() -> None:
    words = bench.words_of(DOCS, ["name", "brand", "description"])
    assert words == ["steel", "kettle", "acme", "boils", "water", "fast", "camping", "lantern",
                     "lumo"]  # fmt: skip


def test_the_mix_is_fixed_by_its_seed_and_keeps_the_proportions() -> None:
    words = bench.words_of(DOCS, ["name", "brand", "description"])
    facets = {"category": ["kitchen", "outdoor"], "brand": ["Acme"]}
    mix = bench.query_mix(words, facets, ["price", "name"], count=2000)
    assert mix == bench.query_mix(words, facets, ["price", "name"], count=2000)
    assert mix != bench.query_mix(words, facets, ["price", "name"], count=2000, seed=1)
    kinds = Counter(q.kind for q in mix)
    for kind, weight in bench.KINDS.items():
        assert abs(kinds[kind] / 2000 - weight / 100) < 0.04, kinds
    for q in mix:
        params = dict(q.params)
        if q.kind == "suggest":
            assert q.route == "suggestions" and 2 <= len(params["prefix"]) <= 5
            continue
        assert q.route == "search"
        assert ("q" in params) == (q.kind != "filter + sort")
        assert ("filter" in params) == ("filter" in q.kind)
        assert ("sort" in params) == ("sort" in q.kind)
        assert ("page" in params) == ("page" in q.kind)


def test_an_empty_index_gives_no_mix() -> None:
    with pytest.raises(ValueError, match="empty"):
        bench.query_mix([], {}, [])


def test_elasticsearch_gets_the_body_the_api_would_send(shop: Pipelines) -> None:
    declaration = shop.indexes["products"]
    search = bench.Query("words + sort, page 2-3", "search", (("q", "kettle"),
                         ("filter", "category=kitchen"), ("sort", "price:desc"), ("page", "2"),
                         ("size", "10")))  # fmt: skip
    _, body = bench.es_request(search, declaration, 100)
    expected = search_body(declaration, "kettle", ["category=kitchen"], 2, 10, 100, "price:desc")
    assert orjson.loads(body) == expected
    suggest = bench.Query("suggest", "suggestions", (("prefix", "ket"), ("size", "5")))
    _, body = bench.es_request(suggest, declaration, 100)
    assert orjson.loads(body) == suggest_body(declaration, "ket", 5)
    url = urlsplit(search.path("products"))
    assert url.path == "/api/v1/indexes/products/search"
    assert parse_qsl(url.query) == list(search.params)


def test_every_sort_of_the_mix_is_accepted(shop: Pipelines) -> None:
    declaration = shop.indexes["products"]
    for field in sortable(declaration):
        search_body(declaration, sort=f"{field}:desc")


def test_percentiles_and_summary() -> None:
    values = [float(i) for i in range(1, 101)]
    assert bench.percentile(values, 0.5) == 51 and bench.percentile(values, 0.99) == 100
    assert bench.percentile([], 0.5) == 0.0
    summary = bench.summarise([0.001] * 90 + [0.010] * 10, errors=2, duration_s=10)
    assert summary == {"requests": 100, "errors": 2, "rps": 10.0, "p50_ms": 1.0,
                       "p95_ms": 10.0, "p99_ms": 10.0}  # fmt: skip


def step(clients: int, p95: float, ratio: float) -> dict:
    api = {"rps": 900.0, "p50_ms": 5.0, "p95_ms": p95, "p99_ms": 30.0, "errors": 0}
    es = {"rps": 1000.0, "p50_ms": 3.0, "p95_ms": 6.0, "p99_ms": 9.0, "errors": 0}
    return {"clients": clients, "api": api, "elasticsearch": es, "ratio": ratio,
            "cores": {"api": 0.9, "elasticsearch": 0.7, "bench client": 0.3}}  # fmt: skip


def test_the_goal_is_judged_at_eight_clients() -> None:
    assert bench.goal([step(1, 50, 0.1), step(8, 19.5, 0.85)])["met"] is True
    assert bench.goal([step(8, 21, 0.9)])["met"] is False
    assert bench.goal([step(8, 10, 0.7)])["met"] is False
    assert bench.goal([step(4, 10, 0.9)]) == {"clients": 8, "measured": False}


def test_report_rows_have_one_cell_per_column() -> None:
    rows = bench.report_rows({"steps": [step(8, 19.5, 0.85)]})
    assert len(rows[0]) == len(bench.COLUMNS)
    assert rows[0][0] == "8" and rows[0][2] == "5.0 / 19.5 / 30.0" and rows[0][5] == "85%"
