"""The order lifecycle's decisions (callbacks/rules/lifecycle.py), without Klarna or a database."""
from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callbacks.rules import lifecycle as rules
from callbacks.rules.checkout import OrderComplete, new_state
from callbacks.rules.lifecycle import Step
from callbacks.rules.pricing import CartItem
from callbacks.rules.shop import load_shop

SHOP = load_shop()
STATUSES = st.sampled_from(["checkout_incomplete", "checkout_complete", "created", None])
ORDER_IDS = st.sampled_from(["ord-1", "ord-2", "ord-3"])
OUTCOMES = st.sampled_from([None, "order_created", "order_updated", "order_recreated"])


def state_with(klarna: dict) -> dict:
    state = new_state(SHOP, "s-1", items=[CartItem("TSHIRT-BLUE-M", 1)])
    return {**state, "klarna": klarna}


klarna_records = st.fixed_dictionaries(
    {"order_id": st.one_of(st.none(), ORDER_IDS), "status": STATUSES},
    optional={"synced_version": st.integers(0, 50), "acknowledged": st.booleans(),
              "fraud_status": st.sampled_from(["ACCEPTED", "PENDING", "REJECTED", None])})
orders = st.fixed_dictionaries({"order_id": ORDER_IDS, "status": STATUSES},
                               optional={"order_amount": st.integers(0, 10**6)})


@given(klarna_records, orders, OUTCOMES, st.integers(0, 50))
def test_a_new_order_carries_nothing_of_the_old_ones_payment(klarna, order, outcome, version):
    state = state_with(klarna)
    before = copy.deepcopy(state)
    decision = rules.order_recorded(state, order, outcome, {"order_id": order["order_id"]}, version)
    assert state == before  # the given state is never changed
    if decision is None:
        assert klarna.get("order_id") == order["order_id"]
        return
    new = decision.state["klarna"]
    assert new["order_id"] == order["order_id"]
    if klarna.get("order_id") != order["order_id"]:
        assert set(new) <= {"order_id", "status", "synced_version"}
    else:
        assert all(new[k] == v for k, v in klarna.items() if k not in ("status", "synced_version"))
        if klarna.get("status") == "checkout_complete":
            assert new["status"] == "checkout_complete"  # completion is never moved back
    if outcome:
        assert new["synced_version"] == version and decision.event_type == outcome


@given(klarna_records, st.one_of(st.none(), orders), st.booleans())
def test_a_complete_session_is_only_ever_confirmed(klarna, order, in_step):
    step = rules.load_step(state_with(klarna), order, in_step)
    if klarna["status"] == "checkout_complete":
        assert step is Step.CONFIRM
    elif order is not None and klarna["order_id"] and rules.klarna_status(order) != "checkout_incomplete":
        assert step is Step.VERIFY_COMPLETION  # never a create before Order Management has said
    if step in (Step.CREATE, Step.RECREATE, Step.UPDATE, Step.KEEP):
        assert klarna["status"] != "checkout_complete"


@given(klarna_records)
def test_sync_never_touches_a_complete_session(klarna):
    if rules.sync_needed(state_with(klarna)):
        assert klarna["order_id"] and klarna["status"] == "checkout_incomplete"


def test_completion_starts_unacknowledged_then_acknowledge_sets_it():
    state = state_with({"order_id": "ord-1", "status": "checkout_incomplete", "synced_version": 2})
    om = {"order_id": "ord-1", "fraud_status": "PENDING", "order_amount": 100,
          "purchase_currency": "SEK", "merchant_reference1": "SHOP-1"}
    done = rules.order_completed(SHOP, state, "s-1", "ord-1", om)
    assert done.event_type == "order_completed"
    assert done.state["klarna"] == {"order_id": "ord-1", "status": "checkout_complete", "synced_version": 2,
                                    "fraud_status": "PENDING", "acknowledged": False}
    assert done.state["merchant_reference1"] == "SHOP-1"
    acked = rules.order_acknowledged(done.state, "ord-1")
    assert acked.state["klarna"]["acknowledged"] is True and done.state["klarna"]["acknowledged"] is False
    without_state = rules.order_completed(SHOP, None, "s-2", "ord-9", om)
    assert without_state.state["session"] == "s-2" and without_state.state["klarna"]["order_id"] == "ord-9"


@pytest.mark.parametrize("event_type,fraud_status,verified", [
    ("FRAUD_RISK_ACCEPTED", "ACCEPTED", True), ("FRAUD_RISK_ACCEPTED", "REJECTED", False),
    ("FRAUD_RISK_STOPPED", "REJECTED", True)])
def test_fraud_status_takes_order_managements_word(event_type, fraud_status, verified):
    state = state_with({"order_id": "ord-1", "status": "checkout_complete", "fraud_status": "PENDING"})
    decision = rules.fraud_status_read(SHOP, state, "s-1", "ord-1", event_type, fraud_status)
    assert decision.state["klarna"]["fraud_status"] == fraud_status
    assert decision.data["verified"] is verified and decision.data["old"] == "PENDING"
    assert rules.fraud_status_read(SHOP, decision.state, "s-1", "ord-1", event_type, fraud_status) is None


def test_market_change_refuses_a_complete_session():
    state = state_with({"order_id": "ord-1", "status": "checkout_complete"})
    with pytest.raises(OrderComplete):
        rules.market_changed(SHOP, state, "s-1", "FI", None)
    open_state = state_with({"order_id": "ord-1", "status": "checkout_incomplete"})
    moved = rules.market_changed(SHOP, open_state, "s-1", "FI", None)
    assert moved.event_type == "market_changed" and moved.state["purchase_country"] == "FI"
    assert moved.state["market"]["currency"] == "EUR" and open_state["purchase_country"] == "SE"


# -- Klarna accounts (docs/design.md §4.1) --------------------------------------------------------
ACCOUNTS = st.sampled_from([None, "north_america", "europe"])


@given(klarna_records, st.one_of(st.none(), orders), st.booleans(), ACCOUNTS,
       st.sampled_from(["SE", "US", "FI"]))
def test_an_order_at_another_account_than_the_markets_is_moved_never_updated(klarna, order, in_step,
                                                                            account, country):
    """The example shop sells to the US through north_america, the rest through the environment:
    an open order held elsewhere is read (a paid one is verified) but never kept or updated."""
    state = state_with({**klarna, **({"account": account} if account else {})})
    state = {**state, "market": {**state["market"], "country": country}}
    moved = rules.account_moved(SHOP, state)
    assert moved == (bool(klarna["order_id"]) and SHOP.account_of(country) != account)
    step = rules.load_step(state, order, in_step, moved)
    if moved and step not in (Step.CONFIRM, Step.VERIFY_COMPLETION):
        assert step is Step.MOVE
    if step in (Step.KEEP, Step.UPDATE, Step.RECREATE):
        assert not moved


@given(klarna_records, orders, OUTCOMES, st.integers(0, 50), ACCOUNTS)
def test_the_recorded_order_names_the_account_that_answered(klarna, order, outcome, version, account):
    state = state_with({**klarna, "account": "europe"})
    decision = rules.order_recorded(state, order, outcome, {"order_id": order["order_id"]}, version, account)
    klarna_now = (decision.state if decision else state)["klarna"]
    if decision is not None:
        assert klarna_now.get("account") == account  # None (the environment's) is left out
        assert ("account" in klarna_now) == (account is not None)


# -- the shopper's address follows an order to another account (design §4.1) ---------------------
US_HOME = {"given_name": "Ann", "family_name": "Lee", "email": "ann@example.com",
           "street_address": "1 Main St", "postal_code": "94105", "city": "San Francisco",
           "region": "CA", "country": "us"}


def test_the_old_orders_addresses_in_the_new_country_are_carried_and_nothing_else():
    old = {"order_id": "ord-se", "billing_address": {**US_HOME, "organization_name": "Lee Inc",
                                                     "unknown": "x", "phone": 123},
           "shipping_address": dict(US_HOME), "customer": {"date_of_birth": "1970-01-01"}}
    carried = rules.carried_addresses(SHOP, old, "US")
    expected = {**US_HOME, "country": "US"}  # the example's US market takes no businesses
    assert carried == {"billing_address": expected, "shipping_address": expected}


def test_a_billing_address_in_another_country_is_not_carried():
    se = {**US_HOME, "country": "SE", "region": ""}
    assert rules.carried_addresses(SHOP, {"billing_address": se, "shipping_address": se}, "US") == {}
    assert rules.carried_addresses(SHOP, None, "US") == {}
    assert rules.carried_addresses(SHOP, {"billing_address": "x"}, "US") == {}


def test_a_separate_shipping_address_comes_only_where_the_new_market_allows_one():
    other = {**US_HOME, "street_address": "9 Elm St", "country": "US"}
    old = {"billing_address": US_HOME, "shipping_address": other}
    assert "shipping_address" not in rules.carried_addresses(SHOP, old, "US")  # US: not allowed
    se_home = {**US_HOME, "country": "SE", "region": None}
    se_old = {"billing_address": {**se_home, "organization_name": "Lee AB"},
              "shipping_address": {**se_home, "street_address": "Storgatan 1"}}
    carried = rules.carried_addresses(SHOP, se_old, "SE")  # SE: separate addresses, and B2B
    assert carried["shipping_address"]["street_address"] == "Storgatan 1"
    assert carried["billing_address"]["organization_name"] == "Lee AB"
    assert "region" not in carried["billing_address"]
