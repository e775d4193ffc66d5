/* nice-audit report: filter, search, sort and download. The page reads fully without this script.
   Filters can be given in the address: report.html#filter=severity:error,rule:site-missing&q=RTH
   (keys: guidance, rule, severity, status, change, provider, specialty, consultant, coder;
   values URL-encoded). &in=worklist|check|findings|changes scrolls to that list.
   Data is read only from the page's own elements and data-* attributes. */
(function () {
  "use strict";
  var ALL_KEYS = ["guidance", "rule", "severity", "status", "change", "provider", "specialty", "consultant", "coder"];
  var SINGLE = { provider: true, specialty: true, consultant: true, coder: true }; // one value, may hold spaces
  var LABELS = { guidance: "guidance", rule: "rule", severity: "severity", status: "status", change: "change",
                 provider: "provider", specialty: "specialty", consultant: "consultant", coder: "coder" };
  var TARGETS = { worklist: "worksheet", check: "superseded", findings: "findings", changes: "changes-list" };
  // A filter exists only when its control is on the page ("change" needs a run history).
  var KEYS = ALL_KEYS.filter(function (k) { return document.getElementById("filter-" + k); });
  var state = { q: "" };
  var items = Array.prototype.slice.call(document.querySelectorAll("[data-filter-item]"));
  var text = null; // built on the first search: reading every card's text up front slows the load

  function has(el, key, value) {
    var attr = el.getAttribute("data-" + key) || "";
    return SINGLE[key] ? attr === value : attr.split(" ").indexOf(value) >= 0;
  }
  function matches(el) {
    for (var i = 0; i < KEYS.length; i++) {
      if (state[KEYS[i]] && !has(el, KEYS[i], state[KEYS[i]])) return false;
    }
    // Guidance and status together mean that guidance's status, not any guidance and any status.
    if (state.guidance && state.status && el.hasAttribute("data-pair") &&
        !has(el, "pair", state.guidance + ":" + state.status)) return false;
    if (!state.q) return true;
    if (!text) {
      text = new Map();
      items.forEach(function (item) { text.set(item, item.textContent.toLowerCase()); });
    }
    return text.get(el).indexOf(state.q.toLowerCase()) >= 0;
  }
  function describe() {
    var parts = KEYS.filter(function (k) { return state[k]; }).map(function (k) {
      var select = document.getElementById("filter-" + k);
      var option = select && Array.prototype.filter.call(select.options, function (o) { return o.value === state[k]; })[0];
      return LABELS[k] + " " + (option ? option.text : state[k]);
    });
    if (state.q) parts.push("search \u201c" + state.q + "\u201d");
    return parts.length ? "Showing " + parts.join(" \u00b7 ") : "Showing everything";
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
      out.hidden = c[1] === 0;
    });
    document.querySelectorAll("[data-empty-for]").forEach(function (p) {
      var c = counts[p.getAttribute("data-empty-for")] || [0, 0];
      p.hidden = !(c[1] > 0 && c[0] === 0);
    });
    var what = document.querySelector("[data-filter-what]");
    if (what) what.textContent = describe();
  }
  function read() {
    KEYS.forEach(function (k) { state[k] = ""; });
    state.q = "";
    state.target = "";
    [location.search.slice(1), location.hash.slice(1)].forEach(function (raw) {
      raw.split("&").forEach(function (part) {
        var eq = part.indexOf("=");
        if (eq < 0) return;
        var name = part.slice(0, eq), value = part.slice(eq + 1);
        if (name === "filter") {
          value.split(",").forEach(function (pair) {
            var at = pair.indexOf(":");
            var key = pair.slice(0, at);
            if (at > 0 && KEYS.indexOf(key) >= 0) state[key] = decode(pair.slice(at + 1));
          });
        } else if (name === "q") {
          state.q = decode(value);
        } else if (name === "in" && TARGETS[value]) {
          state.target = value;
        }
      });
    });
  }
  function decode(value) {
    try { return decodeURIComponent(value.replace(/\+/g, " ")); } catch (e) { return value; }
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
  function land() {
    var section = state.target && document.getElementById(TARGETS[state.target]);
    if (section) section.scrollIntoView();
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
  // An episode link (#ep-N) opens the card it points into.
  function openTarget() {
    var id = location.hash.slice(1);
    if (!/^ep-\d+$/.test(id)) return;
    var card = document.getElementById(id);
    var details = card && card.closest("details");
    if (details && !details.open) { details.open = true; card.scrollIntoView(); }
  }
  window.addEventListener("hashchange", function () {
    if (/(^|[#&])(filter|q)=/.test(location.hash)) { read(); show(); apply(); land(); } else { openTarget(); }
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

  // Worklist order: each episode is a <tbody>; the default is the page's own order.
  document.querySelectorAll("select[data-order]").forEach(function (order) {
    var table = document.getElementById(order.getAttribute("data-order") + "-table");
    if (!table) return;
    var original = Array.prototype.slice.call(table.tBodies);
    order.addEventListener("change", function () {
      var key = order.value, list = original.slice();
      if (key === "episode") key = "episode-id";
      if (key) {
        list.sort(function (a, b) {
          var x = a.getAttribute("data-" + key) || "", y = b.getAttribute("data-" + key) || "";
          return x.localeCompare(y, undefined, { numeric: true });
        });
      }
      list.forEach(function (body) { table.appendChild(body); });
    });
  });

  // Breakdown tables: rows past the cap are on the page, hidden, and found by searching.
  document.querySelectorAll("input[data-table-search]").forEach(function (input) {
    var table = document.getElementById(input.getAttribute("data-table-search"));
    input.addEventListener("input", function () {
      var q = input.value.trim().toLowerCase();
      Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
        var head = row.cells[0].textContent.toLowerCase();
        row.hidden = q ? head.indexOf(q) < 0 : row.hasAttribute("data-rest");
      });
    });
  });

  // "Download these rows (CSV)": the rows now shown, built here from the page (no network).
  // Excel would run a cell starting = + - @ (or tab / CR) as a formula: such cells get a leading
  // apostrophe, except HES's lone "-" (no operation performed), which is data.
  function cell(value) {
    var v = String(value).replace(/\s+/g, " ").trim();
    if (/^[=+\-@\t\r]/.test(v) && v !== "-") v = "'" + v;
    return /[",\r\n]/.test(v) ? "\"" + v.replace(/"/g, "\"\"") + "\"" : v;
  }
  function cells(row) {
    return Array.prototype.filter.call(row.cells, function (c) { return !c.hasAttribute("data-csv-skip"); })
      .map(function (c) { return c.hasAttribute("data-csv") ? c.getAttribute("data-csv") : c.textContent; });
  }
  function csvOf(kind) {
    var table = document.querySelector("table[data-list='" + kind + "']");
    var lines = [cells(table.tHead.rows[0])];
    items.forEach(function (item) {
      if (item.hidden || item.getAttribute("data-filter-item") !== kind) return;
      lines.push(cells(item.tagName === "TBODY" ? item.rows[0] : item));
    });
    return "\ufeff" + lines.map(function (l) { return l.map(cell).join(","); }).join("\r\n") + "\r\n";
  }
  document.querySelectorAll("button[data-download]").forEach(function (button) {
    button.addEventListener("click", function () {
      var blob = new Blob([csvOf(button.getAttribute("data-download"))], { type: "text/csv;charset=utf-8" });
      var link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = button.getAttribute("data-filename");
      document.body.appendChild(link);
      link.click();
      setTimeout(function () { URL.revokeObjectURL(link.href); link.remove(); }, 0);
    });
  });

  // Print: what the catalogue marks as not verified prints open (CSS does it where it can).
  var closed = [];
  window.addEventListener("beforeprint", function () {
    closed = Array.prototype.filter.call(document.querySelectorAll("details.uncertain"), function (d) { return !d.open; });
    closed.forEach(function (d) { d.open = true; });
  });
  window.addEventListener("afterprint", function () { closed.forEach(function (d) { d.open = false; }); });

  document.querySelectorAll("[data-js-only]").forEach(function (el) { el.hidden = false; });
  read();
  show();
  apply();
  land();
  openTarget();
  document.documentElement.setAttribute("data-js", "ready");
}());
