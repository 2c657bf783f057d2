"""A market's Klarna checkout options, its Shipping Assistant switch and the products'
shipping_attributes in the shop file (docs/design.md §4.2, §5.8): what loads, what is refused
(with the file, the market's dotted key and the problem), and what reaches Klarna's order."""
from __future__ import annotations

import textwrap

import pytest

from callbacks.klarna.order import Urls, differs, order_payload
from callbacks.rules import checkout, options
from callbacks.rules.pricing import CartItem
from callbacks.rules.shop import ShopFileError, load_shop
from sandbox import order_schema

SHOP = load_shop()
URLS = Urls("https://kco.example", "https://shop.example/terms", "https://shop.example/checkout",
            "https://shop.example/thanks", "s" * 40)

BASE = textwrap.dedent('''\
    [shop]
    name = "Options"
    default_country = "SE"

    [markets.SE]
    currency = "SEK"
    locales = ["sv-SE"]
    tax = { standard = 2500 }
    shipping_tax_class = "standard"

    [markets.SE.options]
    allow_separate_shipping_address = true

    [[markets.SE.shipping]]
    id = "home"
    name = "Home delivery"
    price = { SEK = 4900 }

    [markets.US]
    currency = "USD"
    locales = ["en-US"]
    prices_include_tax = false
    sales_tax = { default = 0, CA = 725 }

    [products."TSHIRT"]
    name = "T-shirt"
    tax_class = "standard"
    prices = { SEK = 19900, USD = 2200 }
''')


def load(tmp_path, text):
    path = tmp_path / "shop.toml"
    path.write_text(text, encoding="utf-8")
    return load_shop(path), path


OPTIONS_LINE = "allow_separate_shipping_address = true"
GOOD = [
    ("every boolean", "\n".join(f"{name} = true" for name in sorted(options.BOOLEAN))),
    ("colours and border", 'color_button = "#FF9900"\ncolor_link = "#00aa00"\nradius_border = "5"'),
    ("B2B", 'allowed_customer_types = ["person", "organization"]'),
    ("organisations only", 'allowed_customer_types = ["organization"]'),
    ("texts", 'shipping_details = "Within 1-3 days"\nadditional_merchant_terms = "More [terms](https://x)"'),
    ("channel", 'acquiring_channel = "MOTO"'),
    ("one checkbox", 'additional_checkbox = { text = "Newsletter", checked = false, required = false }'),
    ("checkboxes", '[[markets.SE.options.additional_checkboxes]]\nid = "news"\ntext = "News"\n'
                   'checked = false\nrequired = false\n[[markets.SE.options.additional_checkboxes]]\n'
                   'id = "terms"\ntext = "Extra terms"\nchecked = false\nrequired = true'),
]


@pytest.mark.parametrize("case, lines", GOOD, ids=[g[0] for g in GOOD])
def test_documented_options_load_and_go_to_klarna(tmp_path, case, lines):
    shop, _ = load(tmp_path, BASE.replace(OPTIONS_LINE, lines))
    sent = options.order_options(shop.markets["SE"].options)
    assert sent["require_validate_callback_success"] is True   # whatever the file says
    assert order_schema.schema_errors({**MINIMAL_ORDER, "options": sent}) == []  # Klarna's schema
    for key, value in shop.markets["SE"].options.items():
        assert sent[key] == options.thawed(value)


MINIMAL_ORDER = {"purchase_country": "SE", "purchase_currency": "SEK", "locale": "sv-SE",
                 "order_amount": 0, "order_tax_amount": 0, "order_lines": [],
                 "merchant_urls": {k: "https://x.example/" + k
                                   for k in ("terms", "checkout", "confirmation", "push")}}

# (case, the lines replacing OPTIONS_LINE, the dotted key, words the problem must contain)
BROKEN = [
    ("unknown option", "allow_separate_shiping_address = true",
     "markets.SE.options.allow_separate_shiping_address", "unknown key"),
    ("boolean as string", 'phone_mandatory = "yes"', "markets.SE.options.phone_mandatory", "true or false"),
    ("boolean as number", "title_mandatory = 1", "markets.SE.options.title_mandatory", "true or false"),
    ("colour without #", 'color_button = "FF9900"', "markets.SE.options.color_button", "hex colour"),
    ("colour by name", 'color_header = "red"', "markets.SE.options.color_header", "hex colour"),
    ("border as number", "radius_border = 5", "markets.SE.options.radius_border", "not a string"),
    ("unknown customer type", 'allowed_customer_types = ["person", "company"]',
     "markets.SE.options.allowed_customer_types[1]", "'company'"),
    ("no customer types", "allowed_customer_types = []",
     "markets.SE.options.allowed_customer_types", "one or two"),
    ("customer type twice", 'allowed_customer_types = ["person", "person"]',
     "markets.SE.options.allowed_customer_types", "twice"),
    ("shipping details too long", f'shipping_details = "{"x" * 256}"',
     "markets.SE.options.shipping_details", "255"),
    ("unknown channel", 'acquiring_channel = "PHONE"', "markets.SE.options.acquiring_channel", "'PHONE'"),
    ("checkbox without required", 'additional_checkbox = { text = "News", checked = false }',
     "markets.SE.options.additional_checkbox.required", "required"),
    ("checkbox text too long", f'additional_checkbox = {{ text = "{"x" * 1001}", checked = false, required = false }}',
     "markets.SE.options.additional_checkbox.text", "1000"),
    ("checkbox with unknown key",
     'additional_checkbox = { text = "N", checked = false, required = false, colour = "red" }',
     "markets.SE.options.additional_checkbox.colour", "unknown key"),
    ("checkboxes with one id twice",
     '[[markets.SE.options.additional_checkboxes]]\nid = "a"\ntext = "A"\nchecked = false\nrequired = false\n'
     '[[markets.SE.options.additional_checkboxes]]\nid = "a"\ntext = "B"\nchecked = false\nrequired = false',
     "markets.SE.options.additional_checkboxes[1].id", "twice"),
    ("checkbox without an id",
     '[[markets.SE.options.additional_checkboxes]]\ntext = "A"\nchecked = false\nrequired = false',
     "markets.SE.options.additional_checkboxes[0].id", "required"),
    ("validation made optional", "require_validate_callback_success = false",
     "markets.SE.options.require_validate_callback_success", "always sends true"),
]


@pytest.mark.parametrize("case, lines, key, problem", BROKEN, ids=[b[0] for b in BROKEN])
def test_wrong_options_stop_start_up_naming_file_market_and_key(tmp_path, case, lines, key, problem):
    with pytest.raises(ShopFileError) as info:
        load(tmp_path, BASE.replace(OPTIONS_LINE, lines))
    err = info.value
    assert err.key == key
    assert str(tmp_path / "shop.toml") in str(err) and f": {key}: " in str(err)
    assert problem in str(err), str(err)


def test_options_not_a_table(tmp_path):
    text = BASE.replace("[markets.SE.options]\n" + OPTIONS_LINE, 'options = "b2b"')
    with pytest.raises(ShopFileError) as info:
        load(tmp_path, text)
    assert info.value.key == "markets.SE.options" and "table" in info.value.problem


def test_the_shop_accepts_exactly_the_options_the_sandbox_publishes():
    """Two independent copies of Klarna's `options` schema: the shop file's and the sandbox's."""
    assert options.KNOWN == set(order_schema.OPTIONS["properties"])


# -- the Shipping Assistant switch and the products' shipping_attributes ------------------------
KSA_BROKEN = [
    ("switch as string", 'shipping_tax_class = "standard"\n',
     'shipping_tax_class = "standard"\nshipping_assistant = "yes"\n',
     "markets.SE.shipping_assistant", "true or false"),
    ("net-price market taxing shipping", 'sales_tax = { default = 0, CA = 725 }',
     'sales_tax = { default = 0, CA = 725 }\ntax_shipping = true\nshipping_assistant = true',
     "markets.US.shipping_assistant", "tax_shipping"),
    ("weight as float", 'prices = { SEK = 19900, USD = 2200 }',
     'prices = { SEK = 19900, USD = 2200 }\nshipping_attributes = { weight = 0.2 }',
     'products."TSHIRT".shipping_attributes.weight', "grams"),
    ("negative length", 'prices = { SEK = 19900, USD = 2200 }',
     'prices = { SEK = 19900, USD = 2200 }\nshipping_attributes = { dimensions = { length = -1 } }',
     'products."TSHIRT".shipping_attributes.dimensions.length', "millimetres"),
    ("unknown dimension", 'prices = { SEK = 19900, USD = 2200 }',
     'prices = { SEK = 19900, USD = 2200 }\nshipping_attributes = { dimensions = { depth = 10 } }',
     'products."TSHIRT".shipping_attributes.dimensions.depth', "unknown key"),
    ("tag not a string", 'prices = { SEK = 19900, USD = 2200 }',
     'prices = { SEK = 19900, USD = 2200 }\nshipping_attributes = { tags = [1] }',
     'products."TSHIRT".shipping_attributes.tags[0]', "tag"),
    ("unknown attribute", 'prices = { SEK = 19900, USD = 2200 }',
     'prices = { SEK = 19900, USD = 2200 }\nshipping_attributes = { volume = 3 }',
     'products."TSHIRT".shipping_attributes.volume', "unknown key"),
]


@pytest.mark.parametrize("case, old, new, key, problem", KSA_BROKEN, ids=[b[0] for b in KSA_BROKEN])
def test_wrong_shipping_assistant_settings_stop_start_up(tmp_path, case, old, new, key, problem):
    assert BASE.count(old) == 1
    with pytest.raises(ShopFileError) as info:
        load(tmp_path, BASE.replace(old, new))
    assert info.value.key == key and problem in str(info.value), str(info.value)


def test_a_net_price_market_without_taxed_shipping_may_use_the_shipping_assistant(tmp_path):
    shop, _ = load(tmp_path, BASE.replace('sales_tax = { default = 0, CA = 725 }',
                                          'sales_tax = { default = 0, CA = 725 }\nshipping_assistant = true'))
    assert shop.markets["US"].shipping_assistant and not shop.markets["SE"].shipping_assistant


def test_the_example_shop_has_a_b2b_market_and_a_shipping_assistant_market():
    se, at = SHOP.markets["SE"], SHOP.markets["AT"]
    assert options.allows_organization(se.options) and options.separate_shipping_address(se.options, "SE")
    assert at.shipping_assistant and not se.shipping_assistant
    assert not options.allows_organization(SHOP.markets["FI"].options)
    assert options.separate_shipping_address({}, "DE") and not options.separate_shipping_address({}, "FI")
    mug = SHOP.products["MUG-ENAMEL"].shipping_attributes
    assert mug is not None and mug["weight"] == 240 and tuple(mug["tags"]) == ("fragile",)


# -- what Klarna's order gets -------------------------------------------------------------------
def state(country: str, items=(("TSHIRT-BLUE-M", 2), ("MUG-ENAMEL", 1), ("APP-TRAILMAP-PRO-1Y", 1))):
    base = checkout.new_state(SHOP, f"s-{country}", country=country,
                              items=[CartItem(r, q) for r, q in items])
    return {**base, "version": 3}


def test_a_market_without_options_sends_what_it_always_sent():
    payload = order_payload(SHOP, state("FI"), URLS)
    assert payload["options"] == {"require_validate_callback_success": True}
    assert "shipping_option_update" in payload["merchant_urls"]
    assert [ln["type"] for ln in payload["order_lines"]][-1] == "shipping_fee"
    assert all("shipping_attributes" not in ln for ln in payload["order_lines"])


def test_the_b2b_market_sends_its_options_as_plain_json():
    payload = order_payload(SHOP, state("SE"), URLS)
    assert payload["options"] == {"require_validate_callback_success": True,
                                  "allowed_customer_types": ["person", "organization"],
                                  "allow_separate_shipping_address": True,
                                  "color_button": "#2E5E4E", "color_button_text": "#FFFFFF",
                                  "shipping_details": "Packed in our Umeå warehouse within one working day."}
    assert type(payload["options"]["allowed_customer_types"]) is list
    assert order_schema.order_errors(payload) == []


def test_a_shipping_assistant_market_leaves_shipping_to_klarna():
    payload = order_payload(SHOP, state("AT"), URLS)
    assert "shipping_option_update" not in payload["merchant_urls"]
    assert {"address_update", "country_change", "validation", "push"} <= set(payload["merchant_urls"])
    assert [ln["type"] for ln in payload["order_lines"]] == ["physical", "physical", "digital"]
    assert payload["order_amount"] == sum(ln["total_amount"] for ln in payload["order_lines"])
    fallback = payload["shipping_options"]  # the market's own options, as KSA's fallback
    assert [o["id"] for o in fallback] == [o.id for o in SHOP.markets["AT"].shipping]
    assert [o["id"] for o in fallback if o["preselected"]] == ["post-at-home"]
    assert payload["shipping_countries"] == sorted(SHOP.markets)
    tshirt, mug, app = payload["order_lines"]
    assert tshirt["shipping_attributes"] == {"weight": 180, "dimensions": {"height": 20, "width": 250, "length": 300}}
    assert mug["shipping_attributes"]["tags"] == ["fragile"]
    assert "shipping_attributes" not in app  # a download has no parcel
    assert order_schema.order_errors(payload) == []


def test_klarnas_own_shipping_line_is_no_reason_to_update():
    payload = order_payload(SHOP, state("AT"), URLS)
    line = {"type": "shipping_fee", "reference": "tms-1", "name": "DHL", "quantity": 1,
            "unit_price": 690, "tax_rate": 2000, "total_amount": 690, "total_discount_amount": 0,
            "total_tax_amount": 115}
    klarna = {**payload, "order_lines": [*payload["order_lines"], line],
              "order_amount": payload["order_amount"] + 690,
              "order_tax_amount": payload["order_tax_amount"] + 115}
    assert differs(klarna, payload) == []
    assert differs({**klarna, "order_amount": klarna["order_amount"] + 1}, payload) == ["order_amount"]
    # A market that prices its own shipping: a line we did not send is a difference.
    ours = order_payload(SHOP, state("FI"), URLS)
    theirs = {**ours, "order_lines": [*ours["order_lines"], line]}
    assert differs(theirs, ours) == ["order_lines"]


def test_changed_options_and_a_new_attachment_are_differences():
    payload = order_payload(SHOP, state("SE"), URLS)
    assert differs(payload, payload) == []
    old = {**payload, "options": {"require_validate_callback_success": True}}
    assert differs(old, payload) == ["options"]
    emd = {"content_type": "application/vnd.klarna.internal.emd-v2+json", "body": "{}"}
    with_emd = order_payload(SHOP, state("SE"), URLS, attachment=emd)
    assert with_emd["attachment"] == emd
    assert differs(payload, with_emd) == ["attachment"]
    assert differs(with_emd, with_emd) == []
