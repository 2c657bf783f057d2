"""Write the two 1000-line samples: 999 goods lines + 1 shipping line = Klarna's maximum.

    .venv/bin/python samples/make_large_cart.py        # from the repository root

The example shop has 12 products, so goods lines repeat references — one line per recipient of
a corporate gift order, say, each with its own merchant_data. Klarna allows repeated references;
kco-sync merges them into one line per SKU (pricing.merge_items), so its reply has 9 goods lines
plus the shipping line; validation, which approves only the lines it priced, therefore answers
cart_changed. Only the products without a stock limit are used (TSHIRT-BLUE-M, MUG-ENAMEL and
BOOK-NORDIC-KITCHEN have stock 12, 0 and 3), so nothing is refused for stock. Amounts follow
Klarna's rules line by line (integer half-up tax), and the order totals are the sums of the lines.

Output (overwritten): samples/19-address_update-1000-lines.json and
samples/20-validation-1000-lines.json. Prices and names come from the shop file, so re-run this
after changing it.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from callbacks.rules import amounts as rules  # noqa: E402
from callbacks.rules.shop import load_shop  # noqa: E402

GOODS_LINES = 999
CURRENCY, COUNTRY, LOCALE, LANGUAGE = "SEK", "SE", "sv-SE", "sv"
SITE = "https://fjallvik.example"
SESSION = "web-corporate-gifts-2026"
ORDER_ID = "7d1f0c3e-2b9a-4e58-a6c4-91e0b5d27f3a"
ADDRESS = {"organization_name": "Testföretaget AB", "given_name": "Testperson-se",
           "family_name": "Approved", "email": "customer@email.se", "street_address": "Stårgatan 1",
           "postal_code": "12345", "city": "Ankeborg", "phone": "+46765260000", "country": COUNTRY}


def line_tax(total: int, rate: int) -> int:
    """total − round-half-up(total·10000 / (10000 + rate)), exactly."""
    return total - (2 * total * 10000 + 10000 + rate) // (2 * (10000 + rate))


def goods_lines(shop) -> list[dict]:
    market = shop.markets[COUNTRY]
    skus = [sku for sku, p in shop.products.items() if p.stock is None and CURRENCY in p.prices]
    lines = []
    for n in range(GOODS_LINES):
        sku = skus[n % len(skus)]
        product = shop.products[sku]
        quantity = n % 3 + 1
        unit = product.prices[CURRENCY]
        rate = market.tax[product.tax_class]
        total = quantity * unit
        slug = sku.lower()
        lines.append({
            "type": product.type, "reference": sku, "name": product.display_name(LANGUAGE),
            "quantity": quantity, "quantity_unit": "pcs", "unit_price": unit, "tax_rate": rate,
            "total_amount": total, "total_discount_amount": 0,
            "total_tax_amount": line_tax(total, rate),
            "merchant_data": json.dumps({"recipient": f"r{n + 1:04d}"}, separators=(",", ":")),
            "product_url": f"{SITE}/p/{slug}",
        })
    return lines


def shipping(shop, goods_total: int) -> tuple[dict, dict]:
    market = shop.markets[COUNTRY]
    option = next(o for o in market.shipping if o.preselected)
    price = option.price[CURRENCY]
    if option.free_over.get(CURRENCY) is not None and goods_total >= option.free_over[CURRENCY]:
        price = 0
    rate = market.tax[market.shipping_tax_class]
    tax = line_tax(price, rate)
    line = {"type": "shipping_fee", "reference": option.id, "name": option.display_name(LANGUAGE), "quantity": 1,
            "unit_price": price, "tax_rate": rate, "total_amount": price,
            "total_discount_amount": 0, "total_tax_amount": tax}
    selected = {"id": option.id, "name": option.display_name(LANGUAGE), "price": price, "tax_amount": tax,
                "tax_rate": rate, "preselected": True, "shipping_method": option.method}
    return line, selected


def body(shop) -> dict:
    lines = goods_lines(shop)
    fee, selected = shipping(shop, sum(line["total_amount"] for line in lines))
    lines.append(fee)
    return {
        "order_amount": sum(line["total_amount"] for line in lines),
        "order_tax_amount": sum(line["total_tax_amount"] for line in lines),
        "order_lines": lines,
        "billing_address": dict(ADDRESS), "shipping_address": dict(ADDRESS),
        "selected_shipping_option": selected,
        "purchase_currency": CURRENCY, "locale": LOCALE,
        "merchant_reference2": SESSION,
        "customer": {"type": "organization", "organization_registration_id": "556036-0793"},
    }


def validation(shop) -> dict:
    out = {"order_id": ORDER_ID, "status": "checkout_incomplete", "purchase_country": COUNTRY,
           **body(shop)}
    out["options"] = {"require_validate_callback_success": True,
                      "allowed_customer_types": ["person", "organization"]}
    out["started_at"], out["last_modified_at"] = "2026-11-27T08:12:40Z", "2026-11-27T08:31:05Z"
    return out


NOTE = ("Klarna's maximum: 999 goods lines + 1 shipping line = 1000 order lines (a corporate gift "
        "order, one line per recipient). The shop has 12 products, so references repeat — Klarna "
        "allows that — and kco-sync merges them into one line per SKU: {what}. Only products "
        "without a stock limit are used. Generated by samples/make_large_cart.py.")


def dump(sample: dict) -> str:
    """Readable but compact: the wrapper indented, one order line per text line."""
    lines = sample["body"]["order_lines"]
    text = json.dumps({**sample, "body": {**sample["body"], "order_lines": "@LINES@"}},
                      indent=2, ensure_ascii=False)
    rendered = ",\n      ".join(json.dumps(line, ensure_ascii=False) for line in lines)
    return text.replace('"@LINES@"', "[\n      " + rendered + "\n    ]") + "\n"


def main() -> None:
    shop = load_shop()
    samples = {
        "19-address_update-1000-lines.json": {
            "callback": "address_update",
            "note": NOTE.format(what="the reply has 9 goods lines and the shipping line, all in "
                                     "Klarna's rules"),
            "expect": {"status": 200}, "body": body(shop)},
        "20-validation-1000-lines.json": {
            "callback": "validation",
            "note": NOTE.format(what="validation approves only the lines kco-sync priced, "
                                     "and Klarna holds 999 goods lines where kco-sync priced 9, "
                                     "so the cart has changed (303 with kco_error=cart_changed)"),
            "expect": {"status": 303}, "body": validation(shop)},
    }
    for name, sample in samples.items():
        order = sample["body"]
        assert len(order["order_lines"]) == 1000, len(order["order_lines"])
        assert rules.order_errors(order) == [], rules.order_errors(order)
        text = dump(sample)
        assert json.loads(text) == sample
        (HERE / name).write_text(text, encoding="utf-8")
        print(f"wrote samples/{name}: {len(order['order_lines'])} lines, "
              f"order_amount {order['order_amount']} {order['purchase_currency']}, {len(text)} bytes")


if __name__ == "__main__":
    main()
