from indexers.documents import merge_params, merge_product
from indexers.reindex import absent_ids


def test_ids_without_a_source_row_are_absent() -> None:
    assert absent_ids(["1", "2", "3", "4"], ["2", "4", "9"]) == ["1", "3"]


def test_a_marker_at_the_snapshot_hides_an_older_copy_but_not_a_newer_one() -> None:
    marker = merge_product(None, merge_params(product_lsn=100, product_live=False))
    assert marker is not None and marker["live"] is False
    stale = merge_params(product={"name": "stale"}, product_lsn=40)
    assert merge_product(marker, stale) is None
    newer = merge_product(marker, merge_params(product={"name": "back"}, product_lsn=140))
    assert newer is not None and newer["live"] is True and newer["name"] == "back"
