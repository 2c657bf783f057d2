/* The demo shop's pages (callbacks/demoshop): everything goes through kco-sync.js with the
 * session's browser token, as on a merchant's own page. Stable hooks: docs/browser.md. */
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("kco-config").textContent);
  var page = document.body.getAttribute("data-page");
  var catalogue = config.catalogue;
  // The state the page was rendered with (null: no session yet, so nothing to ask for).
  var sync = KcoSync.connect({ session: config.session, token: config.browser_token,
                               state: config.state || null });
  // For tests and the curious: what the page saw, with performance.now() times.
  var log = [];
  window.kcoShop = { sync: sync, log: log, config: config };
  ["state", "market", "totals", "order_completed", "error", "event", "gap", "connection",
   "checkout", "klarna", "updating"].forEach(function (name) {
    sync.on(name, function (detail) {
      log.push({ t: performance.now(), name: name,
                 version: sync.state ? sync.state.version : null,
                 currency: sync.state ? sync.state.market.currency : null,
                 id: detail && detail.id, type: detail && detail.type,
                 message: detail && detail.message, klarna: detail && detail.name,
                 updating: detail && detail.updating });
    });
  });

  function all(selector) { return Array.prototype.slice.call(document.querySelectorAll(selector)); }
  function set(hook, text, value) {
    all('[data-kco="' + hook + '"]').forEach(function (el) {
      el.textContent = text;
      if (value !== undefined) { el.setAttribute("data-value", String(value)); }
    });
  }
  function language() {
    var locale = sync.state ? sync.state.market.locale : homeMarket().default_locale;
    return (locale || "").split("-")[0];
  }
  // Texts in the language of the current market (config.texts: every shipped language; the
  // server renders the rest of the page, in the market's language at page load).
  function t(key, params) {
    var lang = language(), aliases = { no: "nb", nn: "nb" };
    lang = aliases[lang] || lang;
    var texts = config.texts[lang] || config.texts[config.language] || config.texts.en;
    return texts[key].replace(/%\((\w+)\)s/g, function (_, name) { return String(params[name]); });
  }
  function homeMarket() {
    return catalogue.markets.filter(function (m) { return m.country === catalogue.default_country; })[0];
  }
  // Prices as the market's locale writes them ("199,00 kr", "59,90 €"), before the session
  // exists too: the shop's default market is the one a new session starts in.
  function money(minor, currency) {
    var locale = sync.state ? sync.state.market.locale : homeMarket().default_locale;
    try {
      return new Intl.NumberFormat(locale, { style: "currency", currency: currency }).format(minor / 100);
    } catch (e) {
      return (minor / 100).toFixed(2) + " " + currency;
    }
  }
  function currentCurrency() {
    return sync.state ? sync.state.market.currency : homeMarket().currency;
  }
  // The banner speaks to the shopper in plain words; the service's own message (a developer's:
  // codes, Klarna's reasons) stays in data-problem for whoever debugs the page.
  function showError(err) {
    var box = document.querySelector('[data-kco="error"]');
    if (!box) { return; }
    box.hidden = !err;
    box.textContent = err ? t("went_wrong") : "";
    if (err) { box.setAttribute("data-problem", err.message || String(err)); } else { box.removeAttribute("data-problem"); }
  }
  function cartItems() {
    return sync.state ? sync.state.cart.items.map(function (i) {
      return { reference: i.reference, quantity: i.quantity };
    }) : [];
  }
  function changeQuantity(reference, quantity, add) {
    var items = cartItems(), found = false;
    items.forEach(function (i) {
      if (i.reference === reference) { i.quantity = add ? i.quantity + quantity : quantity; found = true; }
    });
    if (!found && quantity > 0) { items.push({ reference: reference, quantity: quantity }); }
    showError(null);
    return sync.setCart(items.filter(function (i) { return i.quantity > 0; }))
      .then(ensureCheckout, showError);
  }

  // -- rendering -------------------------------------------------------------------------
  function renderMarkets() {
    var select = document.querySelector('[data-kco="market"]');
    if (!select) { return; }
    if (!select.options.length) {
      catalogue.markets.forEach(function (m) {
        var option = document.createElement("option");
        option.value = m.country;
        option.textContent = m.country + " (" + m.currency + ")";
        select.appendChild(option);
      });
      select.addEventListener("change", function () {
        showError(null);
        if (!sync.state) {  // no session yet: an empty cart in that market first
          sync.setCart([]).then(function () { return sync.setMarket(select.value, null); })
            .catch(showError);
          return;
        }
        sync.setMarket(select.value, null).catch(showError);
      });
    }
    select.value = sync.state ? sync.state.market.country : catalogue.default_country;
  }

  function renderFacts() {
    var s = sync.state, currency = currentCurrency();
    set("currency", currency);
    set("locale", s ? s.market.locale : "–");
    set("version", s ? String(s.version) : "0");
    // A paid session's cart is gone: the header shows an empty cart — no items, nothing to pay —
    // while the confirmation's lines keep the order's total (what was paid).
    var amount = s ? s.order.order_amount : 0, cart = paid() ? 0 : amount;
    set("order-amount", money(cart, currency), cart);
    set("count", String(paid() ? 0 : cartItems().reduce(function (n, i) { return n + i.quantity; }, 0)));
    set("total", money(amount, currency), amount);
    set("tax-amount", money(s ? s.order.order_tax_amount : 0, currency), s ? s.order.order_tax_amount : 0);
  }

  function renderProducts() {
    var box = document.querySelector('[data-kco="products"]');
    if (!box) { return; }
    var currency = currentCurrency(), lang = language();
    box.innerHTML = "";
    catalogue.products.forEach(function (p) {
      var card = document.createElement("div");
      card.className = "product";
      card.setAttribute("data-sku", p.sku);
      var name = document.createElement("h2");
      name.textContent = (p.names && p.names[lang]) || p.name;
      var price = document.createElement("p");
      var button = document.createElement("button");
      button.type = "button";
      button.setAttribute("data-kco-add", p.sku);
      if (p.prices[currency] === undefined) {
        price.textContent = t("not_sold_in", { currency: currency });
        button.disabled = true;
      } else {
        price.textContent = money(p.prices[currency], currency);
      }
      button.textContent = t("add_to_cart");
      button.addEventListener("click", function () { changeQuantity(p.sku, 1, true); });
      card.appendChild(name); card.appendChild(price); card.appendChild(button);
      box.appendChild(card);
    });
  }

  function renderLines() {
    var body = document.querySelector('[data-kco="lines"]');
    if (!body) { return; }
    var s = sync.state, lines = s ? s.order.order_lines : [];
    var currency = currentCurrency();
    body.innerHTML = "";
    if (!lines.length) {
      body.innerHTML = '<tr><td colspan="4"></td></tr>';
      body.querySelector("td").textContent = t("cart_empty");
      return;
    }
    var editable = page === "cart" || page === "checkout";
    lines.forEach(function (line) {
      var row = document.createElement("tr");
      row.setAttribute("data-line-type", line.type || "physical");
      row.setAttribute("data-reference", line.reference || "");
      var name = document.createElement("td");
      name.textContent = line.name;
      var qty = document.createElement("td");
      var goods = line.type === "physical" || line.type === "digital" || !line.type;
      if (goods && editable) {
        var input = document.createElement("input");
        input.type = "number"; input.min = "0"; input.max = "10000"; input.value = line.quantity;
        input.setAttribute("data-kco-qty", line.reference);
        input.setAttribute("aria-label", t("quantity_of", { name: line.name }));
        input.addEventListener("change", function () {
          var n = parseInt(input.value, 10);
          if (!(n >= 0)) { input.value = line.quantity; return; }
          changeQuantity(line.reference, n, false);
        });
        qty.appendChild(input);
      } else {
        qty.textContent = String(line.quantity);
      }
      var unit = document.createElement("td"); unit.className = "num";
      unit.textContent = money(line.unit_price, currency);
      var total = document.createElement("td"); total.className = "num";
      total.textContent = money(line.total_amount, currency);
      row.appendChild(name); row.appendChild(qty); row.appendChild(unit); row.appendChild(total);
      body.appendChild(row);
    });
  }

  function paid() {
    var k = sync.state && sync.state.klarna;
    return !!(k && k.status === "checkout_complete");
  }
  function renderConfirmation() {
    var status = document.querySelector('[data-kco="order-status"]');
    if (!status || !sync.state) { return; }
    var k = sync.state.klarna || {};
    // Klarna's own word (the page may have read it before the push reached us).
    var value = k.status === "checkout_complete" ? k.status : (config.klarna_status || k.status || "");
    status.setAttribute("data-value", value);
    status.setAttribute("data-acknowledged", k.acknowledged ? "true" : "false");
    var words = document.querySelector('[data-kco="paid"]');
    if (words && value === "checkout_complete") {
      words.hidden = false;
      words.querySelector('[data-kco="paid-amount"]').textContent =
        money(sync.state.order.order_amount, sync.state.market.currency);
      status.textContent = t("paid");
    } else {
      status.textContent = value ? t("not_paid") : t("unknown");
    }
  }

  // -- "updating": while kco-sync.js holds Klarna's iframe suspended ------------------------
  function renderUpdating(detail) {
    var box = document.querySelector('[data-kco="updating"]');
    if (!detail.updating) { if (box) { box.parentNode.removeChild(box); } return; }
    if (!box) {
      var checkout = document.getElementById("kco-checkout");
      if (!checkout) { return; }
      box = document.createElement("p");
      box.className = "updating";
      box.setAttribute("data-kco", "updating");
      box.setAttribute("role", "status");
      checkout.parentNode.insertBefore(box, checkout);
    }
    // Plain words: why Klarna is not in step yet is for developers (data-error), not shoppers.
    box.textContent = detail.error ? t("updating_failed") : t("updating");
    box.setAttribute("data-reason", detail.reason || "");
    if (detail.error) { box.setAttribute("data-error", String(detail.error)); } else { box.removeAttribute("data-error"); }
  }

  function render() {
    renderMarkets(); renderFacts(); renderProducts(); renderLines(); renderConfirmation();
  }

  // -- the checkout ----------------------------------------------------------------------
  var container = document.getElementById("kco-checkout");
  var loading = null;
  function ensureCheckout() {
    if (!container || !sync.state || !sync.state.cart.items.length || loading) { return; }
    if (sync.orderId) { return; }  // loaded: writes update Klarna's order themselves
    failedLoad(null);
    if (!container.firstChild) {
      container.innerHTML = '<p class="muted"></p>';
      container.firstChild.textContent = t("loading_checkout");
    }
    loading = sync.loadCheckout(container).then(function (reply) {
      loading = null;
      if (reply && (reply.status === "checkout_complete" || sync.complete)) { confirmed(reply.order_id); }
    }, function (err) {
      loading = null;
      showError(null);  // one message for one failure: the one where the checkout would be
      failedLoad(err);
    });
  }

  /** The checkout could not be loaded (Klarna or the service did not answer): say so where the
   * checkout would be, with a button that loads it again. `null` takes the message away. */
  function failedLoad(err) {
    var box = document.querySelector(".checkout-failed");   // the message and its button
    if (!err) { if (box) { box.parentNode.removeChild(box); } return; }
    if (!box) {
      box = document.createElement("div");
      box.className = "error checkout-failed";
      box.setAttribute("role", "alert");
      var words = document.createElement("p");
      words.setAttribute("data-kco", "checkout-failed");
      var retry = document.createElement("button");
      retry.type = "button";
      retry.setAttribute("data-kco", "retry-checkout");
      retry.addEventListener("click", function () { showError(null); ensureCheckout(); });
      box.appendChild(words); box.appendChild(retry);
      container.parentNode.insertBefore(box, container);
    }
    var message = box.querySelector('[data-kco="checkout-failed"]');
    message.textContent = t("checkout_failed");
    message.setAttribute("data-problem", err.message || String(err));
    box.querySelector('[data-kco="retry-checkout"]').textContent = t("retry_checkout");
    if (!sync.orderId) { container.innerHTML = ""; }  // no "Loading…" that never ends
  }

  /** This session is paid (here, in another tab, or before a reload): its confirmation. */
  function confirmed(orderId) {
    if (page !== "checkout" || !orderId) { return; }
    window.location.replace(config.confirmation_url + "?order_id=" + encodeURIComponent(orderId));
  }

  // A tab opened before the session existed has nothing to follow yet: the tab whose write
  // created it says so (same origin, same cookie), and this one starts following.
  var CREATED = "kco-shop-session-created";
  function announce() {
    try { window.localStorage.setItem(CREATED, config.session); } catch (e) { /* storage off */ }
  }
  window.addEventListener("storage", function (e) {
    if (e.key === CREATED && e.newValue === config.session && !sync.state) {
      sync.refresh().catch(function () { return null; });
    }
  });
  var announced = !!sync.state;
  sync.on("state", function () { if (!announced) { announced = true; announce(); } });

  sync.on("state", render);
  sync.on("updating", renderUpdating);
  sync.on("order_completed", function (d) { confirmed(d.order_id); });
  sync.on("error", function (err) { if (err && err.status) { showError(err); } });
  sync.on("connection", function (c) { document.body.setAttribute("data-online", String(c.online)); });
  sync.on("event", function (e) { set("last-event", e.type); });
  sync.on("order_completed", renderConfirmation);
  render();

  if (container) {
    if (!sync.state || !sync.state.cart.items.length) {
      container.innerHTML = "<p>" + t("add_products_first") + "</p>";
    }
    ensureCheckout();
  }
  if (config.confirmation_snippet) {
    KcoSync.mountSnippet(document.getElementById("kco-confirmation"), config.confirmation_snippet);
  }
})();
