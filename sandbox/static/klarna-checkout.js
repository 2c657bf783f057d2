(function (w, d, ctx) {
  /* The parent-page half of the sandbox's html_snippet (snippet.py inlines this file):
   * Klarna's JavaScript API, window._klarnaCheckout(function (api) {...}), talking to the
   * sandbox's iframe (frame.js) with postMessage. Mounting a snippet again keeps the
   * listeners and the log, and drops the old message listener and auto-resume timer. */
  var previous = w.__klarnaSandbox;
  var listeners = (previous && previous.listeners) || {};
  if (previous && typeof previous.stop === "function") { previous.stop(); }
  var log = w._klarnaCheckoutLog = w._klarnaCheckoutLog || [];
  var state = { suspended: false, autoResume: true, timer: null };

  function now() { return w.performance && w.performance.now ? w.performance.now() : new Date().getTime(); }
  function note(kind, name, data) { log.push({ t: now(), kind: kind, name: name, data: data }); }
  function frame() { return d.getElementById(ctx.frame); }
  function show(busy) {
    var element = frame();
    if (!element) { return; }
    element.style.opacity = busy ? "0.5" : "";
    element.setAttribute("aria-busy", busy ? "true" : "false");
  }
  function tell(message) {
    var element = frame();
    if (!element || !element.contentWindow) { return; }
    message.source = "kco-sandbox-parent";
    element.contentWindow.postMessage(message, ctx.origin || "*");
  }
  function emit(name, data, reply) {
    note("event", name, data);
    var handler = listeners[name];
    if (reply !== undefined) {   // validation_callback: the page answers through a callback
      var answered = false;
      var callback = function (result) {
        if (answered) { return; }
        answered = true;
        tell({ action: "validation_result", id: reply, result: result || { should_proceed: true } });
      };
      if (typeof handler !== "function") { callback({ should_proceed: true }); return false; }
      try { handler(data, callback); } catch (err) { if (w.console) { w.console.error(err); } }
      return true;
    }
    if (typeof handler !== "function") { return false; }
    try { handler(data); } catch (err) { if (w.console) { w.console.error(err); } }
    return true;
  }
  function stopTimer() {
    if (state.timer) { w.clearTimeout(state.timer); state.timer = null; }
  }
  function resume(auto) {
    stopTimer();
    state.suspended = false;
    show(false);
    note("resume", "resume", { auto: auto });
    tell({ action: "resume" });
  }
  var api = {
    suspend: function (options) {
      var auto = !(options && options.autoResume && options.autoResume.enabled === false);
      stopTimer();
      state.suspended = true;
      state.autoResume = auto;
      show(true);
      note("suspend", "suspend", { autoResume: auto });
      tell({ action: "suspend", autoResume: auto });
      if (auto) {
        var ms = typeof w._klarnaCheckoutAutoResumeMs === "number" ? w._klarnaCheckoutAutoResumeMs : 10000;
        state.timer = w.setTimeout(function () { resume(true); }, ms);
      }
    },
    resume: function () { resume(false); },
    on: function (handlers) {
      for (var name in handlers) {
        if (Object.prototype.hasOwnProperty.call(handlers, name)) { listeners[name] = handlers[name]; }
      }
    }
  };
  function receive(event) {
    var element = frame(), message = event.data;
    if (!element || event.source !== element.contentWindow) { return; }
    if (!message || message.source !== "kco-sandbox") { return; }
    if (ctx.origin && event.origin !== ctx.origin) { return; }
    if (message.action === "ready") {
      if (state.suspended) { tell({ action: "suspend", autoResume: state.autoResume }); }
      else if (message.suspended) { tell({ action: "resume" }); }
    } else if (message.action === "resize") {
      if (typeof message.height === "number" && message.height > 0) {
        element.style.height = Math.ceil(message.height) + "px";
      }
    } else if (message.action === "navigate") {
      if (typeof message.url === "string" && /^https?:\/\//i.test(message.url)) { w.location.assign(message.url); }
    } else if (typeof message.event === "string") {
      emit(message.event, message.data, message.reply);
    }
  }
  if (w.addEventListener) { w.addEventListener("message", receive); }

  var queued = (w._klarnaCheckout && w._klarnaCheckout.q) || [];
  w._klarnaCheckout = function (callback) {
    if (typeof callback === "function") { callback(api); }
  };
  w._klarnaCheckout.q = [];
  w.__klarnaSandbox = {
    orderId: ctx.orderId,
    listeners: listeners,
    emit: emit,
    isSuspended: function () { return state.suspended; },
    stop: function () {
      stopTimer();
      if (w.removeEventListener) { w.removeEventListener("message", receive); }
    }
  };
  for (var i = 0; i < queued.length; i++) { w._klarnaCheckout.apply(w, queued[i]); }
})(window, document, __KCO_SANDBOX_CONTEXT__);
