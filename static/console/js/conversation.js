// Console: conversation (static/console/js/conversation.js). Loaded by console/base.html; no inline scripts.
"use strict";
