// ReDoc for /redoc, from the packaged assets (no CDN, no web fonts); a file, not an inline script, for the CSP.
"use strict";
Redoc.init("/openapi.json", { hideDownloadButton: false }, document.getElementById("redoc"));
