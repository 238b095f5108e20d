// Console: lists (static/console/js/lists.js). Loaded by console/base.html; no inline scripts.
// The list column works without JavaScript (real links, a GET form); this only adds comfort:
// "/" focuses the search (Alt+N, the next waiting conversation, is composer.js's), label
// colours come from data-color (no inline styles under the Content-Security-Policy), and the
// current tab stays marked when the live socket replaces the counters (it does not know which
// tab this screen shows).
"use strict";
(function () {
  var COLOR = /^#[0-9a-fA-F]{3,8}$/;

  function paint(root) {
    root.querySelectorAll(".console-label[data-color]").forEach(function (el) {
      var color = el.getAttribute("data-color");
      if (COLOR.test(color)) el.style.setProperty("--label-color", color);
    });
  }

  function markTab() {
    var list = document.getElementById("console-list");
    var counters = document.getElementById("console-counters");
    if (!list || !counters) return;
    var view = list.getAttribute("data-view");
    counters.querySelectorAll("[data-view]").forEach(function (tab) {
      if (tab.getAttribute("data-view") === view) tab.setAttribute("aria-current", "page");
      else tab.removeAttribute("aria-current");
    });
  }

  function typing(target) {
    return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }

  document.addEventListener("keydown", function (event) {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    var search = document.getElementById("console-search");
    if (!search) return;
    event.preventDefault();
    search.focus();
    search.select();
  });

  function refresh(root) {
    paint(root || document);
    markTab();
  }
  document.addEventListener("DOMContentLoaded", function () { refresh(document); });
  document.addEventListener("htmx:afterSettle", function (event) { refresh(event.target); });
  document.addEventListener("htmx:oobAfterSwap", function (event) { refresh(event.target); });
})();
