"""Klarna request bodies for tests, shaped as in docs/klarna.md §11 (names and street
addresses included, because Klarna sends them and we must never keep them)."""
from __future__ import annotations

import uuid


def goods_line(shop, sku: str, quantity: int, currency: str, tax_rate: int) -> dict:
    """A goods line as Klarna would echo it back; amounts follow Klarna's rules."""
    product = shop.products[sku]
    unit = product.prices.get(currency, 1000)
    total = unit * quantity
    tax = total - (2 * total * 10000 + (10000 + tax_rate)) // (2 * (10000 + tax_rate))
    return {"type": product.type, "reference": sku, "name": product.name, "quantity": quantity,
            "quantity_unit": "pcs", "unit_price": unit, "tax_rate": tax_rate, "total_amount": total,
            "total_discount_amount": 0, "total_tax_amount": tax,
            "product_url": f"https://shop.example/p/{sku}"}


def address(country: str, region: str | None = None) -> dict:
    out = {"given_name": "Testperson-se", "family_name": "Approved", "email": "customer@example.com",
           "street_address": "Stårgatan 1", "postal_code": "12345", "city": "Ankeborg",
           "phone": "+46765260000", "country": country}
    if region:
        out["region"] = region
    return out


def shipping_service_body(lines, *, currency="SEK", country="SE", locale="sv-SE", region=None) -> dict:
    return {
        "order_amount": sum(line["total_amount"] for line in lines),
        "order_tax_amount": sum(line["total_tax_amount"] for line in lines),
        "order_lines": lines,
        "billing_address": address(country, region),
        "shipping_address": address(country, region),
        "purchase_currency": currency,
        "locale": locale,
        "customer": {"type": "person", "date_of_birth": "1941-03-21"},
    }


def validation_body(lines, *, currency="SEK", country="SE", locale="sv-SE", order_amount=None,
                    order_tax_amount=None, order_id=None) -> dict:
    body = shipping_service_body(lines, currency=currency, country=country, locale=locale)
    body.update({
        "order_id": order_id or str(uuid.uuid4()),
        "status": "checkout_incomplete",
        "purchase_country": country,
        "merchant_reference2": "s-1",
        "options": {"require_validate_callback_success": True},
    })
    if order_amount is not None:
        body["order_amount"] = order_amount
    if order_tax_amount is not None:
        body["order_tax_amount"] = order_tax_amount
    fee = next((line for line in lines if line.get("type") == "shipping_fee"), None)
    if fee:
        body["selected_shipping_option"] = {"id": fee["reference"], "name": fee["name"],
                                            "price": fee["unit_price"], "tax_amount": fee["total_tax_amount"],
                                            "tax_rate": fee["tax_rate"]}
    return body
