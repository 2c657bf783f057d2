/* The sandbox's checkout iframe (frame.html, confirmation.html).
 *
 * Every shopper action is one request to /sandbox/checkout/<id>/… (sandbox/frame.py), which runs
 * the sandbox's shopper flow: the merchant's callbacks fire exactly as for the /_sandbox
 * controls. What happened goes to the parent page as Klarna's client-side events
 * ({source: "kco-sandbox", event, data}); the parent's snippet script (klarna-checkout.js)
 * sends suspend/resume ({source: "kco-sandbox-parent", action}). Requests run one at a time,
 * in order, so a resume never overtakes the suspend before it.
 *
 * As in Klarna's iframe, a country is sent the moment it is chosen (the other address fields
 * wait for "Save address"), and Buy is disabled while the checkout is suspended, while a
 * callback it sent is unanswered, and while it shows edits it has not sent. The purchase
 * carries what the page showed (total and currency) for the sandbox to record.
 *
 * Its own words are the order's language (state.texts, from sandbox/texts.py): rendered by the
 * template, re-applied to every [data-t] element when a resume brings another locale.
 */
(function () {
  "use strict";
  var d = document, w = window, body = d.body;
  var base = w.location.pathname.replace(/\/(frame|confirmation)$/, "");
  var state = JSON.parse(d.getElementById("sandbox-order").textContent);
  var ADDRESS = ["given_name", "family_name", "email", "phone", "street_address", "postal_code",
                 "city", "region"];
  var SHIPPING = ["given_name", "family_name", "street_address", "postal_code", "city", "region"];

  function t(key) { return (state.texts || {})[key] || key; }   // the iframe's words (texts.py)
  function send(message) {
    message.source = "kco-sandbox";
    if (w.parent && w.parent !== w) { w.parent.postMessage(message, "*"); }
  }
  function post(name, data, extra) {
    var message = { event: name, data: data };
    for (var key in extra || {}) { message[key] = extra[key]; }
    send(message);
  }
  function alpha3(code) {
    var all = (state.billing_countries || []).concat(state.shipping_countries || []);
    for (var i = 0; i < all.length; i++) { if (all[i].code === code) { return all[i].alpha3; } }
    return String(code || "").toLowerCase();
  }
  function compact(object) {
    var out = {};
    for (var key in object) { if (object[key] !== undefined && object[key] !== "") { out[key] = object[key]; } }
    return out;
  }
  function money(minor, currency) {
    if (typeof minor !== "number") { return ""; }
    try {
      return new Intl.NumberFormat(state.locale || "en", { style: "currency", currency: currency,
        minimumFractionDigits: 2, maximumFractionDigits: 2 }).format(minor / 100);
    } catch (err) {
      return (minor / 100).toFixed(2) + " " + (currency || "");
    }
  }
  function resized() {
    send({ action: "resize", height: d.documentElement.scrollHeight });
  }
  if (w.ResizeObserver) { new w.ResizeObserver(resized).observe(body); }

  if (body.getAttribute("data-page") === "confirmation") {
    var total = d.querySelector('[data-sandbox="order-amount"]');
    total.textContent = money(state.order_amount, state.purchase_currency);
    var cells = d.querySelectorAll("td.amount");
    for (var c = 0; c < cells.length; c++) {
      cells[c].textContent = money(Number(cells[c].getAttribute("data-value")), state.purchase_currency);
    }
    send({ action: "ready", suspended: false });
    post("load_confirmation", {});
    resized();
    return;
  }

  var form = d.querySelector('[data-sandbox="form"]');
  var overlay = d.querySelector('[data-sandbox="overlay"]');
  var message = d.querySelector('[data-sandbox="message"]');
  var queue = w.Promise.resolve();
  var suspended = false, busy = false, dirty = false, generation = 0;
  var shownTotal = null, waiting = {}, asked = 0;
  var buyButton = d.querySelector('[data-sandbox="buy"]');
  var unsaved = d.querySelector('[data-sandbox="unsaved"]');

  function $(selector) { return d.querySelector(selector); }
  function field(name) { return form.querySelector('[name="' + name + '"]'); }
  function serial(task) {
    var run = queue.then(task, task);
    queue = run.then(null, function () {});
    return run;
  }
  function request(method, path, payload) {
    var init = { method: method, credentials: "omit", headers: {} };
    if (payload !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(payload);
    }
    return w.fetch(base + path, init).then(function (response) {
      return response.json().then(null, function () { return {}; }).then(function (answer) {
        if (!response.ok) {
          var error = new Error((answer.error_messages || []).join(" ") || "HTTP " + response.status);
          error.status = response.status;
          throw error;
        }
        return answer;
      });
    }, function (err) {
      post("network_error", { message: String((err && err.message) || err) });
      throw err;
    });
  }
  /** What the shopper is told, in words; `problem` (the sandbox's own text, e.g. "Bad value:
   * billing_address.region") stays in data-problem for whoever debugs the page. */
  function say(text, problem) {
    message.textContent = text || "";
    message.hidden = !text;
    if (problem) { message.setAttribute("data-problem", problem); } else { message.removeAttribute("data-problem"); }
  }
  function failed(err) {
    var problem = String((err && err.message) || err);
    // A US address needs its state (the sandbox refuses the country change without one).
    say(/\.region\b/.test(problem) ? t("enter_state") : t("went_wrong"), problem);
  }
  function locked() {
    form.disabled = suspended || busy;
    buyButton.disabled = suspended || busy || dirty;
    body.setAttribute("data-suspended", suspended ? "true" : "false");
    body.setAttribute("data-busy", busy ? "true" : "false");
    body.setAttribute("data-dirty", dirty ? "true" : "false");
    unsaved.hidden = !dirty || suspended || busy;
    overlay.hidden = !suspended;
  }
  function edited(value) {
    if (dirty !== value) { dirty = value; locked(); }
  }

  // --- rendering --------------------------------------------------------------------------

  function translate() {   // the order's language, which a resume may have changed
    if (state.language && d.documentElement.lang === state.language) { return; }
    d.documentElement.lang = state.language || "en";
    var labelled = d.querySelectorAll("[data-t]");
    for (var i = 0; i < labelled.length; i++) {
      labelled[i].textContent = t(labelled[i].getAttribute("data-t"));
    }
  }

  function options(select, countries, value) {
    select.textContent = "";
    countries.forEach(function (country) {
      var option = d.createElement("option");
      option.value = country.code;
      option.textContent = country.name;
      select.appendChild(option);
    });
    if (value) { select.value = value; }
  }
  function fillAddress() {
    var billing = state.billing_address || {}, shipping = state.shipping_address || billing;
    options(field("billing_country"), state.billing_countries, billing.country);
    options(field("shipping_country"), state.shipping_countries, shipping.country);
    ADDRESS.forEach(function (key) { field(key).value = billing[key] || ""; });
    SHIPPING.forEach(function (key) { field("shipping_" + key).value = shipping[key] || ""; });
    var separate = ["given_name", "family_name", "street_address", "postal_code", "city", "region", "country"]
      .some(function (key) { return (shipping[key] || "") !== (billing[key] || ""); });
    field("separate_shipping").checked = separate && state.separate_shipping !== false;
    $('[data-sandbox="separate-shipping"]').hidden = state.separate_shipping === false;
    regionList();
    shippingFields();
  }
  function customerTypes() {   // Klarna's B2B flow: options.allowed_customer_types
    var types = state.customer_types || ["person"], select = field("customer_type");
    var section = $('[data-sandbox="customer-type"]');
    section.hidden = types.indexOf("organization") < 0;
    Array.prototype.forEach.call(select.options, function (option) {
      option.disabled = types.indexOf(option.value) < 0;
    });
    if (types.indexOf(select.value) < 0) { select.value = types[0]; }
    $('[data-sandbox="organization-field"]').hidden = select.value !== "organization";
  }
  function regionsOf(country) { return (state.regions || {})[country] || []; }
  function regionList() {
    var list = d.getElementById("sandbox-regions"), regions = regionsOf(field("billing_country").value);
    list.textContent = "";
    regions.forEach(function (region) {
      var option = d.createElement("option");
      option.value = region.code;
      option.textContent = region.name;
      list.appendChild(option);
    });
    // The state is asked for only where Klarna needs one (the US); hidden, it is not sent.
    field("region").required = regions.length > 0;
    $('[data-sandbox="region-field"]').hidden = !regions.length;
    $('[data-sandbox="shipping-region-field"]').hidden = !regionsOf(field("shipping_country").value).length;
  }
  function shippingFields() {
    $('[data-sandbox="shipping-fields"]').hidden = !field("separate_shipping").checked;
  }
  function renderOrder() {
    var currency = state.purchase_currency;
    var rows = $('[data-sandbox="order-lines"] tbody');
    rows.textContent = "";
    state.order_lines.forEach(function (line) {
      var row = d.createElement("tr");
      row.setAttribute("data-sandbox", "order-line");
      row.setAttribute("data-reference", line.reference || "");
      row.setAttribute("data-type", line.type || "physical");
      [line.quantity + " ×", line.name, money(line.total_amount, currency)].forEach(function (text, i) {
        var cell = d.createElement("td");
        cell.textContent = text;
        if (i === 2) { cell.className = "amount"; cell.setAttribute("data-value", String(line.total_amount)); }
        row.appendChild(cell);
      });
      rows.appendChild(row);
    });
    var amount = $('[data-sandbox="order-amount"]');
    amount.setAttribute("data-value", String(state.order_amount));
    amount.textContent = money(state.order_amount, currency);
    $('[data-sandbox="currency"]').textContent = currency;
    $('[data-sandbox="order-tax-amount"]').textContent = money(state.order_tax_amount, currency);
    $('[data-sandbox="locale"]').textContent = state.locale || "";
    var country = $('[data-sandbox="purchase-country"]');   // by name; the code in data-value
    country.textContent = state.purchase_country_name || state.purchase_country;
    country.setAttribute("data-value", state.purchase_country);

    var assistant = $('[data-sandbox="shipping-assistant"]');
    assistant.hidden = !state.shipping_assistant;
    assistant.textContent = t(state.shipping_assistant === "tms" ? "assistant_tms" : "assistant_fallback");
    $('[data-sandbox="shipping"]').setAttribute("data-shipping-assistant", state.shipping_assistant || "");
    var list = $('[data-sandbox="shipping-options"]');
    list.textContent = "";
    state.shipping_options.forEach(function (option) {
      var label = d.createElement("label"), radio = d.createElement("input"), name = d.createElement("span"),
          price = d.createElement("span");
      label.className = "option";
      radio.type = "radio";
      radio.name = "shipping_option";
      radio.value = option.id;
      radio.checked = option.id === state.selected_shipping_option;
      var details = option.delivery_details || {}, where = details.pickup_location;
      name.textContent = option.name + (option.description ? " — " + option.description : "") +
        (where && where.name ? " (" + where.name + ")" : "");
      price.className = "price";
      price.textContent = money(option.price, currency);
      label.appendChild(radio); label.appendChild(name); label.appendChild(price);
      list.appendChild(label);
    });
    if (!state.shipping_options.length) { list.textContent = t("shipping_included"); }

    var boxes = $('[data-sandbox="checkboxes"]');
    if (!boxes.childNodes.length) {
      state.additional_checkboxes.forEach(function (box) {
        var label = d.createElement("label"), input = d.createElement("input");
        label.className = "check";
        input.type = "checkbox";
        input.name = "checkbox_" + box.id;
        input.setAttribute("data-key", box.id);
        input.checked = !!box.checked;
        label.appendChild(input);
        label.appendChild(d.createTextNode(" " + (box.text || box.id)));
        boxes.appendChild(label);
      });
    }
    var terms = $('[data-sandbox="terms"]');
    terms.hidden = !state.terms_url;
    if (state.terms_url) { terms.querySelector("a").href = state.terms_url; }

    if (shownTotal !== null && shownTotal !== state.order_amount) {
      post("order_total_change", { order_total: state.order_amount });
    }
    shownTotal = state.order_amount;
  }
  function show(next) {
    state = next;
    translate();
    if (!dirty) { fillAddress(); } else { regionList(); }
    customerTypes();
    renderOrder();
  }

  // --- what the shopper entered -----------------------------------------------------------

  function billingAddress() {
    var address = {};
    ADDRESS.forEach(function (key) { address[key] = field(key).value.trim(); });
    if ($('[data-sandbox="region-field"]').hidden) { delete address.region; }
    address.country = field("billing_country").value;
    return compact(address);
  }
  function shippingAddress(billing) {
    if (!field("separate_shipping").checked) { return billing; }
    var address = { email: billing.email, phone: billing.phone };
    SHIPPING.forEach(function (key) { address[key] = field("shipping_" + key).value.trim(); });
    if ($('[data-sandbox="shipping-region-field"]').hidden) { delete address.region; }
    address.country = field("shipping_country").value;
    return compact(address);
  }
  function brief(address) {   // the subset Klarna's address events carry
    return compact({ given_name: address.given_name, family_name: address.family_name,
      email: address.email, postal_code: address.postal_code, country: alpha3(address.country) });
  }
  function changed() {
    var billing = billingAddress();
    post("change", compact({ email: billing.email, postal_code: billing.postal_code,
                             country: alpha3(billing.country) }));
  }

  // --- actions ----------------------------------------------------------------------------

  function act(task) {
    if (suspended) { return w.Promise.resolve(null); }
    busy = true; locked(); say("");
    return serial(task).then(function (result) {
      busy = false; locked();
      return result;
    }, function (err) {
      busy = false; locked();
      failed(err);
      return null;
    });
  }
  function refused(result) {
    post("can_not_complete_order", compact({ reason: result.outcome, message: result.shopper_sees || undefined }));
    if (result.outcome === "redirected" && result.location) {
      navigate(result.location);
    } else {
      // Klarna's own words in the shopper's language; a merchant's error_text as it was sent.
      say(result.outcome === "something_went_wrong" || !result.shopper_sees ? t("went_wrong") : result.shopper_sees);
    }
  }
  function navigate(url) {
    if (!/^https?:\/\//i.test(String(url))) { say(t("bad_location")); return; }
    send({ action: "navigate", url: url });
    w.setTimeout(function () {   // a page that did not run the snippet's script
      try { w.top.location.href = url; } catch (err) { w.location.href = url; }
    }, 1500);
  }
  function saveAddress() {
    var billing = billingAddress(), shipping = shippingAddress(billing);
    return request("POST", "/address", { billing_address: billing, shipping_address: shipping })
      .then(function (result) {
        if (result.outcome === "applied") {
          edited(false);
          post("billing_address_change", brief(billing));
          post("shipping_address_change", brief(shipping));
          show(result.order);
        } else {
          show(result.order);
          refused(result);
        }
        return result;
      });
  }
  function chooseShipping(id) {
    return request("POST", "/shipping_option", { id: id }).then(function (result) {
      show(result.order);
      if (result.outcome === "applied") {
        var chosen = state.shipping_options.filter(function (o) { return o.id === id; })[0];
        post("shipping_option_change", chosen || { id: id });
      } else {
        refused(result);
      }
      return result;
    });
  }
  function clientValidation() {
    if (!state.require_client_validation) { return w.Promise.resolve({ should_proceed: true }); }
    return new w.Promise(function (resolve) {
      var id = String(++asked);
      waiting[id] = resolve;
      post("validation_callback", {}, { reply: id });
    });
  }
  function buy(displayed) {
    if (dirty) { return w.Promise.resolve(null); }   // Buy is disabled then; a stray click too
    return w.Promise.resolve().then(function () {
      return clientValidation().then(function (verdict) {
        if (!verdict || verdict.should_proceed === false) {
          say((verdict && verdict.message) || t("stopped"));
          return null;
        }
        var buyer = { displayed: displayed };
        if (!$('[data-sandbox="customer-type"]').hidden) {
          buyer.customer_type = field("customer_type").value;
          buyer.organization_name = field("organization_name").value.trim();
        }
        return request("POST", "/purchase", buyer).then(function (result) {
          show(result.order);
          if (result.order.status === "checkout_complete") {
            post("redirect_initiated", {});
            if (result.redirect_to) { navigate(result.redirect_to); }
          } else {
            refused(result);
          }
          return result;
        });
      });
    });
  }

  // --- suspend / resume (from the parent page) --------------------------------------------

  function suspend(autoResume) {
    generation++;
    suspended = true; locked();
    serial(function () { return request("POST", "/suspend", { auto_resume: autoResume !== false }); });
  }
  function resume() {
    var mine = ++generation;
    serial(function () { return request("POST", "/resume", {}); }).then(show, function () {
      return serial(function () { return request("GET", "/order"); }).then(show, function () {});
    }).then(function () {
      if (mine === generation) { suspended = false; locked(); }
    });
  }
  w.addEventListener("message", function (event) {
    var data = event.data;
    if (event.source !== w.parent || !data || data.source !== "kco-sandbox-parent") { return; }
    if (data.action === "suspend") { suspend(data.autoResume); }
    else if (data.action === "resume") { resume(); }
    else if (data.action === "validation_result" && waiting[data.id]) {
      var resolve = waiting[data.id];
      delete waiting[data.id];
      resolve(data.result || { should_proceed: true });
    }
  });

  // --- wiring -----------------------------------------------------------------------------

  var COUNTRIES = { billing_country: 1, shipping_country: 1 };
  var BUYER = { customer_type: 1, organization_name: 1 };   // sent with Buy, not with the address
  form.addEventListener("input", function (event) {
    var name = event.target.name;
    if (name && !COUNTRIES[name] && !BUYER[name] && name !== "shipping_option" && name.indexOf("checkbox_") !== 0) {
      edited(true);
    }
  });
  form.addEventListener("change", function (event) {
    var name = event.target.name;
    if (name === "billing_country") {
      // Sent at once, as Klarna does: the callback may move the order to another market.
      if (!field("separate_shipping").checked) { field("shipping_country").value = event.target.value; }
      regionList();
      changed();
      edited(true);
      act(saveAddress);
    } else if (name === "shipping_country") {
      if (event.target.value !== field("billing_country").value) {
        field("separate_shipping").checked = true;
        shippingFields();
      }
      regionList();
      edited(true);
      act(saveAddress);
    } else if (name === "customer_type") {
      customerTypes();
      post("customer", { type: event.target.value });
    } else if (name === "separate_shipping") {
      edited(true);
      shippingFields();
    } else if (name === "postal_code" || name === "email" || name === "given_name" || name === "family_name") {
      changed();
    } else if (name === "shipping_option") {
      act(function () { return chooseShipping(event.target.value); });
    } else if (name && name.indexOf("checkbox_") === 0) {
      post("checkbox_change", { key: event.target.getAttribute("data-key"), checked: event.target.checked });
    }
  });
  $('[data-sandbox="save-address"]').addEventListener("click", function () { act(saveAddress); });
  buyButton.addEventListener("click", function () {
    // What the shopper sees as Buy is pressed: recorded by the sandbox next to what it charged.
    var amount = $('[data-sandbox="order-amount"]');
    var displayed = { order_amount: Number(amount.getAttribute("data-value")),
                      purchase_currency: $('[data-sandbox="currency"]').textContent };
    act(function () { return buy(displayed); });
  });
  ["mousedown", "keydown"].forEach(function (type) {
    d.addEventListener(type, function once() {
      d.removeEventListener(type, once, true);
      post("user_interacted", { type: type });
    }, true);
  });

  show(state);
  suspended = !!state.suspended;
  locked();
  send({ action: "ready", suspended: suspended });
  var billing = billingAddress(), shipping = shippingAddress(billing);
  post("load", { customer: { type: state.customer.type || "person" },
                 shipping_address: compact({ country: alpha3(shipping.country), postal_code: shipping.postal_code }) });
  post("customer", { type: state.customer.type || "person" });
  changed();
  if (state.prefilled) { post("billing_address_change", brief(billing)); }
  resized();
})();
