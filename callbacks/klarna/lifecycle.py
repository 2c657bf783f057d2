"""One Klarna order per session, kept in step with the cart (Klarna's cart-update guide,
docs/klarna.md §6; docs/design.md §7.1).

Klarna's guide: keep the order id of the shopper's session; on checkout load read the order and
update it if the cart changed; create a new one on 404, any other 4xx, 5xx or network error. A
checkout load holds the session's lease (Store.lease) across its Klarna calls, so two tabs
loading at once end with one order, and no database transaction stays open during a network
call. Push and notification are verified by reading the order from Order Management; push is
recorded once per Klarna order id by a primary key, not by a check-then-insert.

Every call for an order goes to the Klarna account holding it (callbacks/klarna/accounts.py):
the state's `klarna.account` for the session's order, the completed order's row after
purchase, the push or notification URL's `klarna_account` for an older order. A session whose
market sells through another account than its order's gets a new order there
(rules.account_moved); the old one is abandoned, left to expire where it is.

Every create, update and acknowledge carries a Klarna-Idempotency-Key derived from the logical
call (callbacks/klarna/idempotency.py), so a retry — by urllib3, by a second load after a
crash, by another process — is one call at Klarna.

This module only orchestrates: it makes the Klarna calls, holds the lease and applies the pure
decisions of callbacks/rules/lifecycle.py (`store.apply(sid, lambda tx: rules.…)`); what the
session becomes is decided there. Side effects on the transaction that bookkeep Klarna's
orders (record_completed, mark_acknowledged, set_fraud_status) stay here, beside the decision
they guard. No Flask here: views and the CLI call these methods with the app's shop, store and
client.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from callbacks.klarna import idempotency
from callbacks.klarna.accounts import Accounts
from callbacks.klarna.client import KlarnaClient, KlarnaError
from callbacks.klarna.order import Urls, differs, order_payload, sent_version
from callbacks.orders.paid_check import record_mismatch
from callbacks.rules import cart
from callbacks.rules import lifecycle as rules
from callbacks.rules.checkout import COMPLETE, Decision, OrderComplete, is_complete
from callbacks.rules.lifecycle import FRAUD_EVENTS, INCOMPLETE, Step
from callbacks.rules.shop import Shop
from callbacks.rules.state import EventType
from callbacks.store.activity import for_session, with_session
from callbacks.store.database import LeaseBusy, SessionTx, Store

log = logging.getLogger(__name__)

__all__ = ["COMPLETE", "FRAUD_EVENTS", "INCOMPLETE", "EmptyCart", "KlarnaUnavailable", "Lifecycle",
           "Loaded", "NoSession", "NotSynced", "WrongSession"]


class NoSession(Exception):
    pass


class EmptyCart(Exception):
    pass


class KlarnaUnavailable(Exception):
    """Klarna refused or could not be reached even for a new order."""

    def __init__(self, error: KlarnaError):
        super().__init__(str(error))
        self.error = error


class NotSynced(Exception):
    """A storefront change is saved, but the open Klarna order could not be brought in step:
    `cause` is the KlarnaUnavailable or LeaseBusy that stopped it."""

    def __init__(self, cause: KlarnaUnavailable | LeaseBusy):
        super().__init__(str(cause))
        self.cause = cause


class WrongSession(Exception):
    """A push or notification whose Klarna order belongs to another session."""


@dataclass
class Loaded:
    state: dict[str, Any]
    order: dict  # Klarna's order, with html_snippet
    outcome: EventType | None  # the event recorded, or None when nothing changed


def reason(error: KlarnaError) -> str:
    if error.is_network_error:
        return f"network: {error.error_code}"
    return f"{error.status} {error.error_code}"


class Lifecycle:
    def __init__(self, shop: Shop, store: Store, make_client: Callable[[str | None], KlarnaClient],
                 urls: Urls, accounts: Accounts):
        """`make_client(account)` makes a client for one Klarna account (None: the environment's)."""
        self.shop, self.store, self.urls, self.accounts = shop, store, urls, accounts
        self._make_client = make_client
        self._local = threading.local()

    def client_for(self, account: str | None) -> KlarnaClient:
        """One client per account and thread: requests' Session is not documented as
        thread-safe, and each account has its own host and credentials."""
        clients = getattr(self._local, "clients", None)
        if clients is None:
            clients = self._local.clients = {}
        client = clients.get(account)
        if client is None:
            client = clients[account] = self._make_client(account)
        return client

    @property
    def client(self) -> KlarnaClient:
        """The environment's account's client (the only one of a shop without accounts)."""
        return self.client_for(None)

    def order_account(self, order_id: str, named: str | None = None) -> str | None:
        """The account holding `order_id`: as recorded (its completed row, or the session
        whose order it is), else `named` — what a push or notification URL says, since an
        order a session has moved away from is recorded nowhere else."""
        known, account = self.store.order_account(order_id)
        return account if known else named

    # -- checkout load, cart and market changes -----------------------------------------------
    def load_checkout(self, sid: str, merchant_reference1: cart.Reference = cart.KEEP) -> Loaded:
        """The guide's load flow: read → (update if it differs) → else create, except that a
        complete session is never sold again: it is answered with its completed order, and an
        order Klarna no longer calls incomplete is checked through Order Management first. The
        storefront may set the shop's order number (`merchant_reference1`) on the way."""
        with for_session(sid), self.store.lease(sid):
            if is_complete(self._session(sid)):
                return self._confirmation(sid, self._session(sid))
            if merchant_reference1 is not cart.KEEP:
                self._set_reference(sid, merchant_reference1)
            return self._load(sid)

    def _load(self, sid: str) -> Loaded:
        """The load flow under the lease: the session's order is read at the account holding
        it; a new one is made at the account of the session's market."""
        state = self._state(sid)
        account = self.shop.account_of(state["market"]["country"])
        payload = order_payload(self.shop, state, self.urls, account,
                                attachment=self.store.get_attachment(sid))
        order_id = state["klarna"]["order_id"]
        held_by = rules.order_account(state)
        order, why = None, None
        if order_id:
            try:
                order = self.client_for(held_by).read_order(order_id)
            except KlarnaError as exc:
                why = reason(exc)
        step = rules.load_step(state, order, order is not None and not differs(order, payload),
                               rules.account_moved(self.shop, state))
        if step is Step.CREATE:
            return self._create(sid, payload, account, None, None)
        if step is Step.MOVE:
            return self._move(sid, payload, account, order_id, held_by, order)
        if step is Step.RECREATE:
            return self._create(sid, payload, account, order_id, why)
        if step is Step.VERIFY_COMPLETION:
            assert order is not None  # load_step: only for an order Klarna answered
            done = self._completed_at_klarna(sid, order_id, order, held_by)
            return done or self._create(sid, payload, account, order_id,
                                        f"order is {order.get('status')}")
        if step is Step.KEEP:
            assert order is not None  # load_step: only for an order Klarna answered
            return Loaded(self._record(sid, order, None, {}, sent_version(payload), account),
                          order, None)
        return self._update_or_recreate(sid, order_id, payload, account)

    def _move(self, sid: str, payload: dict, account: str | None, old_order_id: str,
              old_account: str | None, old_order: dict | None) -> Loaded:
        """The order at the market's new account, created with the address the shopper typed
        into the old one (rules.carried_addresses; in the body only, never stored). Should
        Klarna refuse that body as a bad value, the same order is created without it — an
        address Klarna will not take must not stop the shopper from buying — under a key of
        its own, since Klarna repeats a refusal for a key it has seen."""
        carried = rules.carried_addresses(self.shop, old_order, payload["purchase_country"])
        if carried:
            try:
                return self._create(sid, {**payload, **carried}, account, old_order_id,
                                    rules.KLARNA_ACCOUNT, old_account, prefilled=sorted(carried))
            except KlarnaUnavailable as exc:
                if exc.error.status != 400:
                    raise
                log.info("session %s: the new order refused the old one's address (%s); "
                         "created without it", sid, reason(exc.error))
        return self._create(sid, payload, account, old_order_id, rules.KLARNA_ACCOUNT, old_account,
                            prefilled=[], key_variant="no-address" if carried else None)

    def _set_reference(self, sid: str, reference: str | None) -> None:
        self.store.apply(sid, lambda tx: cart.set_merchant_reference(self._existing(tx, sid), reference))

    def sync(self, sid: str) -> Loaded | None:
        """After a cart or market change: update an open Klarna order (a new one when Klarna
        refuses); None when the session has no open order yet (nothing at Klarna to update).
        Raises NotSynced when Klarna cannot be brought in step: the change itself stays. Raises
        OrderComplete when the update found the order paid (recorded as a push would): the
        change stays in the session, but Klarna keeps what was paid."""
        try:
            loaded = self._sync(sid)
        except (KlarnaUnavailable, LeaseBusy) as exc:
            raise NotSynced(exc) from exc
        if loaded is not None and is_complete(loaded.state):
            raise OrderComplete(sid)
        return loaded

    def _sync(self, sid: str) -> Loaded | None:
        with for_session(sid), self.store.lease(sid):
            state = self._session(sid)
            if not rules.sync_needed(state):
                return None
            if rules.account_moved(self.shop, state):  # a new order at the market's account
                return self._load(sid)
            account = rules.order_account(state)
            return self._update_or_recreate(sid, state["klarna"]["order_id"],
                                            order_payload(self.shop, state, self.urls, account,
                                                          attachment=self.store.get_attachment(sid)),
                                            account)

    def change_market(self, sid: str, country: str, locale: str | None) -> dict[str, Any]:
        """PUT …/market: changes the session only; `sync` then brings the open Klarna order in
        step."""
        state = self.store.apply(sid, lambda tx: rules.market_changed(
            self.shop, self._existing(tx, sid), sid, country, locale))[0]
        assert state is not None  # _existing raised NoSession otherwise
        return state

    def _session(self, sid: str) -> dict:
        state = self.store.get_state(sid)
        if state is None:
            raise NoSession(sid)
        return state

    @staticmethod
    def _existing(tx: SessionTx, sid: str) -> dict[str, Any]:
        if tx.state is None:
            raise NoSession(sid)
        return tx.state

    def _state(self, sid: str) -> dict:
        state = self._session(sid)
        if not state["cart"]["items"]:
            raise EmptyCart(sid)
        return state

    def _update_or_recreate(self, sid: str, order_id: str, payload: dict, account: str | None) -> Loaded:
        """Update the order at `account`, the one holding it; a new order there when Klarna refuses."""
        key = idempotency.update_order(sid, order_id, sent_version(payload))
        try:
            order = self.client_for(account).update_order(order_id, payload, idempotency_key=key)
        except KlarnaError as exc:
            if exc.error_code == "READ_ONLY_ORDER":  # bought, and the push is not here yet
                done = self._completed_at_klarna(sid, order_id, None, account)
                if done:
                    return done
            return self._create(sid, payload, account, order_id, reason(exc))
        return Loaded(self._record(sid, order, EventType.ORDER_UPDATED, {"order_id": order_id},
                                   sent_version(payload), account), order, EventType.ORDER_UPDATED)

    def _create(self, sid: str, payload: dict, account: str | None, old_order_id: str | None,
                why: str | None, old_account: str | None = None,
                prefilled: list[str] | None = None, key_variant: str | None = None) -> Loaded:
        """A new order at `account`, replacing `old_order_id` (None: the session's first). The
        key names this deployment (its public URL), the session, the cart version and the
        order replaced: a retry of this create — even by another process after a crash — is
        answered with the same order, while another deployment's session of the same id, or a
        later recreate, makes its own."""
        key = idempotency.create_order(sid, sent_version(payload), old_order_id, account,
                                       self.urls.public, key_variant)
        try:
            order = self.client_for(account).create_order(payload, idempotency_key=key)
        except KlarnaError as exc:
            raise KlarnaUnavailable(exc) from exc
        if old_order_id:
            outcome = EventType.ORDER_RECREATED
            data = {"order_id": order["order_id"], "old_order_id": old_order_id, "reason": why}
            if why == rules.KLARNA_ACCOUNT:  # the old order stays at its account, to expire
                data.update(klarna_account=account, old_klarna_account=old_account, abandoned=True,
                            prefilled=prefilled or [])
        else:
            outcome, data = EventType.ORDER_CREATED, {"order_id": order["order_id"]}
            if account is not None:
                data["klarna_account"] = account
        log.info("session %s: %s %s", sid, outcome, data)
        return Loaded(self._record(sid, order, outcome, data, sent_version(payload), account),
                      order, outcome)

    def _record(self, sid: str, order: dict, outcome: EventType | None, data: dict,
                version: int | None = None, account: str | None = None) -> dict[str, Any]:
        """`version` (needed with an outcome) is the state version whose cart Klarna received,
        from the payload's merchant_data (order.sent_version). A cart write may have
        landed while Klarna was answering (it does not wait for the lease), so the session's
        version now may be newer: naming that one would claim Klarna has a cart it never got,
        and the storefront would skip the sync it still needs. `account` is the Klarna account
        that answered."""
        state = self.store.apply(sid, lambda tx: rules.order_recorded(
            self._existing(tx, sid), order, outcome, data, version, account))[0]
        assert state is not None  # _existing raised NoSession otherwise
        return state

    # -- a paid session is complete -----------------------------------------------------------
    def _completed_at_klarna(self, sid: str, order_id: str, order: dict | None,
                             account: str | None) -> Loaded | None:
        """Klarna says the order is no longer open (read as complete, or an update refused as
        READ_ONLY_ORDER), before any push: verify the purchase through Order Management and
        record it exactly as a push does, then answer with the confirmation. None when Order
        Management has no such order of this session (then it was not a sale, and a new order
        may be made); KlarnaUnavailable when it cannot say (selling again could sell twice).
        `account` holds the order."""
        try:
            om = self.client_for(account).read_merchant_order(order_id)
        except KlarnaError as exc:
            if exc.status in (400, 404):
                return None
            raise KlarnaUnavailable(exc) from exc
        try:
            self._check_owner(sid, om, self.store.order_owners(order_id))
        except WrongSession as exc:
            log.warning("session %s: %s; not this session's purchase", sid, exc)
            return None
        self._complete(sid, order_id, om, account)
        self.acknowledge(sid, order_id)
        return self._confirmation(sid, self._session(sid), order)

    def _confirmation(self, sid: str, state: dict[str, Any], order: dict | None = None) -> Loaded:
        """A complete session's checkout load: the completed order, with Klarna's confirmation
        snippet while the Checkout API still renders one, and never a buyable one."""
        order_id = state["klarna"]["order_id"]
        if order is None or order.get("order_id") != order_id:
            try:
                order = self.client_for(rules.order_account(state)).read_order(order_id)
            except KlarnaError as exc:  # expired from the Checkout API: the order stands
                log.info("session %s: no confirmation snippet for %s (%s)", sid, order_id, reason(exc))
                order = {"order_id": order_id, "status": COMPLETE}
        if rules.klarna_status(order) == INCOMPLETE:
            order = {k: v for k, v in order.items() if k != "html_snippet"}
        return Loaded(state, order, None)

    # -- push and notification ----------------------------------------------------------------
    @with_session
    def claim(self, sid: str, order_id: str, named: str | None = None) -> None:
        """Before a push is answered: is `order_id` this session's? Raises WrongSession when it
        is not, KlarnaError when Order Management cannot say. Only the database is asked when
        the session already has the order (every push of a checkout we created), so the push
        is still answered at once; an order we do not know is read from Order Management, at
        the account the URL names (`named`) unless we recorded another."""
        owners = self.store.order_owners(order_id)
        if sid in owners and len(owners) == 1:
            return
        try:
            om = self.client_for(self.order_account(order_id, named)).read_merchant_order(order_id)
        except KlarnaError as exc:
            if exc.status in (400, 404):  # 401/403: our credentials; retried like a 5xx
                raise WrongSession(f"order {order_id} is not one Klarna knows "
                                   f"({reason(exc)})") from None
            raise
        self._check_owner(sid, om, owners)

    @with_session
    def push(self, sid: str, order_id: str, named: str | None = None) -> str:
        """Read the order from Order Management (at the account holding it; `named`: the one
        the push URL names), record it once, acknowledge it. Returns what happened, for the
        log; every step is safe to repeat."""
        account = self.order_account(order_id, named)
        try:
            om = self.client_for(account).read_merchant_order(order_id)
        except KlarnaError as exc:
            log.warning("push %s: reading the order failed (%s); Klarna will push again", order_id, exc)
            return f"read failed: {reason(exc)}"
        self._check_owner(sid, om, self.store.order_owners(order_id))
        self._complete(sid, order_id, om, account)
        return self.acknowledge(sid, order_id)

    def _complete(self, sid: str, order_id: str, om: dict, account: str | None) -> None:
        """Record the purchase Order Management confirmed at `account`, once per Klarna order
        id (push and a load that found the order paid both come here; the primary key picks
        one)."""
        def decide(tx: SessionTx) -> Decision | None:
            if not tx.record_completed(order_id, om, account):
                return None  # a push or a load recorded it first
            return rules.order_completed(self.shop, tx.state, sid, order_id, om, account)
        if self.store.apply(sid, decide)[1] is not None:  # first recording: what was paid? (rules/paid.py)
            record_mismatch(self.store, sid, order_id, om, self.shop)

    @with_session
    def acknowledge(self, sid: str, order_id: str) -> str:
        """Acknowledge a recorded completed order, at the account its row names."""
        known = self.store.completed_order(order_id)
        if known and known["acknowledged_at"] is not None:
            return "already acknowledged"
        account = known["klarna_account"] if known else self.order_account(order_id)
        try:
            # One key per order: a retried or repeated acknowledge is one acknowledge at Klarna.
            self.client_for(account).acknowledge_order(
                order_id, idempotency_key=idempotency.acknowledge_order(order_id))
        except KlarnaError as exc:
            log.warning("acknowledge %s failed (%s); the next push or `flask kco reconcile` retries",
                        order_id, exc)
            return f"acknowledge failed: {reason(exc)}"
        def decide(tx: SessionTx) -> Decision | None:
            if not tx.mark_acknowledged(order_id):
                return None  # a concurrent acknowledge recorded it first
            return rules.order_acknowledged(self._existing(tx, sid), order_id)
        return "acknowledged" if self.store.apply(sid, decide)[1] else "already acknowledged"

    def reconcile(self) -> list[tuple[str, str]]:
        """Acknowledge every completed order that is not yet acknowledged."""
        return [(row["order_id"], self.acknowledge(row["session"], row["order_id"]))
                for row in self.store.unacknowledged_orders()]

    @with_session
    def notification(self, sid: str, order_id: str, event_type: str, named: str | None = None) -> dict:
        """Record the fraud decision as Order Management reports it (the notification itself is
        only a hint: Klarna asks merchants to verify it against fraud_status), asked at the
        account holding the order (`named`: the one the notification URL names)."""
        account = self.order_account(order_id, named)
        om = self.client_for(account).read_merchant_order(order_id)  # KlarnaError → the view answers 503
        self._check_owner(sid, om, self.store.order_owners(order_id))
        fraud_status = om.get("fraud_status")

        def decide(tx: SessionTx) -> Decision | None:
            tx.set_fraud_status(order_id, fraud_status)
            return rules.fraud_status_read(self.shop, tx.state, sid, order_id, event_type, fraud_status)
        self.store.apply(sid, decide)
        return rules.notification_data(order_id, event_type, fraud_status)

    def _check_owner(self, sid: str, om: dict, owners: set[str]) -> None:
        """Order Management's merchant_reference2 (set by us when we created the order) names
        the owner; without it, only the order's stored binding does (klarna/binding.py). The URL
        names a session, but a URL may have leaked: it decides nothing."""
        owner = om.get("merchant_reference2")
        order_id = om.get("order_id")
        if owner and owner != sid:
            raise WrongSession(f"order {order_id} belongs to another session")
        if not owner and sid not in owners:
            raise WrongSession(f"order {order_id} has no merchant_reference2 and is not bound "
                               "to this session")
        if owners - {sid}:
            raise WrongSession(f"order {order_id} is bound to another session")
