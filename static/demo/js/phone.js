// The demo's customer phone (demo/templates/demo/phone.html): keeps the chat scrolled to the
// newest message, empties the composer after a send, and polls only while the page is
// visible, so the business's messages are reported "read" only once someone could see them.
(function () {
  "use strict";

  var NEAR_BOTTOM = 80;
  var stickToBottom = true;

  function scroller() {
    return document.getElementById("phone-scroller");
  }

  function toBottom() {
    var box = scroller();
    if (box) box.scrollTop = box.scrollHeight;
  }

  document.addEventListener("DOMContentLoaded", toBottom);

  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    if (elt && elt.id === "phone-chat" && document.hidden) {
      event.preventDefault();
    }
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    var box = scroller();
    if (box && event.detail.target && event.detail.target.id === "phone-chat") {
      stickToBottom = box.scrollHeight - box.scrollTop - box.clientHeight < NEAR_BOTTOM;
    }
  });

  document.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail.target;
    if (target && target.id === "phone-chat" && stickToBottom) toBottom();
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.detail.elt;
    if (!event.detail.successful || !form || form.tagName !== "FORM") return;
    // A send always shows its own message: follow it down.
    stickToBottom = true;
    if (form.hasAttribute("data-reset")) {
      form.reset();
      var details = form.closest("details");
      if (details) details.open = false;
    }
    var details2 = form.closest("details.react");
    if (details2) details2.open = false;
  });

  // Coming back to the tab: look for news at once rather than at the next tick.
  document.addEventListener("visibilitychange", function () {
    var chat = document.getElementById("phone-chat");
    if (!document.hidden && chat && window.htmx) window.htmx.trigger(chat, "phone:wake");
  });
})();
