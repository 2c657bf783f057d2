"""The support console (/support/): off without a password, HTTP Basic, the session list,
search, one session's timeline, and replay in development only. Flask test client, no JS."""
from __future__ import annotations

import base64
import json
import re
from datetime import timedelta
from html import unescape
from pathlib import Path

import pytest

from callbacks import create_app
from callbacks.klarna.scrub import LINE_COLS, scrub
from callbacks.support.queries import timeline

from .conftest import kco_url
from .payloads import shipping_service_body
from .sandbox_fixtures import sandbox_server, start_sandbox  # noqa: F401 - fixtures

PASSWORD = "s3cret-support"
SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def basic(user="support", password=PASSWORD):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def make_app(database_url, sandbox_server, app_factory):
    return lambda **config: app_factory(DATABASE_URL=database_url, KLARNA_API_URL=sandbox_server.url,
                                        KLARNA_TIMEOUT="1,5", **config)


@pytest.fixture
def app(make_app):
    return make_app(KCO_SUPPORT_PASSWORD=PASSWORD)


@pytest.fixture
def api(app):
    client = app.test_client()
    headers = {"Authorization": f"Bearer {app.config['KCO_API_KEY']}"}
    return lambda method, path, json=None: client.open(path, method=method, json=json, headers=headers)


def checkout(app, api, sid="s-sup"):
    """A session with every kind of step: a storefront write, a checkout load (Klarna API
    calls), a callback and the events they recorded."""
    api("PUT", f"/api/sessions/{sid}/cart",
        {"items": [{"reference": "TSHIRT-BLUE-M", "quantity": 1}], "merchant_reference1": "SHOP-42"})
    order_id = api("POST", f"/api/sessions/{sid}/checkout").get_json()["order_id"]
    shop = app.extensions["kco"].shop
    from .payloads import goods_line
    body = shipping_service_body([goods_line(shop, "TSHIRT-BLUE-M", 1, "SEK", 2500)], country="FI")
    app.test_client().post(kco_url(app, "address_update", sid, order_id), json=body)
    return order_id


def test_without_a_password_every_support_url_is_404(make_app):
    client = make_app(KCO_SUPPORT_PASSWORD=None).test_client()
    for path in ("/support/", "/support/sessions/s-1", "/support/?q=x"):
        assert client.get(path, headers=basic()).status_code == 404
    assert client.post("/support/sessions/s-1/replay/1", headers=basic()).status_code == 404


@pytest.mark.parametrize("headers", [{}, basic(password="wrong"), basic(user="admin"),
                                     {"Authorization": "Bearer " + PASSWORD}])
def test_wrong_or_missing_credentials_get_a_basic_challenge(app, headers):
    response = app.test_client().get("/support/", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


def test_the_list_shows_market_totals_order_id_and_status(app, api):
    order_id = checkout(app, api)
    page = app.test_client().get("/support/", headers=basic())
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert 'href="/support/sessions/s-sup"' in html
    assert order_id in html and "checkout_incomplete" in html and "SHOP-42" in html
    state = app.extensions["kco"].store.get_state("s-sup")
    assert f"{state['market']['country']} {state['market']['currency']}" in html
    assert state["market"]["currency"] == "SEK"  # written as Swedish does: 1 234,00 kr
    amount = state["order"]["order_amount"]
    assert f"{amount // 100:,}".replace(",", "\xa0") + f",{amount % 100:02d}\xa0kr" in html
    assert page.headers["Cache-Control"] == "no-store"
    assert "<script" not in html


def test_search_by_session_id_klarna_order_id_and_date(app, api):
    order_id = checkout(app, api)
    checkout(app, api, "s-other")
    client = app.test_client()
    by_order = client.get(f"/support/?q={order_id}", headers=basic()).get_data(as_text=True)
    assert "s-sup" in by_order and "s-other" not in by_order
    by_sid = client.get("/support/?q=s-other", headers=basic()).get_data(as_text=True)
    assert "sessions/s-other" in by_sid and "sessions/s-sup" not in by_sid
    today = app.extensions["kco"].store.get_state("s-sup")["updated_at"][:10]
    by_day = client.get(f"/support/?q={today}", headers=basic()).get_data(as_text=True)
    assert "sessions/s-sup" in by_day and "sessions/s-other" in by_day
    assert "sessions/s-sup" not in client.get("/support/?q=2001-01-01", headers=basic()).get_data(as_text=True)
    assert "not a date" in client.get("/support/?q=2026-02-31", headers=basic()).get_data(as_text=True)
    assert "No session matches" in client.get("/support/?q=nobody", headers=basic()).get_data(as_text=True)


def test_the_session_page_is_one_timeline_of_every_step(app, api):
    checkout(app, api)
    html = app.test_client().get("/support/sessions/s-sup", headers=basic()).get_data(as_text=True)
    kinds = re.findall(r'<span class="kind">([^<]+)</span><br>([^<\n]+)', html)
    names = [(k, n.strip()) for k, n in kinds]
    assert ("Storefront", "PUT cart") in names
    assert ("Storefront", "POST checkout") in names
    assert ("Klarna API call", "create_order") in names
    assert ("Klarna callback", "address_update") in names
    assert ("Event", "cart_updated") in names and ("Event", "order_created") in names
    order = [n for _, n in names]
    assert order.index("PUT cart") < order.index("create_order") < order.index("address_update")
    # the callback's request is shown scrubbed, its reply in full
    assert "[scrubbed]" in html and "Testperson" not in html and "customer@example.com" not in html
    assert "order_lines" in html


def test_an_unknown_session_is_404_and_markup_is_escaped(app, api):
    assert app.test_client().get("/support/sessions/nobody", headers=basic()).status_code == 404
    api("PUT", "/api/sessions/s-x/cart",
        {"items": [{"reference": "TSHIRT-BLUE-M", "quantity": 1}], "merchant_reference1": "<b>x</b>"})
    html = app.test_client().get("/support/?q=s-x", headers=basic()).get_data(as_text=True)
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html


def test_replay_in_development_posts_the_logged_callback_again(app, api):
    checkout(app, api)
    client = app.test_client()
    html = client.get("/support/sessions/s-sup", headers=basic()).get_data(as_text=True)
    form = re.search(r'<form method="post" action="([^"]+)">\s*<input type="hidden" name="token" value="([^"]+)"', html)
    assert form, "a replay button for the callback"
    store = app.extensions["kco"].store
    before = len(store.events_after(0, sid="s-sup"))
    forged = client.post(form.group(1), data={"token": "0" * 64}, headers=basic())
    assert forged.status_code == 403
    replayed = client.post(form.group(1), data={"token": form.group(2)}, headers=basic())
    assert replayed.status_code == 200 and "address_update" in replayed.get_data(as_text=True)
    logged = [s for s in client.get("/support/sessions/s-sup", headers=basic()).get_data(as_text=True)
              .split("Klarna callback</span><br>")[1:] if s.startswith("address_update")]
    assert len(logged) == 2  # the replay is a callback like any other, in the log
    assert len(store.events_after(0, sid="s-sup")) >= before


def test_no_replay_button_or_endpoint_in_production(make_app, api, monkeypatch):
    app = make_app(KCO_SUPPORT_PASSWORD=PASSWORD, PRODUCTION=True)
    headers = {"Authorization": f"Bearer {app.config['KCO_API_KEY']}"}
    client = app.test_client()
    client.put("/api/sessions/s-prod/cart", headers=headers,
               json={"items": [{"reference": "TSHIRT-BLUE-M", "quantity": 1}]})
    body = shipping_service_body([], country="SE")
    client.post(kco_url(app, "address_update", "s-prod"), json=body)
    html = client.get("/support/sessions/s-prod", headers=basic()).get_data(as_text=True)
    assert "Replay this callback" not in html and "address_update" in html
    assert client.post("/support/sessions/s-prod/replay/1", data={"token": "x"}, headers=basic()).status_code == 404


def test_purge_deletes_old_activity_by_the_callback_logs_age_rule(app, api):
    """The timeline's Klarna API calls and storefront writes hold scrubbed bodies too: `flask
    kco purge --older-than N` removes them with the callback log's, and keeps the recent ones."""
    import sqlalchemy as sa

    from callbacks.store.activity import activity
    from callbacks.store.database import utcnow

    checkout(app, api, "s-old")
    checkout(app, api, "s-new")
    store = app.extensions["kco"].store

    def for_session_rows(store, sid):
        with store.engine.connect() as conn:
            return conn.execute(sa.select(activity.c.id).where(activity.c.session == sid)
                                .order_by(activity.c.id)).mappings().all()
    old, new = for_session_rows(store, "s-old"), for_session_rows(store, "s-new")
    assert old and new
    with store.engine.begin() as conn:
        conn.execute(activity.update().where(activity.c.session == "s-old")
                     .values(at=utcnow() - timedelta(days=31)))
    result = app.test_cli_runner().invoke(args=["kco", "purge", "--older-than", "30"])
    assert result.exit_code == 0, result.output
    assert f"and {len(old)} activity entries older than 30 days" in result.output
    assert for_session_rows(store, "s-old") == []
    assert [r["id"] for r in for_session_rows(store, "s-new")] == [r["id"] for r in new]
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(activity)).scalar_one() == len(new)


def _shown_requests(html: str) -> list[dict]:
    return [json.loads(unescape(text)) for text in
            re.findall(r"<summary>request</summary><pre>(.*?)</pre>", html, re.DOTALL)]


@pytest.mark.parametrize("lines", [10, 1000])
def test_the_console_shows_the_lines_of_compact_and_of_old_log_rows(app, lines):
    """The log keeps a request's lines as compact rows of the allow-listed fields: the console
    shows them as lines, the same lines (references, quantities, amounts) as a row written in
    the format before shows, and nothing of what was left out."""
    body = json.loads((SAMPLES / "19-address_update-1000-lines.json").read_text())["body"]
    body = {**body, "order_lines": body["order_lines"][:lines]}
    assert app.test_client().post(kco_url(app, "address_update", "s-big"), json=body).status_code == 200
    store = app.extensions["kco"].store
    store.log_callback("address_update", "s-big", None, 200, 1.0, scrub(body), None)  # as before
    html = app.test_client().get("/support/sessions/s-big", headers=basic()).get_data(as_text=True)
    compact, old = [shown["order_lines"] for shown in _shown_requests(html)]
    assert old == scrub(body)["order_lines"]  # an old row reads as it was written
    assert compact == [{key: value for key, value in line.items() if key in LINE_COLS} for line in old]
    assert len(compact) == lines and [line["reference"] for line in compact] == \
        [line["reference"] for line in body["order_lines"]]
    assert all(line["quantity"] == sent["quantity"] and line["total_amount"] == sent["total_amount"]
               for line, sent in zip(compact, body["order_lines"], strict=True))
    steps = [s for s in timeline(store, "s-big") if s.kind == "callback"]
    assert [s.detail["request"]["order_lines"] for s in steps] == [compact, old]
    assert "recipient" not in html and "product_url" not in html.split("<summary>request")[1].split("</pre>")[0]
