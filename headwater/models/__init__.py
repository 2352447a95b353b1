"""Shared models: the change-event envelope and the shop's rows."""

from headwater.models.cdc import ChangeEvent, MalformedEvent, decode_change
from headwater.models.shop import (
    ROW_MODELS,
    Customer,
    Interaction,
    Order,
    OrderItem,
    Product,
    Review,
)

__all__ = [
    "ROW_MODELS",
    "ChangeEvent",
    "Customer",
    "Interaction",
    "MalformedEvent",
    "Order",
    "OrderItem",
    "Product",
    "Review",
    "decode_change",
]
