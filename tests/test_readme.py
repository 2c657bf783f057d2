"""The README's curl examples, posted as a new user would, must get the replies it describes."""
from __future__ import annotations

import json
import re
from pathlib import Path

from callbacks.rules import amounts as rules

README = Path(__file__).resolve().parents[1] / "README.md"
CURL = re.compile(r"curl -si? \"\$KCO/(\w+)\?[^\"]*\" \\\n\s+-H 'Content-Type: application/json' -d '(.*?)'\n", re.S)


def readme_examples():
    return [(callback, json.loads(body)) for callback, body in CURL.findall(README.read_text())]


def test_readme_has_one_example_per_synchronous_callback():
    assert [c for c, _ in readme_examples()] == ["address_update", "shipping_option_update",
                                                 "country_change", "validation"]


def test_readme_examples_get_the_replies_it_describes(klarna, shop):
    replies = {}
    for callback, body in readme_examples():
        replies[callback] = klarna(callback, "demo-1", body, order_id="ord-1")
    first = replies["address_update"].get_json()
    assert first["order_amount"] == 42700 and first["order_tax_amount"] == 8540
    assert rules.shipping_service_reply_errors(first) == []
    home = replies["shipping_option_update"].get_json()
    assert [line["reference"] for line in home["order_lines"] if line["type"] == "shipping_fee"] == ["postnord-home"]
    fi = replies["country_change"].get_json()
    assert (fi["purchase_currency"], fi["locale"]) == ("EUR", "sv-FI")
    assert rules.shipping_service_reply_errors(fi) == []
    denied = replies["validation"]
    assert denied.status_code == 303 and denied.headers["Location"].endswith("?kco_error=cart_changed")
