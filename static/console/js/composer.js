// Console: composer (static/console/js/composer.js). Loaded by console/base.html; no inline scripts.
// The forms work without JavaScript (real posts, console/actions.py); this adds the keyboard and
// comfort: Enter sends and Shift+Enter breaks the line, "/" at the start opens the canned
// responses, an emoji panel, "reply to" a message, the note toggle, labels saved on change,
// Alt+N opens the next waiting conversation. ("/" outside a text box focuses the search:
// lists.js.) Text from the server is only ever set with textContent or as a form value.
"use strict";
(function () {
  var EMOJI = [
    "😀", "😃", "😄", "😁", "😅", "😂", "🙂", "😉", "😊", "😍", "😘", "🤗", "🤔", "😐", "😕", "😢",
    "😭", "😡", "😮", "🙄", "😴", "🤝", "👍", "👎", "👏", "🙏", "💪", "👋", "👌", "✌️", "❤️", "💚",
    "💙", "🔥", "⭐", "✅", "❌", "⚠️", "🎉", "🎁", "📦", "🚚", "💳", "💰", "📞", "📍", "🕒", "📅",
  ];

  function composer() {
    return document.getElementById("composer");
  }

  function textBox() {
    var root = composer();
    return root && root.querySelector("[data-composer-text]");
  }

  function form() {
    var root = composer();
    return root && root.querySelector("[data-composer-form]");
  }

  function typing(target) {
    return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }

  function insertAtCursor(box, text) {
    var start = box.selectionStart || 0;
    var end = box.selectionEnd || 0;
    box.value = box.value.slice(0, start) + text + box.value.slice(end);
    box.selectionStart = box.selectionEnd = start + text.length;
    box.focus();
  }

  // --- Refusals: htmx leaves 4xx answers out by default; ours carry the fragments to show ---------

  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail && event.detail.xhr;
    if (xhr && xhr.getResponseHeader && xhr.getResponseHeader("X-Console-Refusal") === "1") {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  // The draft survives a refusal (the server answers an empty composer): keep what was typed,
  // and put the cursor back in the box after a send from it.
  var draft = null;
  document.addEventListener("htmx:beforeRequest", function (event) {
    var box = textBox();
    draft = box && event.detail.elt === form() ? box.value : null;
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    if (draft === null) return;
    var box = textBox();
    var xhr = event.detail.xhr;
    if (box) {
      if (xhr && xhr.getResponseHeader("X-Console-Refusal") === "1") box.value = draft;
      box.focus();
    }
    draft = null;
  });

  // --- Enter sends, Shift+Enter breaks the line; the canned-response picker ------------------------

  var picker = { items: [], index: -1, token: null, timer: null };

  function cannedPanel() {
    var root = composer();
    return root && root.querySelector("[data-composer-canned]");
  }

  function closePicker() {
    var panel = cannedPanel();
    if (panel) {
      panel.hidden = true;
      panel.textContent = "";
    }
    picker.items = [];
    picker.index = -1;
  }

  function highlight(index) {
    picker.items.forEach(function (item, i) {
      item.setAttribute("aria-selected", i === index ? "true" : "false");
    });
    picker.index = index;
  }

  function choose(item) {
    var box = textBox();
    if (!box || !item) return;
    var text = item.getAttribute("data-canned-text") || "";
    // Replace the "/shortcut" being typed with the response.
    var before = box.value.slice(0, box.selectionStart);
    var slash = before.lastIndexOf("/");
    if (slash >= 0) {
      box.selectionStart = slash;
    }
    insertAtCursor(box, text);
    closePicker();
  }

  function shortcutBeingTyped(box) {
    var before = box.value.slice(0, box.selectionStart);
    var match = /(^|\s)\/([\w-]{0,40})$/.exec(before);
    return match ? match[2] : null;
  }

  function loadCanned(query) {
    var root = composer();
    var panel = cannedPanel();
    if (!root || !panel) return;
    var url = root.getAttribute("data-canned-url") + "?q=" + encodeURIComponent(query);
    fetch(url, { credentials: "same-origin", headers: { "HX-Request": "true" } })
      .then(function (response) { return response.ok ? response.text() : ""; })
      .then(function (html) {
        if (shortcutBeingTyped(textBox()) !== query) return;
        // Server-rendered and escaped (console/composer.html#canned): parsed, never eval'd.
        var doc = new DOMParser().parseFromString(html, "text/html");
        var list = doc.querySelector("[data-canned-list]");
        panel.textContent = "";
        if (!list) return closePicker();
        panel.appendChild(document.importNode(list, true));
        panel.hidden = false;
        picker.items = Array.prototype.slice.call(panel.querySelectorAll("[data-canned-text]"));
        highlight(picker.items.length ? 0 : -1);
      })
      .catch(closePicker);
  }

  document.addEventListener("input", function (event) {
    if (!event.target.matches || !event.target.matches("[data-composer-text]")) return;
    var query = shortcutBeingTyped(event.target);
    if (query === null) return closePicker();
    clearTimeout(picker.timer);
    picker.timer = setTimeout(function () { loadCanned(query); }, 150);
  });

  document.addEventListener("click", function (event) {
    var item = event.target.closest && event.target.closest("[data-composer-canned] [data-canned-text]");
    if (item) {
      event.preventDefault();
      choose(item);
    }
  });

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    // Alt+N (anywhere, even while typing): the oldest waiting conversation this person may take.
    var altN = event.key === "n" || event.key === "N" || event.code === "KeyN";
    if (event.altKey && !event.ctrlKey && !event.metaKey && altN) {
      event.preventDefault();
      var root = composer();
      window.location.href = (root && root.getAttribute("data-next-url")) || "/console/next/";
      return;
    }
    if (target.matches && target.matches("[data-composer-text]")) {
      var open = picker.items.length > 0;
      if (open && (event.key === "ArrowDown" || event.key === "ArrowUp")) {
        event.preventDefault();
        var step = event.key === "ArrowDown" ? 1 : -1;
        highlight((picker.index + step + picker.items.length) % picker.items.length);
        return;
      }
      if (open && (event.key === "Enter" || event.key === "Tab") && picker.index >= 0) {
        event.preventDefault();
        choose(picker.items[picker.index]);
        return;
      }
      if (event.key === "Escape") {
        closePicker();
        return;
      }
      // isComposing: Enter that confirms an accent or IME composition must not send.
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        var f = form();
        var file = f && f.querySelector("[data-composer-file]");
        if (f && (target.value.trim() || (file && file.files.length))) {
          f.requestSubmit();
        }
      }
      return;
    }
    // "r" (not typing): focus the reply box.
    if (event.key === "r" && !event.altKey && !event.ctrlKey && !event.metaKey && !typing(target)) {
      var box = textBox();
      if (box) {
        event.preventDefault();
        box.focus();
      }
    }
  });

  // --- Emoji -------------------------------------------------------------------------------------

  document.addEventListener("click", function (event) {
    var toggle = event.target.closest && event.target.closest("[data-composer-emoji]");
    var root = composer();
    if (!root) return;
    var panel = root.querySelector("[data-composer-emoji-panel]");
    if (toggle && panel) {
      event.preventDefault();
      if (!panel.childElementCount) {
        EMOJI.forEach(function (emoji) {
          var button = document.createElement("button");
          button.type = "button";
          button.className = "composer__emoji-choice";
          button.textContent = emoji;
          button.setAttribute("data-emoji", emoji);
          panel.appendChild(button);
        });
      }
      panel.hidden = !panel.hidden;
      return;
    }
    var choice = event.target.closest && event.target.closest("[data-emoji]");
    if (choice && panel && panel.contains(choice)) {
      event.preventDefault();
      var box = textBox();
      if (box) insertAtCursor(box, choice.getAttribute("data-emoji"));
      panel.hidden = true;
    }
  });

  // --- Reply to a message, the note toggle, the chosen file ------------------------------------

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-reply-to]");
    var root = composer();
    if (button && root) {
      var input = root.querySelector("[data-composer-reply-to]");
      var quote = root.querySelector("[data-composer-quote]");
      if (!input || !quote) return;
      event.preventDefault();
      input.value = button.getAttribute("data-reply-to");
      root.querySelector("[data-composer-quote-text]").textContent = button.getAttribute("data-reply-preview") || "…";
      quote.hidden = false;
      var box = textBox();
      if (box) box.focus();
      return;
    }
    var cancel = event.target.closest && event.target.closest("[data-composer-quote-cancel]");
    if (cancel && root) {
      event.preventDefault();
      root.querySelector("[data-composer-reply-to]").value = "";
      root.querySelector("[data-composer-quote]").hidden = true;
    }
  });

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches && target.matches("[data-composer-note]")) {
      var f = form();
      var box = textBox();
      if (f) f.classList.toggle("composer__form--note", target.checked);
      if (box) {
        box.placeholder = box.getAttribute(target.checked ? "data-placeholder-note" : "data-placeholder-reply");
        box.focus();
      }
    } else if (target.matches && target.matches("[data-composer-file]")) {
      var name = composer().querySelector("[data-composer-file-name]");
      if (name) name.textContent = target.files.length ? target.files[0].name : "";
    } else if (target.closest && target.closest("[data-composer-labels]") && target.name === "label") {
      target.closest("form").requestSubmit();
    }
  });
})();
