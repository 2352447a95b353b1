"""Declared indexes on the real Elasticsearch: a worker refuses an index built from another
declaration instead of having every write to it rejected."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from headwater.pipelines.declarations import IndexDeclaration, load
from headwater.settings import PROJECT_ROOT, Settings
from indexers.catalog import IndexSpec, MappingOutdated, async_client, client, ensure_index_async

pytestmark = pytest.mark.integration


def test_a_worker_refuses_an_index_whose_mapping_is_not_the_declared_one(stack: Settings) -> None:
    reviews = load(PROJECT_ROOT / "pipelines").index("reviews")
    data = reviews.model_dump(exclude={"path"})
    data["fields"]["text"]["facet"] = True  # what a changed declaration would say
    changed = IndexDeclaration.model_validate(data)
    prefix = f"t-{uuid.uuid4().hex[:8]}-"

    async def ensure(declaration: IndexDeclaration) -> None:
        es = async_client(stack.elasticsearch)
        try:
            await ensure_index_async(es, IndexSpec(declaration, prefix))
        finally:
            await es.close()

    try:
        asyncio.run(ensure(reviews))
        asyncio.run(ensure(reviews))  # the same declaration again: fine
        with pytest.raises(MappingOutdated, match="field text mapped differently"):
            asyncio.run(ensure(changed))
    finally:
        es = client(stack.elasticsearch)
        es.options(ignore_status=404).indices.delete(index=f"{prefix}*")
        es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}reviews")


def test_an_index_of_the_old_layout_is_planned_as_a_reindex_and_rebuilt(stack: Settings) -> None:
    from connectors.sources import resolve
    from indexers.declared import declared_indexes
    from indexers.plan import plan_index
    from indexers.reindex import reindex
    from indexers.verify import verify

    prefix = f"t-{uuid.uuid4().hex[:8]}-"
    pipelines, bindings = resolve(stack)
    reviews = declared_indexes(pipelines, bindings, prefix)["reviews"]
    es = client(stack.elasticsearch, timeout_s=120)
    # What a stack from before the declarations holds: `live` and no `hw_*` fields.
    old = {
        "dynamic": "strict",
        "properties": {
            "id": {"type": "long"},
            "product_id": {"type": "long"},
            "text": {"type": "text"},
            "live": {"type": "boolean"},
        },
    }
    alias = reviews.alias
    es.indices.create(
        index=f"{alias}-v1",
        mappings=old,
        aliases={alias: {"filter": {"term": {"live": True}}, "is_write_index": True}},
    )
    try:
        es.index(
            index=alias,
            id="1",
            document={"id": 1, "product_id": 1, "text": "old", "live": True},
            refresh=True,
        )
        plan = plan_index(es, reviews.spec)
        assert plan.action == "reindex" and "new field hw_live" in plan.reasons[0]
        result = reindex(stack.elasticsearch, reviews.dsn, es, reviews.spec, reviews.shaper)
        assert result.new_index == f"{alias}-v2"
        assert plan_index(es, reviews.spec).action == "nothing"
        report = verify(reviews.dsn, es, reviews.spec, reviews.shaper)
        assert report.ok, report.mismatches[:5]
    finally:
        es.options(ignore_status=404).indices.delete(index=f"{prefix}*")
        es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}reviews")


def test_a_document_hinted_new_that_exists_is_read_and_merged(stack: Settings) -> None:
    """An insert's document is created without a read; when it exists after all (its review
    came first, or a replay), the create conflicts and the merge reads it: nothing is lost."""
    from indexers.bulk import AsyncBulkWriter
    from indexers.documents import Params
    from indexers.merge import AsyncMerger, MergeRequest

    products = load(PROJECT_ROOT / "pipelines").index("products")
    spec = IndexSpec(products, f"t-{uuid.uuid4().hex[:8]}-")
    row = {"name": "Lantern", "sku": "l-1", "price": 9.5, "stock": 3}

    async def run() -> tuple[dict[str, object], dict[str, object]]:
        es = async_client(stack.elasticsearch)
        try:
            await ensure_index_async(es, spec)
            merger = AsyncMerger(es, AsyncBulkWriter(es), products)
            review = Params(children={"reviews": {"7": [10, [4]]}})
            first = await merger.merge(spec.alias, [MergeRequest("1", review)])
            merger._known.clear()  # as after a restart: nothing remembered
            insert = Params(lsn=20, fields=row)
            second = await merger.merge(spec.alias, [MergeRequest("1", insert, new=True)])
            await es.indices.refresh(index=spec.alias)
            doc = (await es.get(index=spec.alias, id="1")).body["_source"]
            return {"first": first.written, "second": second.written}, doc
        finally:
            await es.close()

    try:
        written, doc = asyncio.run(run())
        assert written == {"first": 1, "second": 1}
        assert doc["name"] == "Lantern" and doc["hw_live"] is True
        assert doc["review_count"] == 1 and doc["rating_avg"] == 4
    finally:
        es = client(stack.elasticsearch)
        es.options(ignore_status=404).indices.delete(index=f"{spec.prefix}*")
        es.options(ignore_status=404).indices.delete_index_template(name=f"{spec.prefix}products")
