"""The shop's rows as typed records: what a change event's `row` means for each source table,
and the catalogue's vocabulary (categories, their products, brands) that sample rows are made of.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

# The catalogue's vocabulary, shared by everything that writes sample products (the workload
# generator, the freshness benchmark) so their rows look alike. Order matters: callers index
# into these and draw from them with seeded generators, so reordering changes what they write.
CATALOGUE: dict[str, tuple[str, ...]] = {
    "kitchen": ("Kettle", "Chef Knife", "Frying Pan", "Coffee Grinder", "Blender"),
    "outdoor": ("Tent", "Hiking Boots", "Water Bottle", "Headlamp", "Backpack"),
    "electronics": ("Headphones", "Keyboard", "Webcam", "Charger", "Speaker"),
    "books": ("Cookbook", "Travel Guide", "Novel", "Field Guide", "Atlas"),
    "home": ("Lamp", "Rug", "Throw Pillow", "Wall Clock", "Bookshelf"),
}
"""Product nouns by category."""
BRANDS: tuple[str, ...] = (
    "Northwind",
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Hooli",
)
"""Brands a product may carry."""


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
