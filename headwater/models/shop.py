"""The shop's rows as typed records: what a change event's `row` means for each source table."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    id: int


class Customer(_Row):
    email: str
    full_name: str
    country: str
    created_at: AwareDatetime
    updated_at: AwareDatetime


class Product(_Row):
    sku: str
    name: str
    description: str
    category: str
    brand: str
    price: Decimal
    stock: int
    created_at: AwareDatetime
    updated_at: AwareDatetime


OrderStatus = Literal["pending", "paid", "shipped", "cancelled"]


class Order(_Row):
    customer_id: int
    status: OrderStatus
    total: Decimal
    created_at: AwareDatetime
    updated_at: AwareDatetime


class OrderItem(_Row):
    order_id: int
    product_id: int
    quantity: int
    unit_price: Decimal
    created_at: AwareDatetime


class Review(_Row):
    product_id: int
    customer_id: int
    rating: int
    body: str
    created_at: AwareDatetime
    updated_at: AwareDatetime


InteractionKind = Literal["page_view", "search", "click", "add_to_cart"]


class Interaction(_Row):
    customer_id: int
    product_id: int | None
    kind: InteractionKind
    query: str | None
    occurred_at: AwareDatetime


ROW_MODELS: dict[str, type[_Row]] = {
    "customers": Customer,
    "products": Product,
    "orders": Order,
    "order_items": OrderItem,
    "reviews": Review,
    "interactions": Interaction,
}
