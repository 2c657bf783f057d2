"""Shopper-facing texts in the order's language: what Klarna shows the shopper
inside the checkout, and the demo shop's pages, for every market of the example shop.

The expected texts are read from the compiled catalogs with Babel directly, not through the
service's own renderer, so a catalog that is missing, stale or not wired in fails here."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from babel import Locale
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from callbacks import create_app
from callbacks.rules import markets
from callbacks.rules.shop import EXAMPLE_SHOP, ShopFileError, load_shop
from callbacks.rules.texts import MESSAGES, PLACEHOLDER, Text
from callbacks.web import i18n
from tests.conftest import kco_url
from tests.payloads import goods_line, shipping_service_body, validation_body

CATALOGS = Path(__file__).parent.parent / "callbacks" / "translations"
EXAMPLE = load_shop(EXAMPLE_SHOP)
MARKET_LOCALES = [(m.country, loc) for m in EXAMPLE.markets.values() for loc in m.locales]
SOLD_OUT = next(p.sku for p in EXAMPLE.products.values() if p.stock == 0)
FEW_LEFT = next(p for p in EXAMPLE.products.values() if p.stock)
SOLD_EVERYWHERE = "TSHIRT-BLUE-M"


@pytest.fixture
def app(sqlite_url):  # the language does not depend on the database: SQLite only
    app = create_app({"TESTING": True, "DATABASE_URL": sqlite_url})
    yield app
    app.extensions["kco"].store.dispose()


def expected(message_id: str, locale: str, **params) -> str:
    """The catalog's translation for the locale's language, English for a language without one."""
    lang = {"no": "nb", "nn": "nb"}.get(markets.language(locale), markets.language(locale))
    lang = lang if lang in i18n.LANGUAGES else "en"
    text = Translations.load(str(CATALOGS), [lang]).gettext(MESSAGES[message_id])
    if "country" in params:
        params["country"] = Locale.parse(lang).territories[params["country"]]
    return text % params if params else text


def english(message_id: str, **params) -> str:
    if "country" in params:
        params["country"] = Locale.parse("en").territories[params["country"]]
    return MESSAGES[message_id] % params


def in_language(actual: str, message_id: str, locale: str, **params) -> None:
    assert actual == expected(message_id, locale, **params)
    if i18n.catalog_language(locale) != "en":
        assert actual != english(message_id, **params), f"{message_id} is English in {locale}"


def body_for(country: str, locale: str, lines_of=((SOLD_EVERYWHERE, 1),)) -> dict:
    currency = EXAMPLE.markets[country].currency
    lines = [goods_line(EXAMPLE, sku, qty, currency, 2500) for sku, qty in lines_of]
    return shipping_service_body(lines, currency=currency, country=country, locale=locale)


def priced_validation(klarna, sid: str, country: str, locale: str, lines_of) -> dict:
    reply = klarna("address_update", sid, body_for(country, locale, lines_of)).get_json()
    body = validation_body(reply["order_lines"], currency=reply["purchase_currency"], country=country,
                           locale=locale, order_amount=reply["order_amount"],
                           order_tax_amount=reply["order_tax_amount"])
    return body


def refusal(response, error_type: str) -> str:
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["error_type"] == error_type
    return response.get_json()["error_text"]


@pytest.mark.parametrize(("country", "locale"), MARKET_LOCALES)
def test_every_refusal_is_in_the_orders_language(klarna, country, locale):
    """Each of Klarna's locales of each shipped market, each refusal the shopper can meet."""
    sid = f"s-{country}-{locale}"
    name = lambda sku: EXAMPLE.products[sku].display_name(markets.language(locale))  # noqa: E731

    body = body_for(country, locale)
    body["shipping_address"]["country"] = "JP"
    in_language(refusal(klarna("address_update", sid, body), "unsupported_shipping_address"),
                "unsupported_shipping_country", locale, country="JP")

    body = body_for(country, locale)
    body["billing_address"]["country"] = "BR"
    in_language(refusal(klarna("country_change", sid, body), "address_error"),
                "unsupported_billing_country", locale, country="BR")

    body = body_for(country, locale)
    body["billing_address"] = None
    in_language(refusal(klarna("country_change", sid + "-nb", body), "address_error"),
                "billing_country_missing", locale)

    body = body_for(country, locale)
    body["order_lines"][0]["reference"] = "NO-SUCH-SKU"
    in_language(refusal(klarna("address_update", sid + "-sku", body), "approval_failed"),
                "item_unavailable", locale)

    body = body_for(country, locale)
    body["order_lines"][0]["reference"] = None
    in_language(refusal(klarna("address_update", sid + "-ref", body), "approval_failed"),
                "item_unidentified", locale)

    body = body_for(country, locale)
    body["purchase_currency"] = "JPY"
    in_language(refusal(klarna("address_update", sid + "-jpy", body), "approval_failed"),
                "unknown_currency", locale, currency="JPY")

    body = body_for(country, locale)
    body["order_lines"][0].update(quantity=100_000, unit_price=1, total_amount=100_000,
                                  total_tax_amount=0, tax_rate=0)  # over Klarna's limit once priced
    in_language(refusal(klarna("address_update", sid + "-big", body), "approval_failed"),
                "order_too_large", locale)

    in_language(refusal(klarna("address_update", sid + "-bad", data=b'{"locale": "' + locale.encode()
                               + b'", "order_lines": 3}'), "approval_failed"),
                "unreadable_order", locale)

    body = priced_validation(klarna, sid + "-oos", country, locale, ((SOLD_OUT, 1),))
    in_language(refusal(klarna("validation", sid + "-oos", body), "approval_failed"),
                "out_of_stock", locale, name=name(SOLD_OUT))

    body = priced_validation(klarna, sid + "-few", country, locale, ((FEW_LEFT.sku, FEW_LEFT.stock + 1),))
    in_language(refusal(klarna("validation", sid + "-few", body), "approval_failed"),
                "stock_left", locale, stock=FEW_LEFT.stock, name=name(FEW_LEFT.sku))

    body = priced_validation(klarna, sid + "-own", country, locale, ((SOLD_EVERYWHERE, 1),))
    assert klarna("validation", sid + "-own", body, order_id=body["order_id"]).status_code == 200
    other = {**body, "order_id": "another-order"}
    in_language(refusal(klarna("validation", sid + "-own", other), "approval_failed"),
                "wrong_order", locale)


def test_without_a_locale_in_the_body_the_sessions_market_locale_is_used(klarna):
    assert klarna("address_update", "s-fi", body_for("FI", "fi-FI")).status_code == 200
    body = body_for("FI", "fi-FI")
    body["locale"] = None
    body["shipping_address"]["country"] = "AX"
    text = refusal(klarna("address_update", "s-fi", body), "unsupported_shipping_address")
    assert text == "Valitettavasti emme toimita kohteeseen Ahvenanmaa."


def test_a_language_without_a_catalog_falls_back_to_english(klarna, app):
    body = body_for("CH", "it-CH")
    body["shipping_address"]["country"] = "JP"
    assert refusal(klarna("address_update", "s-it", body), "unsupported_shipping_address") == \
        "Unfortunately we do not ship to Japan."
    with app.app_context():
        assert i18n.render(Text("billing_country_missing"), "ja-JP", {}) == \
            "Please choose a billing country."
        # Klarna's Norwegian codes read the Bokmål catalog.
        for locale in ("no-NO", "nn-NO", "nb-NO"):
            assert i18n.render(Text("billing_country_missing"), locale, {}) == "Velg et fakturaland."


OVERRIDES = '''
[texts.unsupported_shipping_country]
sv = "Vi skickar tyvärr inte till %(country)s än – hör av dig så ser vi vad vi kan göra!"
it = "Purtroppo non spediamo in %(country)s."
en = "Sorry, no deliveries to %(country)s yet."

[texts.out_of_stock]
de = "%(name)s ist gerade vergriffen – bald wieder da."
'''


@pytest.fixture
def shop_with_texts(tmp_path):
    path = tmp_path / "shop.toml"
    path.write_text(EXAMPLE_SHOP.read_text(encoding="utf-8") + OVERRIDES, encoding="utf-8")
    return path


def test_the_shop_files_texts_win_over_the_catalogs(shop_with_texts, sqlite_url):
    app = create_app({"TESTING": True, "DATABASE_URL": sqlite_url, "KCO_SHOP_FILE": str(shop_with_texts)})
    client = app.test_client()

    def address_update(sid, country, locale):
        body = body_for(country, locale)
        body["shipping_address"]["country"] = "JP"
        r = client.post(kco_url(app, "address_update", sid), json=body)
        return refusal(r, "unsupported_shipping_address")

    try:
        assert address_update("s-sv", "SE", "sv-SE") == \
            "Vi skickar tyvärr inte till Japan än – hör av dig så ser vi vad vi kan göra!"
        assert address_update("s-it", "CH", "it-CH") == "Purtroppo non spediamo in Giappone."
        assert address_update("s-en", "GB", "en-GB") == "Sorry, no deliveries to Japan yet."
        assert address_update("s-ch-fr", "CH", "fr-CH") == \
            expected("unsupported_shipping_country", "fr-CH", country="JP")  # no override: catalog
        # A language with no override of its own and no catalog reads the English override.
        assert address_update("s-ja", "CH", "ja-CH") == "Sorry, no deliveries to Japan yet."
    finally:
        app.extensions["kco"].store.dispose()


@pytest.mark.parametrize(("texts", "key", "problem"), [
    ('[texts.no_such_message]\nsv = "x"', "texts.no_such_message", "unknown message id"),
    ('[texts.out_of_stock]\nsvenska = "x"', "texts.out_of_stock.svenska", "two-letter language code"),
    ('[texts.out_of_stock]\nsv = "%(product)s är slut."', "texts.out_of_stock.sv",
     "unknown placeholder %(product)s; this message has %(name)s"),
    ('[texts.order_too_large]\nsv = "Max 100 % av gränsen."', "texts.order_too_large.sv", "write a literal % as %%"),
    ('[texts.order_too_large]\nsv = ""', "texts.order_too_large.sv", "non-empty string"),
    ('texts = "hello"', "texts", "must be a table"),
])
def test_a_wrong_text_override_stops_start_up_naming_it(tmp_path, texts, key, problem):
    path = tmp_path / "shop.toml"
    path.write_text(texts + "\n" + EXAMPLE_SHOP.read_text(encoding="utf-8") if texts.startswith("texts =")
                    else EXAMPLE_SHOP.read_text(encoding="utf-8") + "\n" + texts + "\n", encoding="utf-8")
    with pytest.raises(ShopFileError) as info:
        load_shop(path)
    assert info.value.key == key and problem in info.value.problem


def test_a_literal_percent_in_an_override_is_written_twice(tmp_path):
    path = tmp_path / "shop.toml"
    path.write_text(EXAMPLE_SHOP.read_text(encoding="utf-8")
                    + '\n[texts.order_too_large]\nsv = "Över 100 %% av gränsen."\n', encoding="utf-8")
    shop = load_shop(path)
    app = create_app({"TESTING": True, "DATABASE_URL": "sqlite://"})
    with app.app_context():
        assert i18n.render(Text("order_too_large"), "sv-SE", shop.texts) == "Över 100 % av gränsen."
    app.extensions["kco"].store.dispose()


# -- the demo shop's pages ---------------------------------------------------------------------
def page_in_market(client, api_headers, path: str, country: str, locale: str) -> str:
    first = client.get("/").get_data(as_text=True)  # the cookie is signed: the page names the session
    sid = json.loads(first.split('id="kco-config">', 1)[1].split("</script>", 1)[0])["session"]
    client.put(f"/api/sessions/{sid}/cart", headers=api_headers,
               json={"items": [{"reference": SOLD_EVERYWHERE, "quantity": 1}]})
    assert client.put(f"/api/sessions/{sid}/market", headers=api_headers,
                      json={"country": country, "locale": locale}).status_code == 200
    return client.get(path).get_data(as_text=True)


@pytest.mark.parametrize(("country", "locale"), MARKET_LOCALES)
def test_the_demo_pages_are_in_the_markets_language(app, api_headers, country, locale):
    lang = i18n.catalog_language(locale)
    client = app.test_client()
    products = page_in_market(client, api_headers, "/", country, locale)
    assert f'<html lang="{lang}">' in products
    assert f"<h1>{expected_text('Products', lang)}</h1>" in products
    cart = client.get("/cart").get_data(as_text=True)
    assert f"<h1>{expected_text('Cart', lang)}</h1>" in cart
    assert expected_text("Unit price", lang) in cart and expected_text("Go to checkout", lang) in cart
    if lang != "en":
        assert "Go to checkout" not in cart and "Unit price" not in cart
    notice = client.get("/checkout?kco_error=cart_changed").get_data(as_text=True)
    assert expected("cart_changed", locale).replace("'", "&#39;") in notice


def expected_text(msgid: str, lang: str) -> str:
    return Translations.load(str(CATALOGS), [lang]).gettext(msgid)


def test_a_new_shopper_sees_the_default_markets_language(client):
    page = client.get("/").get_data(as_text=True)
    assert '<html lang="sv">' in page and "<h1>Produkter</h1>" in page
    config = json.loads(page.split('id="kco-config">', 1)[1].split("</script>", 1)[0])
    assert config["language"] == "sv"  # shop.js's texts, every language for a market switch:
    assert {lang: config["texts"][lang]["add_to_cart"] for lang in ("sv", "fi", "en")} == \
        {"sv": "Lägg i varukorgen", "fi": "Lisää ostoskoriin", "en": "Add to cart"}


# -- the catalogs themselves -------------------------------------------------------------------
@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_each_catalog_translates_every_message_and_is_compiled(lang):
    po_path = CATALOGS / lang / "LC_MESSAGES" / "messages.po"
    with po_path.open("rb") as f:
        po = read_po(f)
    with (CATALOGS / "messages.pot").open("rb") as f:
        template = {m.id for m in read_po(f) if m.id}
    assert set(MESSAGES.values()) <= template  # a new message id was extracted into the template
    translated = {m.id: m.string for m in po if m.id}
    assert set(translated) == template and all(translated.values())
    for msgid, text in translated.items():  # a translation keeps its placeholders
        assert sorted(PLACEHOLDER.findall(text)) == sorted(PLACEHOLDER.findall(msgid)), text
    with (po_path.with_suffix(".mo")).open("rb") as f:
        compiled = {m.id: m.string for m in read_mo(f) if m.id}
    assert compiled == translated, f"run: pybabel compile -d callbacks/translations ({lang} is stale)"
