// Console: composer (static/console/js/composer.js). Loaded by console/base.html; no inline scripts.
"use strict";
