"""What a declaration allows is derived once per declaration object, and answers stay as
deriving it anew would."""

from __future__ import annotations

from headwater.pipelines.declarations import Pipelines
from indexers.search import per_declaration, searchable, shape_response, sortable


def test_derived_once_per_declaration_object(shop: Pipelines) -> None:
    calls: list[str] = []

    @per_declaration
    def derive(declaration):
        calls.append(declaration.name)
        return len(calls)

    products, reviews = shop.indexes["products"], shop.indexes["reviews"]
    assert [derive(products), derive(products), derive(reviews), derive(products)] == [1, 1, 2, 1]
    copy = products.model_copy(deep=True)
    assert derive(copy) == 3  # another object: derived for it


def test_cached_answers_equal_fresh_ones(shop: Pipelines) -> None:
    products = shop.indexes["products"]
    fresh = products.model_copy(deep=True)
    cached, again = searchable(products), searchable(fresh)
    assert cached is searchable(products) and sortable(products) == sortable(fresh)
    # The filters' parsers are functions made anew: compare what they filter on.
    assert {k: path for k, (path, _) in cached.filters.items()} == {
        k: path for k, (path, _) in again.filters.items()
    }
    assert (cached.fields, cached.facets, cached.sort) == (again.fields, again.facets, again.sort)


def test_a_filtered_answer_is_shaped_with_every_facet() -> None:
    # filter_path leaves out empty arrays: no hits, no buckets.
    shaped = shape_response({"hits": {"total": {"value": 0}}}, 1, 10, ("brand", "category"))
    assert shaped == {"total": 0, "page": 1, "size": 10, "hits": [],
                      "facets": {"brand": [], "category": []}}  # fmt: skip
