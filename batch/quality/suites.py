"""Expectation suites as code: one per warehouse table, built per run with its source counts.

Foreign keys are checked on derived boolean columns (`_product_found`, ...) that the load adds
from the dimension keys as they will be after the merge; GX then reports each miss by row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import great_expectations as gx


@dataclass(frozen=True)
class Plausible:
    """Bounds on a table's row count, derived from the source events of the same window."""

    min_rows: int
    max_rows: int


def _gx() -> Any:
    # Imported late: great_expectations takes seconds to import and needs pyspark[connect],
    # pyarrow and pandas<3 beside pyspark 4 (see tests/unit/batch/test_quality_import.py).
    import great_expectations

    return great_expectations


def _suite(name: str, expectations: list[Any]) -> gx.ExpectationSuite:
    return _gx().ExpectationSuite(name=name, expectations=expectations)


def _keys(*columns: str) -> list[Any]:
    e = _gx().expectations
    out: list[Any] = []
    for column in columns:
        out += [e.ExpectColumnValuesToNotBeNull(column=column)]
    if len(columns) == 1:
        out.append(e.ExpectColumnValuesToBeUnique(column=columns[0]))
    else:
        out.append(e.ExpectCompoundColumnsToBeUnique(column_list=list(columns)))
    return out


def _rows(bounds: Plausible | None) -> list[Any]:
    if bounds is None:
        return []
    return [
        _gx().expectations.ExpectTableRowCountToBeBetween(
            min_value=bounds.min_rows, max_value=bounds.max_rows
        )
    ]


def _found(column: str) -> Any:
    return _gx().expectations.ExpectColumnValuesToBeInSet(column=column, value_set=[True])


def _non_negative(*columns: str) -> list[Any]:
    e = _gx().expectations
    return [e.ExpectColumnValuesToBeBetween(column=c, min_value=0) for c in columns]


def dim_customer_suite(rows: Plausible | None = None) -> gx.ExpectationSuite:
    return _suite(
        "dim_customer",
        [
            *_keys("customer_key"),
            *_keys("customer_id", "valid_from"),
            # `_current_id` is customer_id on current versions, null otherwise.
            _gx().expectations.ExpectColumnValuesToBeUnique(column="_current_id"),
            _gx().expectations.ExpectColumnValuesToNotBeNull(column="email"),
            *_rows(rows),
        ],
    )


def dim_product_suite(rows: Plausible | None = None) -> gx.ExpectationSuite:
    return _suite(
        "dim_product",
        [*_keys("product_id"), *_non_negative("price"), *_rows(rows)],
    )


def dim_date_suite(rows: Plausible | None = None) -> gx.ExpectationSuite:
    return _suite("dim_date", [*_keys("date_key"), *_rows(rows)])


def fact_order_line_suite(rows: Plausible | None = None) -> gx.ExpectationSuite:
    e = _gx().expectations
    return _suite(
        "fact_order_line",
        [
            *_keys("order_item_id"),
            *[
                e.ExpectColumnValuesToNotBeNull(column=c)
                for c in (
                    "order_id",
                    "product_id",
                    "customer_id",
                    "date_key",
                    "quantity",
                    "unit_price",
                )
            ],
            *_non_negative("quantity", "unit_price", "line_amount"),
            _found("_product_found"),
            _found("_customer_found"),
            _found("_date_found"),
            *_rows(rows),
        ],
    )


def agg_daily_sales_suite(rows: Plausible | None = None) -> gx.ExpectationSuite:
    return _suite(
        "agg_daily_sales",
        [
            *_keys("date_key"),
            *_non_negative("orders", "order_lines", "units", "revenue"),
            _found("_date_found"),
            *_rows(rows),
        ],
    )


def mirror_current_suite(name: str, keys: Sequence[str], rows: int) -> gx.ExpectationSuite:
    """A mirror's current table after the merge: one row per key, as many as the source has."""
    e = _gx().expectations
    return _suite(name, [*_keys(*keys), e.ExpectTableRowCountToEqual(value=rows)])


def mirror_changes_suite(
    name: str, keys: Sequence[str], columns: Sequence[str]
) -> gx.ExpectationSuite:
    """The staged changes: keys present, and every value readable as its declared type.

    `_bad_<column>` holds why a value did not fit its type (null when it did), so the report
    names the column, the value and the reason.
    """
    e = _gx().expectations
    return _suite(
        f"{name}_changes",
        [
            *[e.ExpectColumnValuesToNotBeNull(column=k) for k in keys],
            *[e.ExpectColumnValuesToBeNull(column=f"_bad_{c}") for c in columns],
            e.ExpectColumnValuesToBeNull(column="_bad_change"),
        ],
    )


def mirror_history_suite(name: str, keys: Sequence[str]) -> gx.ExpectationSuite:
    """SCD2 versions of the keys a load touched: one per (key, LSN), one current per key."""
    e = _gx().expectations
    return _suite(
        f"{name}_history",
        [
            *_keys(*keys, "hw_lsn"),
            e.ExpectColumnValuesToNotBeNull(column="valid_from"),
            # `_current_key` is the key on current versions, null otherwise.
            e.ExpectColumnValuesToBeUnique(column="_current_key"),
            e.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="valid_to",
                column_B="valid_from",
                or_equal=True,
                ignore_row_if="either_value_is_missing",
            ),
        ],
    )
