// Live SLA clocks: every element with data-deadline counts down to it (or up, once overdue).
(function () {
  "use strict";
  function fmt(seconds) {
    var s = Math.abs(Math.round(seconds));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    var mm = (h ? String(m).padStart(2, "0") : String(m)) + ":" + String(r).padStart(2, "0");
    return h ? h + ":" + mm : mm;
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-deadline]").forEach(function (el) {
      var left = (Date.parse(el.dataset.deadline) - now) / 1000;
      if (isNaN(left)) return;
      el.textContent = left >= 0 ? fmt(left) + " left" : "overdue " + fmt(left);
      el.classList.toggle("sla-overdue", left < 0);
      el.classList.toggle("sla-running", left >= 0);
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    tick();
    setInterval(tick, 1000);
    document.body.addEventListener("htmx:afterSettle", tick);
  });
})();
