/*! kco-sync.js — keeps a merchant page in step with its kco-sync session and Klarna's iframe.
 *
 * No build step, no framework. As a classic script it defines `window.KcoSync`; as an ES module
 * import kco-sync.mjs (which loads this file) for `import { connect, mountSnippet }`.
 *
 *   var sync = KcoSync.connect({ session: "s-123", token: "<browser token>" });
 *   sync.on("state", function (state) { ... });   // also "market", "totals",
 *   sync.setCart([{ reference: "SKU", quantity: 2 }]);  // "order_completed", "error", "event"
 *   sync.setMarket("FI", "fi-FI");
 *   sync.loadCheckout(document.getElementById("checkout"));
 *
 * While a checkout is loaded the iframe shows only what Klarna holds: setCart / setMarket run
 * Klarna's suspend → write → resume on window._klarnaCheckout, and any change the feed shows
 * from elsewhere (another tab, the back end, another tab's iframe) suspends the iframe at once
 * and resumes it only once the state says Klarna holds the new cart (klarna.synced_version).
 * The session feed is long-polled with the browser token (never KCO_API_KEY); a version gap or
 * any newer event refetches the state with its ETag; network errors reconnect with backoff; a
 * hidden tab stops polling and catches up when shown. The full API: docs/browser.md.
 */
(function (root) {
  "use strict";

  var EVENTS = ["state", "market", "totals", "order_completed", "error", "event", "gap",
                "connection", "checkout", "klarna", "updating"];
  var KLARNA_EVENTS = ["load", "change", "billing_address_change", "shipping_address_change",
                       "shipping_option_change", "order_total_change", "can_not_complete_order",
                       "redirect_initiated", "network_error", "customer", "user_interacted",
                       "checkbox_change", "load_confirmation"];
  // The iframe already called our callbacks for these: look at the state now, not at the next
  // feed wake-up.
  var REFRESH_ON = { change: 1, billing_address_change: 1, shipping_address_change: 1,
                     shipping_option_change: 1, order_total_change: 1 };
  // How long the iframe may wait for the back end's own sync before the page brings Klarna in
  // step itself (a checkout load reads and updates the order), and between such attempts.
  var SYNC_GRACE_MS = 2000, SYNC_RETRY_MS = 5000;
  // A change made in the iframe (a callback) is in Klarna's order already; the iframe that made
  // it reports its new total at once. Only when it does not is the change another tab's, and the
  // iframe is refreshed (suspend → resume).
  var OWN_CALLBACK_MS = 400;
  // After a resume, how long "updating" stays on while the iframe reloads and reports its total.
  var SHOWN_MS = 2000;

  /** A feed event that changed the cart on the storefront's side: Klarna gets it only through
   * the back end's sync (or a checkout load), which records `klarna.synced_version`. */
  function storefrontChange(event) {
    return event.type === "cart_updated" ||
      (event.type === "market_changed" && !!event.data && event.data.purchase_country !== undefined);
  }

  /** An order_recreated that moves the session off the order `shown`. */
  function replacedOrder(event, shown) {
    return event.type === "order_recreated" && !!event.data && !!shown &&
      event.data.old_order_id === shown && event.data.order_id !== shown;
  }

  /** The nonce of this script's element, for the snippet's scripts under a nonce-based CSP. */
  var NONCE = (function () {
    var me = typeof document !== "undefined" && document.currentScript;
    return (me && (me.nonce || me.getAttribute("nonce"))) || "";
  })();

  function KcoSyncError(message, status, body) {
    var err = new Error(message);
    err.name = "KcoSyncError";
    err.status = status || 0;
    err.body = body || null;
    return err;
  }

  function sleep(ms, signal) {
    return new Promise(function (resolve) {
      var timer = setTimeout(resolve, ms);
      if (signal) { signal.addEventListener("abort", function () { clearTimeout(timer); resolve(); }); }
    });
  }

  /** Insert Klarna's html_snippet and run its scripts (innerHTML alone does not run them). The
   * re-created scripts carry the page's CSP nonce (that of the script element that loaded
   * kco-sync.js, or options.nonce), so a policy without 'unsafe-inline' lets them run. */
  function mountSnippet(container, html, options) {
    var nonce = (options && options.nonce) || NONCE;
    container.innerHTML = html;
    var scripts = container.querySelectorAll("script");
    for (var i = 0; i < scripts.length; i++) {
      var old = scripts[i], fresh = document.createElement("script");
      for (var a = 0; a < old.attributes.length; a++) {
        fresh.setAttribute(old.attributes[a].name, old.attributes[a].value);
      }
      if (nonce) { fresh.nonce = nonce; fresh.setAttribute("nonce", nonce); }
      fresh.text = old.text;
      old.parentNode.replaceChild(fresh, old);
    }
    return container;
  }

  function Sync(options) {
    if (!options || !options.session || !options.token) {
      throw KcoSyncError("KcoSync.connect needs { session, token }");
    }
    this.session = options.session;
    this.token = options.token;
    this.baseUrl = (options.baseUrl || "").replace(/\/$/, "");
    this.wait = options.wait || 25;
    this.followCountryChange = options.followCountryChange !== false;
    this.refreshToken = options.refreshToken || null;  // async () => new token, on 401
    this.state = null;
    this.etag = null;
    this.lastEventId = 0;
    this.orderId = null;
    this.online = null;
    this._handlers = {};
    this._klarnaHandlers = {};
    this._running = false;
    this._poll = null;       // AbortController of the long-poll in flight
    this._api = null;        // Klarna's api object once a snippet is mounted
    this._writes = Promise.resolve();
    this._marketFollow = null;
    this._onVisibility = this._visibility.bind(this);
    this.nonce = options.nonce || NONCE;
    // The iframe in step (docs/browser.md, "Every open checkout follows every change").
    this._container = null;
    this._holds = {};        // why kco-sync holds the iframe suspended: write, sync, visible, refresh
    this._held = false;      // api.suspend() sent, resume not yet
    this._writing = 0;       // own writes in flight
    this._need = 0;          // the newest storefront change Klarna must hold before a resume
    this._shownSynced = 0;   // klarna.synced_version when the iframe last reloaded the order
    this._satisfied = 0;     // changes up to this version are in Klarna by a checkout load
    this._shownAmount = null; // the iframe's total as it last reported it (or loaded it)
    this._expectAmount = null;
    this._timers = {};
    this._catchUp = false;   // a tab shown again: the next poll does not wait
    this._updating = null;   // the last "updating" detail emitted
    // The page may hand over the state it was rendered with; `state: null` says the session
    // does not exist yet, so nothing is asked (it would be a 404) until a write creates it.
    this._given = Object.prototype.hasOwnProperty.call(options, "state");
    if (this._given && options.state) { this._apply(options.state); }
  }

  Sync.prototype.on = function (name, fn) {
    if (typeof fn !== "function") { throw KcoSyncError("on(" + name + ", fn): fn must be a function"); }
    var list = this._handlers[name] || (this._handlers[name] = []);
    if (list.indexOf(fn) === -1) { list.push(fn); }  // the same listener twice is once
    var self = this;
    return function off() { self.off(name, fn); };
  };

  Sync.prototype.off = function (name, fn) {
    var list = this._handlers[name] || [];
    var at = list.indexOf(fn);
    if (at !== -1) { list.splice(at, 1); }
  };

  /** Page handlers for the iframe's events (Klarna allows one per event; we hold that one). */
  Sync.prototype.onCheckout = function (name, fn) {
    var list = this._klarnaHandlers[name] || (this._klarnaHandlers[name] = []);
    if (list.indexOf(fn) === -1) { list.push(fn); }
  };

  Sync.prototype._emit = function (name, detail) {
    var list = (this._handlers[name] || []).slice();
    for (var i = 0; i < list.length; i++) {
      try { list[i].call(this, detail); } catch (err) { if (root.console) { root.console.error(err); } }
    }
    if (typeof document !== "undefined" && typeof CustomEvent === "function") {
      document.dispatchEvent(new CustomEvent("kco:" + name, { detail: detail }));
    }
  };

  Sync.prototype._url = function (what, query) {
    return this.baseUrl + "/api/sessions/" + encodeURIComponent(this.session) + "/" + what +
      (query ? "?" + query : "");
  };

  Sync.prototype._request = function (method, what, options) {
    options = options || {};
    var self = this;
    var headers = { "Authorization": "Bearer " + this.token };
    if (options.body !== undefined) { headers["Content-Type"] = "application/json"; }
    if (options.etag) { headers["If-None-Match"] = options.etag; }
    return fetch(this._url(what, options.query), {
      method: method, headers: headers, cache: "no-store", credentials: "omit",
      signal: options.signal,
      body: options.body === undefined ? undefined : JSON.stringify(options.body)
    }).then(function (response) {
      if (response.status === 304) { return { status: 304, response: response, body: null }; }
      return response.json().catch(function () { return null; }).then(function (body) {
        if (response.ok) { return { status: response.status, response: response, body: body }; }
        if (response.status === 401 && self.refreshToken && !options.retried) {
          return Promise.resolve(self.refreshToken()).then(function (token) {
            self.token = token;
            return self._request(method, what, Object.assign({}, options, { retried: true }));
          });
        }
        throw KcoSyncError((body && body.message) || ("HTTP " + response.status), response.status, body);
      });
    });
  };

  // -- the state ---------------------------------------------------------------------------
  Sync.prototype.refresh = function () {
    var self = this;
    return this._request("GET", "state", { etag: this.etag }).then(function (result) {
      if (result.status !== 304) {
        self.etag = result.response.headers.get("ETag");
        self._apply(result.body);
      }
      return self.state;
    });
  };

  Sync.prototype._apply = function (state) {
    if (!state || (this.state && state.version < this.state.version)) { return; }  // stale
    var old = this.state;
    if (old && old.version === state.version && old.updated_at === state.updated_at) { return; }
    this.state = state;
    var m0 = old && old.market, m1 = state.market;
    if (!old || m0.country !== m1.country || m0.currency !== m1.currency || m0.locale !== m1.locale) {
      this._emit("market", { old: m0 || null, new: m1, state: state });
    }
    var t0 = old && old.order, t1 = state.order;
    if (!old || t0.order_amount !== t1.order_amount || t0.order_tax_amount !== t1.order_tax_amount ||
        m0.currency !== m1.currency) {
      this._emit("totals", { old: t0 ? { order_amount: t0.order_amount, currency: m0.currency } : null,
                             new: { order_amount: t1.order_amount,
                                    order_tax_amount: t1.order_tax_amount, currency: m1.currency },
                             state: state });
    }
    this._emit("state", state);
    var done = state.klarna && state.klarna.status === "checkout_complete";
    if (done && !(old && old.klarna && old.klarna.status === "checkout_complete")) {
      this._emit("order_completed", { order_id: state.klarna.order_id, state: state });
    }
    this._followCountry(state);
    this._settle();
    if (this._created) { var created = this._created; this._created = null; created(); }
  };

  /** The iframe's billing country moved to another market: the callback changed currency and
   * lines, but only the storefront can change Klarna's purchase_country (suspend → PUT market
   * → resume). */
  Sync.prototype._followCountry = function (state) {
    var pending = state.pending_purchase_country;
    if (!this.followCountryChange || !pending || !this._api || this._marketFollow === pending ||
        (state.klarna && state.klarna.status === "checkout_complete")) { return; }
    var self = this;
    this._marketFollow = pending;
    this.setMarket(pending, state.market.locale).then(function () { self._marketFollow = null; },
                                                      function () { self._marketFollow = null; });
  };

  // -- the feed ----------------------------------------------------------------------------
  Sync.prototype.start = function () {
    if (this._running) { return this; }
    this._running = true;
    if (typeof document !== "undefined") {
      document.addEventListener("visibilitychange", this._onVisibility);
    }
    this._loop();
    return this;
  };

  Sync.prototype.stop = function () {
    this._running = false;
    if (this._poll) { this._poll.abort(); }
    if (typeof document !== "undefined") {
      document.removeEventListener("visibilitychange", this._onVisibility);
    }
  };

  Sync.prototype._visibility = function () {
    if (document.hidden) {
      if (this._poll) { this._poll.abort(); }  // the loop parks until shown
      return;
    }
    // Shown again: whatever changed meanwhile must be in the iframe before the shopper acts.
    if (this._live()) {
      this._catchUp = true;
      this._hold("visible");
    }
    if (this._wake) { this._wake(); }
  };

  Sync.prototype._setOnline = function (online, err) {
    if (this.online !== online) {
      this.online = online;
      this._emit("connection", { online: online, error: err || null });
    }
  };

  Sync.prototype._loop = function () {
    var self = this, failures = 0, caughtUp = false;
    function visible() {
      if (typeof document === "undefined" || !document.hidden) { return Promise.resolve(); }
      return new Promise(function (resolve) { self._wake = resolve; });
    }
    function round() {
      if (!self._running) { return Promise.resolve(); }
      return visible().then(function () {
        self._wake = null;
        if (!self._running) { return; }
        var poll = self._poll = new AbortController();
        // Before the first answer, catch up on history without waiting and without replaying it;
        // a tab shown again catches up without waiting too.
        var catchUp = self._catchUp;
        var wait = caughtUp && !catchUp ? self.wait : 0;
        return self._request("GET", "events", {
          query: "after=" + self.lastEventId + "&wait=" + wait, signal: poll.signal
        }).then(function (result) {
          failures = 0;
          self._setOnline(true);
          var events = result.body.events || [];
          var replay = caughtUp;
          if (events.length < 500) { caughtUp = true; }
          return self._events(events, replay).then(function () {
            self.lastEventId = result.body.last_id;
            if (catchUp && events.length < 500) {
              self._catchUp = false;
              self._release("visible");
            }
          });
        }, function (err) {
          if (poll.signal.aborted) { return; }  // hidden or stopped: not an error
          if (err.status === 401 || err.status === 403) {
            self._running = false;
            self._emit("error", err);
            return;
          }
          failures += 1;
          self._setOnline(false, err);
          if (failures === 1) { self._emit("error", err); }
          // 0.25 s, 0.5 s, 1 s, … up to 5 s, with jitter so tabs do not reconnect in step.
          var delay = Math.min(5000, 250 * Math.pow(2, failures - 1)) * (0.75 + Math.random() / 2);
          return sleep(delay);
        });
      }).then(round);
    }
    // A session that does not exist yet has no feed either: wait for the first write.
    function exists() {
      if (self.state || !self._given) { return Promise.resolve(); }
      return new Promise(function (resolve) { self._created = resolve; });
    }
    // The state first (404: a session that has no cart yet), then the feed.
    var first = this._given ? exists() : this.refresh().catch(function (err) {
      if (err.status !== 404) { self._emit("error", err); }
    });
    first.then(round);
  };

  Sync.prototype._events = function (events, replay) {
    if (!events.length) { return Promise.resolve(); }
    var known = this.state ? this.state.version : 0;
    for (var e = 0; e < events.length; e++) {
      if (storefrontChange(events[e]) && events[e].version > this._need) { this._need = events[e].version; }
      // Another Klarna order replaced the one this iframe shows (a market on another Klarna
      // account, an expired order): nothing may be bought in the old one. Hold it now; the
      // state read below names the new order, and _settle mounts its snippet.
      if (replacedOrder(events[e], this.orderId) && this._live()) { this._hold("sync"); }
    }
    this._settle();  // a foreign cart change suspends the iframe now, before the state is read
    if (replay) {
      for (var i = 0; i < events.length; i++) { this._emit("event", events[i]); }
    }
    var first = events[0].version, last = events[events.length - 1].version;
    if (replay && this.state && first > known + 1) {
      this._emit("gap", { from: known, to: first });  // something happened we never saw
    }
    if (!this.state || last > known || (replay && first > known + 1)) {
      var self = this;
      return this.refresh().catch(function (err) { self._emit("error", err); });
    }
    this._settle();
    return Promise.resolve();
  };

  // -- writes, wrapped in Klarna's suspend → … → resume ---------------------------------------
  Sync.prototype._suspended = function (write) {
    var self = this;
    var run = function () {
      var before = self.state ? self.state.version : 0;
      self._writing += 1;
      self._hold("write");
      return Promise.resolve().then(write).then(function (result) {
        self._writing -= 1;
        if (result && result.body) { self.etag = result.response.headers.get("ETag"); self._apply(result.body); }
        self._release("write");
        return self.state;
      }, function (err) {
        self._writing -= 1;
        self._emit("error", err);
        // The write may have been saved even so (a 409/502 after saving): look again, and if it
        // was, Klarna must hold it before the iframe is resumed.
        return self.refresh().catch(function () { return null; }).then(function () {
          if (self.state && self.state.version > before && self._live()) {
            self._need = Math.max(self._need, self.state.version);
          }
          self._release("write");
          throw err;
        });
      });
    };
    // One write at a time, in the order the page asked for them.
    var next = this._writes.then(run, run);
    this._writes = next.catch(function () { return null; });
    return next;
  };

  // -- the iframe in step ------------------------------------------------------------------
  /** A Klarna checkout (not its confirmation) is mounted and open. */
  Sync.prototype._live = function () {
    var k = this.state && this.state.klarna;
    return !!(this._container && this.orderId && !(k && k.status === "checkout_complete"));
  };

  Sync.prototype._isHeld = function () {
    for (var key in this._holds) { if (this._holds[key]) { return true; } }
    return false;
  };

  Sync.prototype._hold = function (why, error) {
    var was = this._isHeld();
    this._holds[why] = error || true;
    if (!this._held && this._api) {
      this._held = true;
      // No auto-resume: an iframe resumed before Klarna holds the cart shows a stale total.
      this._api.suspend({ autoResume: { enabled: false } });
    }
    this._clearTimer("shown");
    if (!was || error) { this._setUpdating(true, why, error); }
  };

  Sync.prototype._release = function (why) {
    if (!this._holds[why]) { return; }
    delete this._holds[why];
    if (this._isHeld()) { return; }
    this._settle();  // may hold again (Klarna still lacks a change), or resume itself
    if (!this._isHeld() && this._held) { this._resume(); }
  };

  Sync.prototype._resume = function () {
    var self = this, state = this.state;
    if (this._held && this._api) { this._api.resume(); }
    this._held = false;
    if (state && state.klarna) {
      this._shownSynced = Math.max(this._shownSynced, state.klarna.synced_version || 0, this._satisfied);
    }
    var expect = state ? state.order.order_amount : null;
    if (expect === null || this._shownAmount === expect || !this._api) {
      this._setUpdating(false);
      return;
    }
    // The iframe reloads the order on resume and reports a changed total: "updating" stays on
    // until it has (or SHOWN_MS have passed).
    this._expectAmount = expect;
    this._timer("shown", SHOWN_MS, function () {
      self._shownAmount = self._expectAmount;  // an iframe that does not report its total
      self._expectAmount = null;
      self._setUpdating(false);
    });
  };

  Sync.prototype._setUpdating = function (on, why, error) {
    var detail = { updating: on, reason: on ? why : null, error: (error && error !== true) ? error : null };
    var last = this._updating;
    if (last && last.updating === detail.updating && last.reason === detail.reason && last.error === detail.error) { return; }
    this._updating = detail;
    this._emit("updating", detail);
  };

  Sync.prototype._timer = function (name, ms, fn) {
    this._clearTimer(name);
    var self = this;
    this._timers[name] = setTimeout(function () { delete self._timers[name]; fn(); }, ms);
  };

  Sync.prototype._clearTimer = function (name) {
    if (this._timers[name]) { clearTimeout(this._timers[name]); delete this._timers[name]; }
  };

  /** Look at the state: hold the iframe while Klarna lacks a change, let it go once Klarna has
   * it, and refresh it when another tab's iframe changed the order. */
  Sync.prototype._settle = function () {
    var self = this, state = this.state;
    if (!this._live()) {
      if (this._container && this._isHeld() && !this._writing) {  // completed: nothing to hold for
        this._holds = {};
        this._resume();
      }
      return;
    }
    var k = state.klarna || {};
    if (k.order_id && k.order_id !== this.orderId && !this._loading) {
      // Another tab's load replaced the order this iframe shows: mount the new one.
      this._hold("sync");
      this._bringInStep();
      return;
    }
    var synced = Math.max(k.synced_version || 0, this._satisfied);
    if (this._need > this._shownSynced) {  // the iframe shows an order older than a change
      if (synced >= this._need && k.order_id === this.orderId && state.cart.items.length) {
        // Klarna holds it: a resume makes the iframe reload it (suspend first if need be).
        this._clearTimer("sync");
        delete this._holds.sync;
        if (!this._isHeld()) {
          if (!this._held) { this._hold("refresh"); delete this._holds.refresh; }
          this._resume();
        }
      } else {
        if (!this._holds.sync) { this._hold("sync"); }
        if (!this._timers.sync && !this._loading) {
          this._timer("sync", SYNC_GRACE_MS, function () { self._bringInStep(); });
        }
      }
      return;
    }
    if (this._holds.sync) {  // a new order was mounted, or the load caught up
      this._clearTimer("sync");
      delete this._holds.sync;
      if (!this._isHeld()) { this._resume(); }
      return;
    }
    var amount = state.order.order_amount;
    if (this._shownAmount !== null && amount !== this._shownAmount && !this._isHeld() &&
        this._expectAmount === null && this._refreshedFor !== state.version) {
      if (!this._timers.own) {
        this._timer("own", OWN_CALLBACK_MS, function () {
          var now = self.state;
          if (!self._live() || self._isHeld() || now.order.order_amount === self._shownAmount) { return; }
          self._refreshedFor = now.version;
          self._hold("refresh");  // suspend → resume: the iframe reloads Klarna's order
          delete self._holds.refresh;
          self._resume();
        });
      }
    } else {
      this._clearTimer("own");
    }
  };

  /** Klarna did not get the change in time (the back end's sync failed or was refused): a
   * checkout load reads the order and updates it, or mounts the order that replaced it. */
  Sync.prototype._bringInStep = function () {
    var self = this;
    if (this._loading || !this._container) { return; }
    var asked = this._need;
    this.loadCheckout(this._container).then(function () {
      // A load reads Klarna's order and updates it when it differs: every change seen before it
      // started is in Klarna now, whether or not the load had to send it.
      self._satisfied = Math.max(self._satisfied, asked);
      self._settle();
    }, function (err) {
      self._hold("sync", (err && err.message) || String(err));
      self._timer("sync", SYNC_RETRY_MS, function () { self._bringInStep(); });
    });
  };

  Sync.prototype.setCart = function (items, coupon) {
    var self = this;
    return this._suspended(function () {
      var body = { items: items.filter(function (i) { return i.quantity > 0; })
        .map(function (i) { return { reference: i.reference, quantity: i.quantity }; }) };
      body.coupon = coupon !== undefined ? coupon : (self.state ? self.state.cart.coupon : null);
      return self._request("PUT", "cart", { body: body });
    });
  };

  Sync.prototype.setMarket = function (country, locale) {
    var self = this;
    return this._suspended(function () {
      return self._request("PUT", "market", { body: { country: country, locale: locale || null } });
    });
  };

  // -- the checkout ------------------------------------------------------------------------
  /** POST …/checkout, insert the snippet (re-inserted only when the order changes) and hold
   * the iframe's events. Resolves with the load's reply. A session already paid answers
   * `status: "checkout_complete"` with Klarna's confirmation snippet: that is mounted instead,
   * and there is nothing to buy. */
  Sync.prototype.loadCheckout = function (container) {
    var self = this;
    var loading = this._loading = this._request("POST", "checkout").then(function (result) {
      var reply = result.body;
      if (self._loading === loading) { self._loading = null; }
      if (reply.browser_token) { self.token = reply.browser_token; }
      var complete = reply.status === "checkout_complete" ||
        !!(reply.state && reply.state.klarna && reply.state.klarna.status === "checkout_complete");
      if (container && (reply.order_id !== self.orderId || !container.firstChild || complete !== !!self.complete)) {
        self._api = null;
        self._held = false;
        mountSnippet(container, reply.html_snippet || "", { nonce: self.nonce });
        self._container = container;
        self._shownAmount = reply.state ? reply.state.order.order_amount : null;
        if (reply.state && reply.state.klarna) { self._shownSynced = reply.state.klarna.synced_version || 0; }
        self._attach();
      }
      self.complete = complete;
      self.orderId = reply.order_id;
      if (reply.state && reply.state.klarna && !complete) {
        // The load brought Klarna in step with the state it answers with.
        self._shownSynced = Math.max(self._shownSynced, reply.state.klarna.synced_version || 0);
      }
      self._apply(reply.state);
      self._emit("checkout", { order_id: reply.order_id, status: complete ? "checkout_complete" : "checkout_incomplete" });
      self._settle();
      return reply;
    }, function (err) {
      if (self._loading === loading) { self._loading = null; }
      self._emit("error", err);
      throw err;
    });
    return loading;
  };

  /** Once per mounted snippet: hold the api and register our one listener per event. Before
   * Klarna's script has run, queue the call the way Klarna's own snippet stub does. */
  Sync.prototype._attach = function () {
    var self = this;
    if (typeof root._klarnaCheckout !== "function") {
      root._klarnaCheckout = function () {
        (root._klarnaCheckout.q = root._klarnaCheckout.q || []).push(arguments);
      };
    }
    root._klarnaCheckout(function (api) {
      self._api = api;
      if (self._isHeld() && !self._held) { self._held = true; api.suspend({ autoResume: { enabled: false } }); }
      var handlers = {};
      KLARNA_EVENTS.forEach(function (name) {
        handlers[name] = function (data) { self._klarnaEvent(name, data); };
      });
      api.on(handlers);  // Klarna keeps one listener per event: these are ours
      if (self.state) { self._followCountry(self.state); }
    });
  };

  Sync.prototype._klarnaEvent = function (name, data) {
    var list = (this._klarnaHandlers[name] || []).slice();
    for (var i = 0; i < list.length; i++) {
      try { list[i].call(this, data); } catch (err) { if (root.console) { root.console.error(err); } }
    }
    this._emit("klarna", { name: name, data: data });
    if (name === "order_total_change" && data && typeof data.order_total === "number") {
      this._shownAmount = data.order_total;
      if (this._expectAmount !== null && data.order_total === this._expectAmount && !this._isHeld()) {
        this._expectAmount = null;
        this._clearTimer("shown");
        this._setUpdating(false);
      }
    }
    if (REFRESH_ON[name]) {
      var self = this;
      this.refresh().catch(function (err) { self._emit("error", err); });
    }
  };

  function connect(options) {
    var sync = new Sync(options);
    if (options.start !== false) { sync.start(); }
    return sync;
  }

  root.KcoSync = { connect: connect, mountSnippet: mountSnippet, Sync: Sync, version: "1.0.0",
                   events: EVENTS.slice() };
})(typeof globalThis !== "undefined" ? globalThis : window);
