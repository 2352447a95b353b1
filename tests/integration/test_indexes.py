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
