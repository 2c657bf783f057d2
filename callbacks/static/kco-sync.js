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
 * setCart / setMarket, while a checkout is loaded, run Klarna's suspend → write → resume on
 * window._klarnaCheckout (resume also when the write fails; the error is thrown and emitted).
 * The session feed is long-polled with the browser token (never KCO_API_KEY); a version gap or
 * any newer event refetches the state with its ETag; network errors reconnect with backoff; a
 * hidden tab stops polling and catches up when shown. The full API: docs/browser.md.
 */
(function (root) {
  "use strict";

  var EVENTS = ["state", "market", "totals", "order_completed", "error", "event", "gap",
                "connection", "checkout", "klarna"];
  var KLARNA_EVENTS = ["load", "change", "billing_address_change", "shipping_address_change",
                       "shipping_option_change", "order_total_change", "can_not_complete_order",
                       "redirect_initiated", "network_error", "customer", "user_interacted",
                       "checkbox_change", "load_confirmation"];
  // The iframe already called our callbacks for these: look at the state now, not at the next
  // feed wake-up.
  var REFRESH_ON = { change: 1, billing_address_change: 1, shipping_address_change: 1,
                     shipping_option_change: 1, order_total_change: 1 };

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

  /** Insert Klarna's html_snippet and run its scripts (innerHTML alone does not run them). */
  function mountSnippet(container, html) {
    container.innerHTML = html;
    var scripts = container.querySelectorAll("script");
    for (var i = 0; i < scripts.length; i++) {
      var old = scripts[i], fresh = document.createElement("script");
      for (var a = 0; a < old.attributes.length; a++) {
        fresh.setAttribute(old.attributes[a].name, old.attributes[a].value);
      }
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
    } else if (this._wake) {
      this._wake();
    }
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
        // Before the first answer, catch up on history without waiting and without replaying it.
        var wait = caughtUp ? self.wait : 0;
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
    // The state first (404: a session that has no cart yet), then the feed.
    this.refresh().catch(function (err) { if (err.status !== 404) { self._emit("error", err); } })
      .then(round);
  };

  Sync.prototype._events = function (events, replay) {
    if (!events.length) { return Promise.resolve(); }
    var known = this.state ? this.state.version : 0;
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
    return Promise.resolve();
  };

  // -- writes, wrapped in Klarna's suspend → … → resume ---------------------------------------
  Sync.prototype._suspended = function (write) {
    var self = this;
    var run = function () {
      var api = self._api;
      if (api) { api.suspend(); }  // Klarna auto-resumes after 10 s should we never come back
      return Promise.resolve().then(write).then(function (result) {
        if (api) { api.resume(); }
        if (result && result.body) { self.etag = result.response.headers.get("ETag"); self._apply(result.body); }
        return self.state;
      }, function (err) {
        if (api) { api.resume(); }
        self._emit("error", err);
        // The write may have been saved even so (a 409/502 after saving): look again.
        return self.refresh().catch(function () { return null; }).then(function () { throw err; });
      });
    };
    // One write at a time, in the order the page asked for them.
    var next = this._writes.then(run, run);
    this._writes = next.catch(function () { return null; });
    return next;
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
   * the iframe's events. Resolves with the load's reply. */
  Sync.prototype.loadCheckout = function (container) {
    var self = this;
    return this._request("POST", "checkout").then(function (result) {
      var reply = result.body;
      if (reply.browser_token) { self.token = reply.browser_token; }
      if (container && (reply.order_id !== self.orderId || !container.firstChild)) {
        self._api = null;
        mountSnippet(container, reply.html_snippet || "");
        self._attach();
      }
      self.orderId = reply.order_id;
      self._apply(reply.state);
      self._emit("checkout", { order_id: reply.order_id });
      return reply;
    }, function (err) { self._emit("error", err); throw err; });
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
