// Console: lists (static/console/js/lists.js). Loaded by console/base.html; no inline scripts.
"use strict";
