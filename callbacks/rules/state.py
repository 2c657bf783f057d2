"""The session's state document and its event types (docs/design.md §7.2, §7.3), as types.

The state is stored and served as plain JSON, so it stays a dict at run time: a TypedDict gives
the checker and the reader its keys without a conversion on every read and write. The
storefront's `StateSchema` (callbacks/storefront/schemas.py) serves exactly these keys, and
tests/test_storefront.py checks that the two agree. (No `from __future__ import annotations`
here: TypedDict must see NotRequired[...] itself to tell optional keys from required ones.)
"""
from enum import StrEnum
from typing import NotRequired, TypedDict


class EventType(StrEnum):
    """What an event records. A str: stored, compared and served as its value."""

    CART_UPDATED = "cart_updated"
    MARKET_CHANGED = "market_changed"
    ADDRESS_UPDATED = "address_updated"
    SHIPPING_OPTION_SELECTED = "shipping_option_selected"
    VALIDATION_PASSED = "validation_passed"
    VALIDATION_FAILED = "validation_failed"
    ORDER_CREATED = "order_created"
    ORDER_UPDATED = "order_updated"
    ORDER_RECREATED = "order_recreated"
    ORDER_COMPLETED = "order_completed"
    ORDER_ACKNOWLEDGED = "order_acknowledged"
    FRAUD_STATUS_CHANGED = "fraud_status_changed"
    MERCHANT_REFERENCE_CHANGED = "merchant_reference_changed"  # set on checkout load
    # Order Management, after purchase (callbacks/orders/): actions taken through our API, and
    # the push's check of what was paid against the priced cart (rules/paid.py).
    ORDER_CAPTURED = "order_captured"
    ORDER_REFUNDED = "order_refunded"
    ORDER_CANCELLED = "order_cancelled"
    AUTHORIZATION_EXTENDED = "authorization_extended"
    AUTHORIZATION_RELEASED = "authorization_released"
    MERCHANT_REFERENCE_UPDATED = "merchant_reference_updated"
    ORDER_MISMATCH = "order_mismatch"
    # The merchant's back end set the session's extra merchant data (the order's `attachment`);
    # the event names its content type and size, never its body (rules/attachment.py).
    ATTACHMENT_UPDATED = "attachment_updated"


class CartLine(TypedDict):
    reference: str
    quantity: int


class Cart(TypedDict):
    items: list[CartLine]
    coupon: str | None


class MarketRef(TypedDict):
    country: str
    currency: str
    locale: str


class OrderLine(TypedDict):
    """One of Klarna's `order_lines`, as pricing.price_order builds it."""

    type: str
    reference: str
    name: str
    quantity: int
    unit_price: int
    tax_rate: int
    total_amount: int
    total_discount_amount: int
    total_tax_amount: int


class Order(TypedDict):
    order_amount: int
    order_tax_amount: int
    order_lines: list[OrderLine]


class ShippingOption(TypedDict):
    id: str
    name: str
    price: int
    tax_amount: int
    tax_rate: int
    preselected: bool
    description: NotRequired[str]
    shipping_method: NotRequired[str]


class KlarnaRef(TypedDict):
    """The session's Klarna order; the later keys appear as the order moves on."""

    order_id: str | None
    status: str | None
    synced_version: NotRequired[int]  # the session version the order was last brought in step with
    fraud_status: NotRequired[str | None]
    acknowledged: NotRequired[bool]
    account: NotRequired[str]  # the [klarna_accounts] name holding the order; absent: the environment's


class ValidationResult(TypedDict):
    result: str  # "passed" | "failed"
    order_id: str | None
    reason: NotRequired[str]  # "out_of_stock" | "cart_changed"
    details: NotRequired[list[str]]


class SessionState(TypedDict):
    session: str
    version: int
    cart: Cart
    market: MarketRef
    purchase_country: str
    pending_purchase_country: str | None
    billing_country: str | None
    billing_region: str | None
    shipping_country: str | None
    shipping_region: str | None
    selected_shipping_option: str | None
    order: Order
    shipping_options: list[ShippingOption]
    klarna: KlarnaRef
    validation: ValidationResult | None
    updated_at: str | None
    # The shop's order number, sent to Klarna; absent from states stored before it existed.
    merchant_reference1: NotRequired[str | None]
