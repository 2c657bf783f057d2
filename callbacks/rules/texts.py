"""What the shopper may read, as message ids with parameters, never as finished sentences.

Klarna shows a refusal's `error_text` to the shopper inside the checkout, so it must be in the
order's language. The rules stay pure and know no language: they name a message and its
parameters (a `Text`), and the view layer renders it in the order's locale (callbacks/web/i18n.py)
from the gettext catalogs, or from the merchant's override in the shop file (`[texts.<id>]`).

MESSAGES is the one list of ids: the shop loader checks overrides against it, and `pybabel
extract` finds the English source strings through the `N_` marker (babel.cfg, docs/translations.md).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


def N_(message: str) -> str:  # noqa: N802 - the gettext convention pybabel looks for
    """Marks a string for `pybabel extract`; translated later, when the language is known."""
    return message


MESSAGES: Mapping[str, str] = MappingProxyType({
    # Klarna's synchronous callbacks: error_text shown inside the checkout.
    "unsupported_shipping_country": N_("Unfortunately we do not ship to %(country)s."),
    "unsupported_billing_country": N_("We cannot take orders billed to %(country)s. "
                                      "Please choose another billing country."),
    "billing_country_missing": N_("Please choose a billing country."),
    "unknown_currency": N_("This shop does not sell in %(currency)s."),
    "item_unidentified": N_("An item in the cart cannot be identified."),
    "item_unavailable": N_("An item in your cart is no longer available. Please review your cart."),
    "order_too_large": N_("The order is too large to be paid with Klarna. Please split it."),
    "out_of_stock": N_("%(name)s is out of stock."),
    "stock_left": N_("Only %(stock)s of %(name)s left."),
    "unreadable_order": N_("We could not read your order. Please try again."),
    "wrong_order": N_("This checkout no longer matches your order. Please reload the page."),
    "temporarily_unavailable": N_("We cannot check your order right now. Please try again in a moment."),
    # The demo shop's checkout page, after validation found the cart changed (a 303 back).
    "cart_changed": N_("Your cart changed while you were paying. Please check it and try again."),
})

PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def parameters(message_id: str) -> frozenset[str]:
    """The `%(name)s` placeholders a message (and any override of it) may use."""
    return frozenset(PLACEHOLDER.findall(MESSAGES[message_id]))


@dataclass(frozen=True)
class Text:
    """One shopper-facing message: an id of MESSAGES and the values of its placeholders."""

    id: str
    params: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.id not in MESSAGES:
            raise KeyError(f"unknown message id {self.id!r}")

    def english(self) -> str:
        """The English source text: logs, and a fallback where no language is known."""
        return MESSAGES[self.id] % dict(self.params)
