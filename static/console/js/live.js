// Console: live (static/console/js/live.js). Loaded by console/base.html; no inline scripts.
"use strict";
