// Console: live (static/console/js/live.js). Loaded by console/base.html; no inline scripts.
//
// The frame opens one websocket (htmx ws extension, ws-connect="/ws/console/"); the server
// (console/consumers.py) sends HTML fragments swapped by element id. This file:
// - asks for a *sync* on every (re)connect, when the open conversation changes and every
//   SYNC_SECONDS: the server answers with whatever the page may have missed since the cursor
//   it gave last (live events lost while Redis restarted included), so no screen stays stale;
// - turns the server's upsert wrappers into "replace the element if the page has it, else
//   insert it in order", so a fragment delivered twice leaves one element;
// - sends "typing" (throttled) from the composer and shows "Ana is typing…" for a few seconds;
// - shows toasts, a desktop notification (permission asked once, on a click) and a sound for
//   a conversation assigned to me;
// - refreshes the list column when a row the server sent is not on the page yet;
// - leaves an element the server sent again unchanged in place (a click on it is not lost).
"use strict";
(function () {
  const SYNC_SECONDS = 25;
  const TYPING_EVERY_MS = 3000;
  const TYPING_SHOWN_MS = 6000;
  const TOAST_SHOWN_MS = 15000;
  const RECONNECT_MS = 2000;
  const MESSAGE_ID = /^message-(\d+)$/;

  let socket = null;
  let cursor = null;
  let syncedConversation = null;
  let syncTimer = null;
  let lastTyping = 0;
  let typingTimer = null;
  let navRefresh = null;

  function frame() {
    return document.querySelector(".console[ws-connect]");
  }

  function openConversation() {
    const inMain = document.querySelector("#console-main [data-conversation-id]");
    const el = inMain || frame();
    const value = el ? el.getAttribute("data-conversation-id") : "";
    return value ? parseInt(value, 10) : null;
  }

  function timeline() {
    return document.getElementById("timeline-messages");
  }

  function messageNumber(el) {
    const match = el && el.id ? MESSAGE_ID.exec(el.id) : null;
    return match ? parseInt(match[1], 10) : null;
  }

  function highestMessage() {
    const box = timeline();
    let highest = 0;
    if (!box) return 0;
    box.querySelectorAll('[id^="message-"]').forEach(function (el) {
      const n = messageNumber(el);
      if (n !== null && n > highest) highest = n;
    });
    return highest;
  }

  function send(data) {
    if (socket) socket.send(JSON.stringify(data));
  }

  function sync() {
    syncedConversation = openConversation();
    send({ type: "sync", conversation: syncedConversation, after: highestMessage(), since: cursor });
  }

  // --- Inserting what the page does not have yet ------------------------------------------------

  function insertMessage(node, box) {
    // In id order among the messages shown; older than the oldest shown belongs to a page not
    // loaded yet (scrolling up loads it), so it is left out.
    const n = messageNumber(node);
    const shown = Array.from(box.children).filter(function (el) { return messageNumber(el) !== null; });
    if (n !== null && shown.length && n < messageNumber(shown[0])) return false;
    const next = shown.find(function (el) { return messageNumber(el) > n; });
    box.insertBefore(node, next || null);
    return true;
  }

  function ensureTypingSlot() {
    if (document.getElementById("console-typing")) return;
    const slot = document.createElement("div");
    slot.id = "console-typing";
    slot.className = "console-typing";
    const composer = document.getElementById("composer");
    if (composer && composer.parentNode) composer.parentNode.insertBefore(slot, composer);
    else (document.getElementById("console-main") || document.body).appendChild(slot);
  }

  function transform(text) {
    const template = document.createElement("template");
    template.innerHTML = text;
    const inserted = [];
    Array.from(template.content.children).forEach(function (el) {
      if (el.hasAttribute("data-live-cursor")) {
        cursor = el.getAttribute("data-live-cursor");
        el.remove();
      } else if (el.hasAttribute("data-live-reload")) {
        if (el.getAttribute("data-live-reload") === "page") window.location.reload();
        else refreshNav();
        el.remove();
      } else if (el.hasAttribute("data-live-upsert")) {
        const into = el.getAttribute("data-live-upsert");
        const conversation = el.getAttribute("data-live-conversation");
        if (conversation && parseInt(conversation, 10) !== openConversation()) {
          el.remove();
          return;
        }
        Array.from(el.children).forEach(function (node) {
          if (node.id && document.getElementById(node.id)) {
            node.setAttribute("hx-swap-oob", "true");
            el.parentNode.insertBefore(node, el);
            return;
          }
          const box = into === "#timeline-messages" ? timeline() : document.querySelector(into);
          if (!box) return;
          const done = into === "#timeline-messages" ? insertMessage(node, box) : (box.appendChild(node), true);
          if (done) inserted.push(node);
        });
        el.remove();
      } else if (el.id === "console-typing") {
        ensureTypingSlot();
      }
    });
    inserted.forEach(function (node) {
      htmx.process(node);
      if (node.classList.contains("console-toast")) announce(node);
    });
    if (inserted.some(function (node) { return messageNumber(node) !== null; })) {
      const box = timeline();
      if (box) box.dispatchEvent(new CustomEvent("console:message-added", { bubbles: true }));
    }
    return template.innerHTML;
  }

  htmx.defineExtension("console-live", {
    transformResponse: function (text, xhr, elt) {
      // Only the socket's messages: HTTP responses go through untouched.
      return xhr ? text : transform(text);
    },
  });

  // --- The list column ----------------------------------------------------------------------------

  function refreshNav() {
    // Debounced: a burst of new conversations refreshes the column once.
    if (navRefresh) return;
    navRefresh = setTimeout(function () {
      navRefresh = null;
      fetch(window.location.href, { credentials: "same-origin", headers: { "X-Console-Refresh": "nav" } })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) {
          if (!html) return;
          const fresh = new DOMParser().parseFromString(html, "text/html").getElementById("console-nav");
          const nav = document.getElementById("console-nav");
          if (fresh && nav) {
            nav.innerHTML = fresh.innerHTML;
            htmx.process(nav);
          }
        })
        .catch(function () {});
    }, 500);
  }

  // A row, header or message the server sends again unchanged (a sync repeats whatever changed
  // in its window, and opening a conversation asks for one) stays as it is: replacing it would
  // lose a click landing on it at that instant, and its state (focus, an open menu) with it.
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    const detail = event.detail;
    const target = detail && detail.target;
    const incoming = detail && detail.fragment && detail.fragment.firstElementChild;
    if (target && incoming && !incoming.nextElementSibling && incoming.isEqualNode(target)) {
      detail.shouldSwap = false;
    }
  });

  document.addEventListener("htmx:oobErrorNoTarget", function (event) {
    const content = event.detail && event.detail.content;
    if (content && content.id && content.id.indexOf("conversation-row-") === 0) refreshNav();
  });

  // --- Toasts, notifications, sound -------------------------------------------------------------

  function announce(toast) {
    const sound = toast.getAttribute("data-sound");
    if (sound) {
      const audio = new Audio(sound);
      audio.play().catch(function () {});
    }
    if ("Notification" in window && Notification.permission === "granted" && document.hidden) {
      const note = new Notification(toast.getAttribute("data-notify-title") || "", {
        body: toast.getAttribute("data-notify-body") || "",
        tag: toast.id,
      });
      note.onclick = function () {
        window.focus();
        window.location.href = toast.getAttribute("data-notify-url");
      };
    }
    setTimeout(function () { toast.remove(); }, TOAST_SHOWN_MS);
  }

  document.addEventListener("click", function (event) {
    const close = event.target.closest("[data-toast-close]");
    if (close) {
      const toast = close.closest(".console-toast");
      if (toast) toast.remove();
    }
    // Browsers only ask from a user gesture; ask once, whatever the answer.
    if ("Notification" in window && Notification.permission === "default" && !localStorage.getItem("console-notify-asked")) {
      localStorage.setItem("console-notify-asked", "1");
      Notification.requestPermission().catch(function () {});
    }
  });

  // --- Typing -------------------------------------------------------------------------------------

  document.addEventListener("input", function (event) {
    if (!event.target.closest("#composer")) return;
    const now = Date.now();
    if (now - lastTyping < TYPING_EVERY_MS) return;
    lastTyping = now;
    send({ type: "typing" });
  });

  document.addEventListener("htmx:wsAfterMessage", function () {
    const typing = document.getElementById("console-typing");
    if (typing && typing.textContent.trim()) {
      clearTimeout(typingTimer);
      typingTimer = setTimeout(function () { typing.textContent = ""; }, TYPING_SHOWN_MS);
    }
  });

  // --- The socket's life --------------------------------------------------------------------------

  document.addEventListener("htmx:wsOpen", function (event) {
    socket = event.detail.socketWrapper;
    sync();
    clearInterval(syncTimer);
    syncTimer = setInterval(sync, SYNC_SECONDS * 1000);
  });

  document.addEventListener("htmx:wsClose", function (event) {
    const wrapper = event.detail.socketWrapper;
    socket = null;
    clearInterval(syncTimer);
    const code = event.detail.event ? event.detail.event.code : 0;
    // The extension reconnects after 1006/1011/1012/1013 itself; a server going away (1001,
    // a deploy) or a clean close is retried here. The next open syncs what was missed.
    if ([1006, 1011, 1012, 1013, 4403].indexOf(code) < 0 && wrapper) {
      setTimeout(function () { wrapper.reconnect(); }, RECONNECT_MS);
    }
  });

  // The page changed the open conversation without a full load: subscribe to the new one.
  document.addEventListener("htmx:afterSettle", function () {
    if (socket && openConversation() !== syncedConversation) sync();
  });
})();
