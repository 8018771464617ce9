// The console's only script: htmx does the rest.
// - SLA clocks: every element with data-deadline counts down to it, in the same words and colours as
//   the server renders (incidents/clocks.py): "ack due in 14:59", amber under 50 % left, red under
//   10 %, "ack overdue by 0:12" and blinking after.
// - Refusals go away once an action succeeds: a success triggers "incident-changed".
(function () {
  "use strict";
  var WARN_BELOW = 0.5, URGENT_BELOW = 0.1;
  var URGENCIES = ["ok", "warn", "urgent", "overdue"];

  function pad(n) { return String(n).padStart(2, "0"); }

  // Whole seconds, rounded down: m:ss, h:mm:ss, or Nd h:mm:ss.
  function format(seconds) {
    var total = Math.max(0, Math.floor(seconds));
    var d = Math.floor(total / 86400), h = Math.floor((total % 86400) / 3600);
    var m = Math.floor((total % 3600) / 60), s = total % 60;
    if (d) return d + "d " + h + ":" + pad(m) + ":" + pad(s);
    if (h) return h + ":" + pad(m) + ":" + pad(s);
    return m + ":" + pad(s);
  }

  function urgency(left, windowSeconds) {
    if (left < 0) return "overdue";
    var share = windowSeconds > 0 ? left / windowSeconds : 0;
    return share > WARN_BELOW ? "ok" : share >= URGENT_BELOW ? "warn" : "urgent";
  }

  function text(left) {
    return left >= 0 ? "ack due in " + format(left) : "ack overdue by " + format(-left);
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-deadline]").forEach(function (el) {
      var deadline = Date.parse(el.dataset.deadline), start = Date.parse(el.dataset.start);
      if (isNaN(deadline)) return;
      var left = (deadline - now) / 1000;
      var level = urgency(left, isNaN(start) ? 0 : (deadline - start) / 1000);
      var words = text(left);
      if (el.textContent !== words) el.textContent = words;
      URGENCIES.forEach(function (u) { el.classList.toggle("sla-" + u, u === level); });
    });
  }

  function clearRefusals() {
    var flash = document.getElementById("flash");
    if (flash) flash.querySelectorAll(".msg-error").forEach(function (el) { el.remove(); });
    document.querySelectorAll("[data-refusal]").forEach(function (el) { el.remove(); });
  }

  // For the browser tests, which check that this and the server agree.
  window.consoleClock = { format: format, urgency: urgency, text: text };

  document.addEventListener("DOMContentLoaded", function () {
    tick();
    setInterval(tick, 1000);
    document.body.addEventListener("htmx:afterSettle", tick);
    document.body.addEventListener("incident-changed", clearRefusals);
  });
})();
