// The dashboard's own script: says in the footer whether the live stream is connected and
// when the page's live region was last reloaded. Everything else is htmx (static/vendor).
(function () {
  "use strict";
  function status(text) {
    var el = document.querySelector("[data-live-status]");
    if (el) el.textContent = text;
  }
  function clock() {
    return new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }
  document.addEventListener("DOMContentLoaded", function () {
    if (document.querySelector("[sse-connect]")) status("connecting…");
  });
  document.addEventListener("htmx:sseOpen", function () { status("live"); });
  document.addEventListener("htmx:sseError", function () { status("reconnecting…"); });
  document.addEventListener("htmx:afterSwap", function (e) {
    if (e.target && e.target.id === "live") status("live · updated " + clock());
  });
})();
