/* nice-audit report: filter, search and sort. The page reads fully without this script.
   Filters can be given in the address: report.html#filter=severity:error,rule:site-missing&q=RTH
   (and change:new|still-open|resolved when the run kept a history).
   Data is read only from the page's own elements and data-* attributes. */
(function () {
  "use strict";
  // A filter exists only when its control is on the page ("change" needs a run history).
  var KEYS = ["guidance", "rule", "severity", "status", "change"].filter(function (k) {
    return document.getElementById("filter-" + k);
  });
  var state = { q: "" };
  var items = Array.prototype.slice.call(document.querySelectorAll("[data-filter-item]"));
  var text = new Map();
  items.forEach(function (el) { text.set(el, el.textContent.toLowerCase()); });

  function has(el, key, value) {
    return (el.getAttribute("data-" + key) || "").split(" ").indexOf(value) >= 0;
  }
  function matches(el) {
    for (var i = 0; i < KEYS.length; i++) {
      if (state[KEYS[i]] && !has(el, KEYS[i], state[KEYS[i]])) return false;
    }
    return !state.q || text.get(el).indexOf(state.q.toLowerCase()) >= 0;
  }
  function apply() {
    var counts = {};
    items.forEach(function (el) {
      var group = el.getAttribute("data-filter-item");
      var ok = matches(el);
      el.hidden = !ok;
      counts[group] = counts[group] || [0, 0];
      counts[group][0] += ok ? 1 : 0;
      counts[group][1] += 1;
    });
    document.querySelectorAll("[data-filter-count]").forEach(function (out) {
      var c = counts[out.getAttribute("data-filter-count")] || [0, 0];
      out.textContent = c[0] + " of " + c[1] + " " + out.getAttribute("data-label");
    });
  }
  function read() {
    var params = [new URLSearchParams(location.search), new URLSearchParams(location.hash.slice(1))];
    KEYS.forEach(function (k) { state[k] = ""; });
    state.q = "";
    params.forEach(function (p) {
      p.getAll("filter").join(",").split(",").forEach(function (pair) {
        var at = pair.indexOf(":");
        if (at > 0 && KEYS.indexOf(pair.slice(0, at)) >= 0) state[pair.slice(0, at)] = pair.slice(at + 1);
      });
      if (p.has("q")) state.q = p.get("q");
    });
  }
  function write() {
    var parts = KEYS.filter(function (k) { return state[k]; }).map(function (k) {
      return k + ":" + encodeURIComponent(state[k]);
    });
    var hash = parts.length ? "filter=" + parts.join(",") : "";
    if (state.q) hash += (hash ? "&" : "") + "q=" + encodeURIComponent(state.q);
    try { history.replaceState(null, "", hash ? "#" + hash : location.pathname + location.search); } catch (e) { /* file: URLs in some browsers */ }
  }
  function show() {
    KEYS.forEach(function (k) {
      var select = document.getElementById("filter-" + k);
      if (!select) return;
      if (state[k] && !Array.prototype.some.call(select.options, function (o) { return o.value === state[k]; })) {
        select.add(new Option(state[k], state[k]));
      }
      select.value = state[k];
    });
    var search = document.getElementById("filter-q");
    if (search) search.value = state.q;
  }

  var form = document.getElementById("filter-form");
  if (form) {
    form.addEventListener("input", function () {
      KEYS.forEach(function (k) { state[k] = document.getElementById("filter-" + k).value; });
      state.q = document.getElementById("filter-q").value.trim();
      apply();
      write();
    });
    form.addEventListener("submit", function (event) { event.preventDefault(); });
    form.addEventListener("reset", function () {
      setTimeout(function () {
        KEYS.forEach(function (k) { state[k] = ""; });
        state.q = "";
        show();
        apply();
        write();
      });
    });
  }
  window.addEventListener("hashchange", function () {
    if (/(^|[#&])(filter|q)=/.test(location.hash)) { read(); show(); apply(); }
  });

  // Sortable tables: the header text becomes a button; aria-sort tells screen readers the order.
  document.querySelectorAll("table[data-sortable]").forEach(function (table) {
    var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
    heads.forEach(function (th, col) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "sort";
      while (th.firstChild) button.appendChild(th.firstChild);
      th.appendChild(button);
      button.addEventListener("click", function () {
        var dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
        heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", dir);
        var numeric = th.hasAttribute("data-numeric");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[col].textContent.trim(), y = b.cells[col].textContent.trim();
          var r = numeric ? (parseFloat(x.replace(/,/g, "")) || 0) - (parseFloat(y.replace(/,/g, "")) || 0)
                          : x.localeCompare(y, undefined, { numeric: true });
          return dir === "ascending" ? r : -r;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  });

  // Worksheet order.
  var cards = document.getElementById("worksheet-cards");
  var order = document.getElementById("worksheet-order");
  if (cards && order) {
    var original = Array.prototype.slice.call(cards.children);
    order.addEventListener("change", function () {
      var key = order.value, list = original.slice();
      if (key !== "episode") {
        list.sort(function (a, b) {
          var x = a.getAttribute("data-" + key) || "", y = b.getAttribute("data-" + key) || "";
          return key === "errors" ? Number(y.replace(/,/g, "")) - Number(x.replace(/,/g, "")) : x.localeCompare(y);
        });
      }
      list.forEach(function (card) { cards.appendChild(card); });
    });
  }

  document.querySelectorAll("[data-js-only]").forEach(function (el) { el.hidden = false; });
  read();
  show();
  apply();
  document.documentElement.setAttribute("data-js", "ready");
}());
