// The drill calendar's drag and drop: dropping a drill on another day posts the move form's one
// field (the new date at the drill's time of day) with the page's CSRF header, then asks htmx to
// reload the calendar. Without JavaScript, each drill's page has the same move as a plain form.
(function () {
  "use strict";
  var dragged = null;

  function csrf() {
    try { return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || ""; }
    catch (e) { return ""; }
  }

  document.addEventListener("dragstart", function (e) {
    var el = e.target.closest && e.target.closest("[data-move-url]");
    if (!el) return;
    dragged = el;
    e.dataTransfer.effectAllowed = "move";
    e.dataTransfer.setData("text/plain", el.dataset.moveUrl);
  });
  document.addEventListener("dragover", function (e) {
    if (dragged && e.target.closest && e.target.closest("td[data-date]")) e.preventDefault();
  });
  document.addEventListener("drop", function (e) {
    var cell = e.target.closest && e.target.closest("td[data-date]");
    if (!dragged || !cell) return;
    e.preventDefault();
    var body = new URLSearchParams({ scheduled_for: cell.dataset.date + "T" + dragged.dataset.time });
    var url = dragged.dataset.moveUrl;
    dragged = null;
    fetch(url, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrf(), "X-Drill-Drag": "1" },
    }).then(function (response) {
      if (!response.ok) return response.text().then(function (text) { window.alert(text || "Not moved."); });
      if (window.htmx) window.htmx.trigger(document.body, "drills-changed");
    });
  });
  document.addEventListener("dragend", function () { dragged = null; });
})();
