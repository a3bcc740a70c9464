// A running job's log, live: the server sends its new lines as HTML it escaped and
// coloured (`log` events), then `end` with the job's status. Nothing here builds HTML
// from the log's text.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var log = document.getElementById("log");
    if (!log || !log.dataset.logStream || typeof EventSource === "undefined") return;
    var state = document.querySelector("[data-log-state]");
    var source = new EventSource(log.dataset.logStream);
    function follow() {
      // keep the newest line in view while the reader is at the bottom
      return log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    }
    function append(html) {
      var atEnd = follow();
      log.insertAdjacentHTML("beforeend", html);
      if (atEnd) log.scrollTop = log.scrollHeight;
    }
    source.addEventListener("log", function (e) {
      append(JSON.parse(e.data).html);
    });
    source.addEventListener("end", function (e) {
      var data = JSON.parse(e.data);
      append(data.html);
      source.close();
      if (state) state.textContent = "Complete: the job " + data.status + ".";
      log.dataset.logDone = data.status;
    });
    source.onerror = function () {
      if (state) state.textContent = "Reconnecting…";
    };
  });
})();
