"""Index specs: names under a prefix, and which template settings a live index takes."""

import pytest

from indexers.catalog import INDEX_NAMES, spec


@pytest.mark.parametrize("name", INDEX_NAMES)
def test_live_indexes_take_the_dynamic_settings_but_never_the_shard_count(name: str) -> None:
    index = spec(name, "t-")
    settings = index.template()["template"]["settings"]
    dynamic = index.dynamic_settings()
    assert "number_of_shards" in settings and "number_of_shards" not in dynamic
    assert dynamic["refresh_interval"] == settings["refresh_interval"]
    assert index.template()["index_patterns"] == [f"t-{name}-v*"]
