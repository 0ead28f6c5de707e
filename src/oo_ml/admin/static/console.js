// oO ML console: follows the status of runs shown on the page. No framework, nothing else.
(function () {
  "use strict";
  var ACTIVE = { queued: true, running: true };
  var INTERVAL_MS = 1500;
  var MAX_INTERVAL_MS = 15000;

  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-run-id]"));
  }

  function active(nodes) {
    return nodes.filter(function (node) { return ACTIVE[node.getAttribute("data-status")]; });
  }

  function update(node, run) {
    var wasActive = ACTIVE[node.getAttribute("data-status")];
    node.setAttribute("data-status", run.status);
    var badge = node.querySelector("[data-role=status]");
    if (badge) {
      badge.textContent = run.status;
      badge.className = "badge status-" + run.status;
    }
    var bar = node.querySelector("[data-role=progress]");
    if (bar) {
      bar.max = Math.max(1, run.total_steps);
      bar.value = run.done_steps;
    }
    var text = node.querySelector("[data-role=progress-text]");
    if (text) {
      text.textContent = run.done_steps.toLocaleString("en-US") + " / " +
        run.total_steps.toLocaleString("en-US");
    }
    if (wasActive && !ACTIVE[run.status] && node.hasAttribute("data-reload-when-done")) {
      window.location.reload();
      return;
    }
    refreshCurve(run);
  }

  // A running run stores its summary so far every few seconds: redraw its curve when it did.
  var curveShown = {};
  function refreshCurve(run) {
    var figure = document.querySelector("[data-live-src][data-live-run]");
    if (!figure || figure.getAttribute("data-live-run") !== run.run_id) { return; }
    if (curveShown[run.run_id] === run.updated_ms) { return; }
    curveShown[run.run_id] = run.updated_ms;
    fetch(figure.getAttribute("data-live-src"), {
      credentials: "same-origin",
      cache: "no-store"
    }).then(function (response) {
      if (response.status !== 200) { return null; }
      return response.text();
    }).then(function (svg) {
      var holder = figure.querySelector(".chart-scroll");
      if (svg && holder) { holder.innerHTML = svg; }
    }).catch(function () { delete curveShown[run.run_id]; });
  }

  function poll(delay) {
    var watched = active(rows());
    if (!watched.length) { return; }
    var base = document.body.getAttribute("data-base") || "/admin";
    var query = watched.map(function (node) {
      return "id=" + encodeURIComponent(node.getAttribute("data-run-id"));
    }).join("&");
    fetch(base + "/runs.json?" + query, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
      cache: "no-store"
    }).then(function (response) {
      if (response.status === 401) { window.location.reload(); throw new Error("signed out"); }
      if (!response.ok) { throw new Error("status " + response.status); }
      return response.json();
    }).then(function (data) {
      var byId = {};
      data.runs.forEach(function (run) { byId[run.run_id] = run; });
      watched.forEach(function (node) {
        var run = byId[node.getAttribute("data-run-id")];
        if (run) { update(node, run); }
      });
      window.setTimeout(function () { poll(INTERVAL_MS); }, INTERVAL_MS);
    }).catch(function () {
      var next = Math.min(MAX_INTERVAL_MS, delay * 2);
      window.setTimeout(function () { poll(next); }, next);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    window.setTimeout(function () { poll(INTERVAL_MS); }, INTERVAL_MS);
  });
}());
