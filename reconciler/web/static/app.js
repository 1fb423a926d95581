// gitship's web view: live updates without reload (server-sent events) and pod logs with follow.
// The server renders every page; this script only re-fetches a page's live block when an event
// says its data changed, at most one fetch at a time.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var dot = document.getElementById("livedot");
  var topics = (document.body.getAttribute("data-live") || "").split(" ");
  var busy = false, again = false, last = 0;
  var GAP = 250; // ms: at most four fetches a second, however fast things change

  function refresh() {
    if (busy) { again = true; return; }
    var wait = last + GAP - Date.now();
    if (wait > 0) { busy = true; setTimeout(function () { busy = false; refresh(); }, wait); return; }
    busy = true;
    last = Date.now();
    var url = location.pathname + location.search + (location.search ? "&" : "?") + "fragment=1";
    fetch(url, { credentials: "same-origin", cache: "no-store" }).then(function (r) {
      if (r.status === 401) { location.reload(); return null; }
      return r.ok ? r.text() : null;
    }).then(function (html) {
      if (html !== null && html !== undefined && live) {
        var open = {};
        live.querySelectorAll("details[id], details").forEach(function (d, i) { open[i] = d.open; });
        var focused = document.activeElement && document.activeElement.id;
        live.innerHTML = html;
        live.querySelectorAll("details").forEach(function (d, i) { if (i in open) d.open = open[i]; });
        if (focused) { var f = document.getElementById(focused); if (f) f.focus(); }
        document.body.setAttribute("data-updated", String(Date.now()));
      }
    }).catch(function () {}).then(function () {
      busy = false;
      if (again) { again = false; refresh(); }
    });
  }

  if (window.EventSource && live) {
    var es = new EventSource("/events");
    es.addEventListener("open", function () { if (dot) { dot.textContent = "live"; dot.className = "livedot on"; } });
    es.addEventListener("error", function () { if (dot) { dot.textContent = "reconnecting"; dot.className = "livedot"; } });
    es.addEventListener("change", function (ev) {
      var moved = [];
      try { moved = JSON.parse(ev.data); } catch (e) { moved = topics; }
      if (moved.some(function (t) { return topics.indexOf(t) >= 0; })) refresh();
    });
  }

  // pod logs: an event stream of lines; the view keeps the last 5,000 and follows the end
  var pre = document.getElementById("podlog");
  if (pre) {
    var stream = null;
    var sel = document.getElementById("container");
    var follow = document.getElementById("follow");
    var start = function () {
      if (stream) stream.close();
      pre.textContent = "";
      var src = pre.getAttribute("data-src") + "?container=" + encodeURIComponent(sel ? sel.value : "") +
        "&follow=" + (follow && !follow.checked ? "0" : "1");
      stream = new EventSource(src);
      stream.onmessage = function (ev) {
        pre.appendChild(document.createTextNode(ev.data + "\n"));
        while (pre.childNodes.length > 5000) pre.removeChild(pre.firstChild);
        if (!follow || follow.checked) pre.scrollTop = pre.scrollHeight;
      };
      stream.onerror = function () { if (follow && !follow.checked) stream.close(); };
    };
    if (sel) sel.addEventListener("change", start);
    if (follow) follow.addEventListener("change", start);
    start();
  }

  // buttons that change things ask first (revert, undo)
  document.addEventListener("submit", function (ev) {
    var b = ev.submitter || ev.target.querySelector("button");
    if (b && (b.classList.contains("revert") || b.value === "undo") && !document.body.hasAttribute("data-noconfirm")) {
      if (!window.confirm(b.title || b.textContent + "?")) ev.preventDefault();
    }
  });
})();
