// Console: conversation (static/console/js/conversation.js). Loaded by console/base.html; no inline scripts.
//
// The page works without it (older pages are links, images open in a tab, the window shows the
// time left when the page was drawn). With it: the timeline opens at the newest message and
// follows new ones while the reader is at the bottom, an older page keeps the reader's place
// when it is inserted above, images open in a lightbox, and the 24-hour countdown ticks.
"use strict";
(function () {
  var NEAR_BOTTOM = 80;
  var COLOR = /^#[0-9a-fA-F]{3,8}$/;

  function timeline() {
    return document.getElementById("timeline");
  }

  // --- Scrolling -------------------------------------------------------------------------------

  function atBottom(box) {
    return box.scrollHeight - box.scrollTop - box.clientHeight < NEAR_BOTTOM;
  }

  function toBottom(box) {
    box.scrollTop = box.scrollHeight;
  }

  function setUpTimeline() {
    var box = timeline();
    if (!box || box.dataset.ready) return;
    box.dataset.ready = "1";
    box.dataset.stick = "1";
    toBottom(box);
    box.addEventListener("scroll", function () {
      box.dataset.stick = atBottom(box) ? "1" : "";
    });
    var list = document.getElementById("timeline-messages");
    if (!list || !window.MutationObserver) return;
    // New messages arrive at the end (live.js): follow them only if the reader was at the end.
    new MutationObserver(function (changes) {
      if (box.dataset.loadingOlder) return;
      var appended = changes.some(function (change) {
        return change.addedNodes.length && list.lastElementChild && change.target === list;
      });
      if (appended && box.dataset.stick) toBottom(box);
    }).observe(list, { childList: true });
  }

  // An older page replaces its sentinel at the top: keep the distance from the bottom, so what
  // the reader was looking at stays put (and the next sentinel stays out of view).
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail && event.detail.target;
    var box = timeline();
    if (!box || !target || !target.classList || !target.classList.contains("timeline__more")) return;
    box.dataset.loadingOlder = String(box.scrollHeight - box.scrollTop);
  });
  // Each page starts with its first day's separator: once an older page of the same day sits
  // above it, that separator repeats the one before it.
  function dropRepeatedDays() {
    var previous = null;
    document.querySelectorAll("#timeline-messages .timeline__day").forEach(function (day) {
      if (previous !== null && day.textContent === previous) day.remove();
      else previous = day.textContent;
    });
  }

  document.addEventListener("htmx:afterSettle", function () {
    var box = timeline();
    if (box && box.dataset.loadingOlder) {
      dropRepeatedDays();
      box.scrollTop = box.scrollHeight - Number(box.dataset.loadingOlder);
      delete box.dataset.loadingOlder;
    }
    setUpTimeline();
    paint(document);
  });

  // --- The 24-hour window --------------------------------------------------------------------

  function pad(n) {
    return n < 10 ? "0" + n : String(n);
  }

  function tick() {
    document.querySelectorAll(".js-window-countdown[data-deadline]").forEach(function (el) {
      var deadline = Date.parse(el.getAttribute("data-deadline"));
      if (isNaN(deadline)) return;
      var left = Math.floor((deadline - Date.now()) / 1000);
      var box = el.closest(".conv-window");
      if (left <= 0) {
        if (box) {
          box.textContent = el.getAttribute("data-closed-text") || "";
          box.classList.remove("conv-window--open", "conv-window--ending");
          box.classList.add("conv-window--closed");
        }
        return;
      }
      var hours = Math.floor(left / 3600);
      var minutes = Math.floor((left % 3600) / 60);
      el.textContent = hours > 0 ? hours + " h " + pad(minutes) + " min" : minutes + " min " + pad(left % 60) + " s";
      if (box) box.classList.toggle("conv-window--ending", left < 3600);
    });
  }

  // --- Images --------------------------------------------------------------------------------

  function closeLightbox() {
    var open = document.querySelector(".lightbox");
    if (open) open.remove();
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a.js-lightbox");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    closeLightbox();
    var overlay = document.createElement("div");
    overlay.className = "lightbox";
    overlay.setAttribute("role", "dialog");
    overlay.setAttribute("aria-modal", "true");
    var image = document.createElement("img");
    image.src = link.getAttribute("href");
    var thumb = link.querySelector("img");
    image.alt = thumb ? thumb.alt : "";
    var open = document.createElement("a");
    open.href = link.getAttribute("href");
    open.target = "_blank";
    open.rel = "noopener";
    open.className = "lightbox__open";
    open.textContent = "↗";
    overlay.appendChild(image);
    overlay.appendChild(open);
    overlay.addEventListener("click", function (e) {
      if (e.target !== open) closeLightbox();
    });
    document.body.appendChild(overlay);
  });

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") closeLightbox();
  });

  // --- Colours from data attributes (no inline styles under the CSP) ---------------------------

  function paint(root) {
    root.querySelectorAll("#customer-panel .label-chip[data-color]").forEach(function (el) {
      var color = el.getAttribute("data-color");
      if (COLOR.test(color)) el.style.setProperty("--label-color", color);
    });
  }

  setUpTimeline();
  paint(document);
  tick();
  window.setInterval(tick, 1000);
})();
