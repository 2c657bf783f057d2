"""The sandbox playing Klarna's Shipping Assistant (KSA) with a transport management system of
its own (docs/sandbox.md "The Shipping Assistant"; docs/klarna.md §4.6).

Klarna's KSA asks the merchant's TMS for shipping options while the shopper is in the checkout,
shows them in the iframe, adds the chosen one to the order as a `shipping_fee` line of its own,
and, once the shopper buys, has the TMS reserve the shipment: the completed order's
`selected_shipping_option` carries the TMS's `tms_reference` and the option's
`delivery_details` (carrier, class, product, timeslot, pickup location). When the TMS does not
answer, Klarna falls back to the `shipping_options` the merchant sent with the order. The
merchant should not use `shipping_option_update` then, and the sandbox never calls it.

Here the TMS is a table, by destination country, that tests and the demo set through
`/_sandbox/tms` (control.py). An order is played as a KSA order when it registers no
`shipping_option_update` URL and the table has options for its purchase country (on a real
account, KSA is switched on in Klarna's merchant portal; the table stands in for that). The
options offered are the table's for the shipping country, priced in the order's currency, or the
merchant's fallback when the table has none there or is set to fail. `refresh` runs after every
create, merchant update, applied address change and choice, under the order store's lock, and
puts the chosen option's line (only ever the one the sandbox added) at the end of the order.
"""
from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sandbox.errors import bad_value

if TYPE_CHECKING:
    from sandbox.orders import Order

METHODS = ("PickUpStore", "Home", "BoxReg", "BoxUnreg", "PickUpPoint", "Own", "Postal",
           "DHLPackstation", "Digital")
TEXT_KEYS = ("id", "name", "description", "carrier", "class")
OPTION_KEYS = {"id", "name", "description", "price", "tax_rate", "shipping_method", "preselected",
               "carrier", "class", "product", "timeslot", "pickup_location"}

# The default table: the example shop's KSA market (AT), and DE for an AT order shipped to
# Germany (DE's VAT on shipping then). Prices per currency, gross, minor units.
DEFAULT_TABLE: dict[str, list[dict[str, Any]]] = {
    "AT": [
        {"id": "tms-post-at-home", "name": "Post.at Paket – Hauszustellung",
         "description": "2–3 Werktage.", "price": {"EUR": 450}, "tax_rate": 2000,
         "shipping_method": "Home", "carrier": "Österreichische Post", "class": "standard",
         "product": {"name": "Paket Österreich", "identifier": "AT-PAKET"}, "preselected": True},
        {"id": "tms-dhl-at-shop", "name": "DHL Paket – PaketShop", "price": {"EUR": 390},
         "tax_rate": 2000, "shipping_method": "PickUpPoint", "carrier": "DHL", "class": "economy",
         "product": {"name": "DHL Paket", "identifier": "DHL-PS"},
         "pickup_location": {"id": "AT-1010-117", "name": "DHL Paketshop Wien Graben",
                             "address": {"street_address": "Graben 17", "postal_code": "1010",
                                         "city": "Wien", "country": "AT"}}},
        {"id": "tms-gls-at-express", "name": "GLS Express – morgen 8–12 Uhr", "price": {"EUR": 1290},
         "tax_rate": 2000, "shipping_method": "Home", "carrier": "GLS", "class": "express",
         "timeslot": {"id": "next-morning", "start": "08:00", "end": "12:00"}},
    ],
    "DE": [
        {"id": "tms-dhl-de-home", "name": "DHL Paket", "price": {"EUR": 590}, "tax_rate": 1900,
         "shipping_method": "Home", "carrier": "DHL", "class": "standard", "preselected": True},
        {"id": "tms-dhl-de-packstation", "name": "DHL Packstation", "price": {"EUR": 490},
         "tax_rate": 1900, "shipping_method": "DHLPackstation", "carrier": "DHL", "class": "standard",
         "pickup_location": {"id": "PS-101", "name": "Packstation 101 Berlin"}},
    ],
}


def tax_of(price: int, rate: int) -> int:
    """An option's tax, rounded half up: always within Klarna's ±1."""
    return price - (2 * price * 10000 + (10000 + rate)) // (2 * (10000 + rate))


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_table(table: Any) -> dict[str, list[dict[str, Any]]]:
    """A TMS table as the control API takes it; raises BAD_VALUE naming the field."""
    if not isinstance(table, Mapping):
        raise bad_value(["countries"])
    out: dict[str, list[dict[str, Any]]] = {}
    for country, options in table.items():
        where = f"countries.{country}"
        if not isinstance(country, str) or len(country) != 2 or not country.isalpha():
            raise bad_value([where])
        if not isinstance(options, list):
            raise bad_value([where])
        checked = []
        for i, option in enumerate(options):
            at = f"{where}[{i}]"
            if not isinstance(option, Mapping) or set(option) - OPTION_KEYS:
                raise bad_value([at])
            for key in ("id", "name"):
                if not isinstance(option.get(key), str) or not option[key]:
                    raise bad_value([f"{at}.{key}"])
            for key in ("description", "carrier", "class"):
                if key in option and not isinstance(option[key], str):
                    raise bad_value([f"{at}.{key}"])
            prices = option.get("price")
            if not isinstance(prices, Mapping) or not prices or not all(
                    isinstance(c, str) and len(c) == 3 and _int(p) and p >= 0 for c, p in prices.items()):
                raise bad_value([f"{at}.price"])
            if not _int(option.get("tax_rate")) or not 0 <= option["tax_rate"] <= 10000:
                raise bad_value([f"{at}.tax_rate"])
            if option.get("shipping_method", "Home") not in METHODS:
                raise bad_value([f"{at}.shipping_method"])
            if not isinstance(option.get("preselected", False), bool):
                raise bad_value([f"{at}.preselected"])
            for key in ("product", "timeslot", "pickup_location"):
                if key in option and not isinstance(option[key], Mapping):
                    raise bad_value([f"{at}.{key}"])
            checked.append(copy.deepcopy(dict(option)))
        out[country.upper()] = checked
    return out


def klarna_option(spec: Mapping[str, Any], currency: str) -> dict[str, Any]:
    """A TMS entry as Klarna shows it: Klarna's shipping_option, with its delivery_details."""
    price = spec["price"][currency]
    option: dict[str, Any] = {"id": spec["id"], "name": spec["name"], "price": price,
                              "tax_amount": tax_of(price, spec["tax_rate"]), "tax_rate": spec["tax_rate"],
                              "shipping_method": spec.get("shipping_method", "Home"),
                              "preselected": bool(spec.get("preselected"))}
    if spec.get("description"):
        option["description"] = spec["description"]
    details = {k: copy.deepcopy(spec[k]) for k in ("carrier", "class", "product", "timeslot",
                                                   "pickup_location") if k in spec}
    if details:
        option["delivery_details"] = details
    return option


def shipping_line(option: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "shipping_fee", "reference": option["id"], "name": option["name"],
            "quantity": 1, "unit_price": option["price"], "tax_rate": option["tax_rate"],
            "total_amount": option["price"], "total_discount_amount": 0,
            "total_tax_amount": option["tax_amount"]}


def _chosen(options: list[dict[str, Any]], wanted: str | None) -> dict[str, Any] | None:
    return copy.deepcopy(next((o for o in options if o.get("id") == wanted), None)
                         or next((o for o in options if o.get("preselected")), None)
                         or (options[0] if options else None))


class ShippingAssistant:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.table: dict[str, list[dict[str, Any]]] = copy.deepcopy(DEFAULT_TABLE)
        self.failing = False

    # -- the control API ---------------------------------------------------------------------
    def configure(self, body: Mapping[str, Any]) -> None:
        """`{"countries": {...}, "failing"?: bool}` replaces the table; `{"failing": bool}` alone
        keeps it and only makes the TMS stop (or start) answering."""
        failing = body.get("failing", False)
        if not isinstance(failing, bool):
            raise bad_value(["failing"])
        table = check_table(body["countries"]) if "countries" in body else None
        with self.lock:
            if table is not None:
                self.table = table
            self.failing = failing

    def reset(self) -> None:
        with self.lock:
            self.table, self.failing = copy.deepcopy(DEFAULT_TABLE), False

    def describe(self) -> dict[str, Any]:
        with self.lock:
            return {"countries": copy.deepcopy(self.table), "failing": self.failing}

    # -- orders --------------------------------------------------------------------------------
    def applies(self, data: Mapping[str, Any]) -> bool:
        """A KSA order: no shipping_option_update URL, and the TMS serves its purchase country."""
        urls = data.get("merchant_urls") or {}
        country = str(data.get("purchase_country") or "").upper()
        with self.lock:
            return "shipping_option_update" not in urls and bool(self.table.get(country))

    def offer(self, data: Mapping[str, Any]) -> tuple[list[dict[str, Any]], str]:
        """(options, "tms" | "fallback"): the TMS's for the shipping country in the order's
        currency, else the merchant's fallback shipping_options."""
        country = str((data.get("shipping_address") or {}).get("country")
                       or (data.get("billing_address") or {}).get("country")
                       or data.get("purchase_country") or "").upper()
        currency = str(data.get("purchase_currency") or "").upper()
        with self.lock:
            entries = [] if self.failing else self.table.get(country, [])
            offered = [klarna_option(e, currency) for e in entries if currency in e["price"]]
        if offered:
            return offered, "tms"
        fallback = [copy.deepcopy(dict(o)) for o in data.get("shipping_options") or [] if isinstance(o, Mapping)]
        return fallback, "fallback"

    def refresh(self, order: Order, wanted: str | None = None) -> None:
        """Bring a KSA order's shipping in line with what the TMS offers now: the shopper's
        option if still offered (`wanted`, else the one chosen before), else the preselected
        one, else the first; its line replaces the one the sandbox added before. Call with the
        order store's lock held."""
        if not self.applies(order.data):
            order.ksa = None
            return
        offered, source = self.offer(order.data)
        before = order.ksa or {}
        chosen = _chosen(offered, wanted or (before.get("selected") or {}).get("id"))
        data = order.data
        lines = [line for line in data.get("order_lines") or []
                 if not (line.get("type") == "shipping_fee" and before.get("line")
                         and line.get("reference") == before["line"])]
        if chosen is not None:
            lines.append(shipping_line(chosen))
        data["order_lines"] = lines
        data["order_amount"] = sum(line.get("total_amount") or 0 for line in lines)
        sales_tax = [line for line in lines if line.get("type") == "sales_tax"]
        data["order_tax_amount"] = (sum(line.get("total_amount") or 0 for line in sales_tax) if sales_tax
                                    else sum(line.get("total_tax_amount") or 0 for line in lines))
        if chosen is not None:
            data["selected_shipping_option"] = copy.deepcopy(chosen)
        else:
            data.pop("selected_shipping_option", None)
        order.ksa = {"offered": offered, "source": source, "selected": chosen,
                     "line": chosen["id"] if chosen else None}

    @staticmethod
    def reserve(option: Mapping[str, Any]) -> dict[str, Any]:
        """Buy: the TMS reserves the shipment and answers with its reference."""
        return {**copy.deepcopy(dict(option)), "tms_reference": str(uuid.uuid4())}
