"""Expectation suites as code: one per warehouse table, built per run with its source counts.

Foreign keys are checked on derived boolean columns (`_product_found`, ...) that the load adds
from the dimension keys as they will be after the merge; GX then reports each miss by row.
"""

from __future__ import annotations

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
