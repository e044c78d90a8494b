"""Open a page in headless Chromium (Debian's ``chromium``) and report what a reader would see.

Two runs of the browser: one loads a copy of the page with a probe script placed first in its
``<head>``, which records script errors, failed loads and ``console.error`` calls, then, on
``load``, every table's and image's visibility, the resources fetched, the load time, and
whether clicking a table header sorts the rows; the browser prints the DOM (``--dump-dom``) and
the probe's JSON is read back from it. The other takes a screenshot of the page itself. Host
names resolve nowhere, so a page that needs the network shows it as errors.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--hide-scrollbars", "--host-resolver-rules=MAP * ~NOTFOUND",
         "--disable-background-networking", "--disable-component-update")  # fmt: skip

PROBE = """<script>
(function () {
  "use strict";
  var errors = [];
  window.addEventListener("error", function (e) {
    var src = e.target && (e.target.src || e.target.href);
    errors.push(src ? "failed to load " + src.slice(0, 80) : String(e.message));
  }, true);
  window.addEventListener("unhandledrejection", function (e) { errors.push("rejection: " + e.reason); });
  var original = console.error;
  console.error = function () {
    errors.push(Array.prototype.join.call(arguments, " "));
    return original.apply(console, arguments);
  };
  function visible(el) {
    var r = el.getBoundingClientRect(), s = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && s.display !== "none" && s.visibility !== "hidden" &&
      parseFloat(s.opacity) > 0;
  }
  function column(table, col) {
    return Array.prototype.map.call(table.tBodies[0].rows, function (r) {
      return r.cells[col].getAttribute("data-sort");
    });
  }
  function sortCheck() {
    var table = document.querySelector("table.sortable");
    if (!table) { return null; }
    var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
    var col = heads.findIndex(function (h) { return h.textContent.indexOf("OOD MAE") === 0; });
    if (col < 0) { col = 0; }
    heads[col].click();
    var up = column(table, col);
    heads[col].click();
    var down = column(table, col);
    var nums = function (v) { return v.filter(function (x) { return x !== null; }).map(parseFloat); };
    var sorted = function (v, sign) {
      return v.every(function (x, i) { return i === 0 || sign * (x - v[i - 1]) >= 0; });
    };
    return {column: heads[col].textContent, ascending: sorted(nums(up), 1),
            descending: sorted(nums(down), -1), aria: heads[col].getAttribute("aria-sort")};
  }
  window.addEventListener("load", function () {
    var nav = performance.getEntriesByType("navigation")[0];
    var out = {
      errors: errors,
      tables: Array.prototype.map.call(document.querySelectorAll("table"), function (t) {
        return {id: t.id, rows: t.tBodies[0] ? t.tBodies[0].rows.length : 0, visible: visible(t)};
      }),
      images: Array.prototype.map.call(document.images, function (i) {
        return {alt: i.alt, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight,
                visible: visible(i), inline: i.src.indexOf("data:") === 0};
      }),
      resources: performance.getEntriesByType("resource").map(function (e) { return e.name; }),
      dom_content_loaded_ms: nav ? nav.domContentLoadedEventEnd : null,
      load_ms: nav ? nav.loadEventStart : null,
      sort: sortCheck()
    };
    var pre = document.createElement("pre");
    pre.id = "__probe";
    pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  });
})();
</script>"""


def find_chromium() -> str | None:
    """Path of a Chromium-family browser on PATH (``CHROMIUM`` overrides), or None."""
    env = os.environ.get("CHROMIUM")
    if env:
        return shutil.which(env)
    return next((p for c in CANDIDATES if (p := shutil.which(c))), None)


def _run(browser: str, args: list[str], profile: Path, timeout: float) -> tuple[str, str, float]:
    cmd = [browser, *FLAGS, f"--user-data-dir={profile}", *args]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{browser} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return proc.stdout, proc.stderr, seconds


def probe_page(
    page: Path, work: Path, *, width: int = 1400, height: int = 2600, timeout: float = 120
) -> dict[str, Any]:
    """The probe's findings for ``page``, plus the screenshot path, browser seconds, page bytes
    and the console errors Chromium logged."""
    browser = find_chromium()
    if browser is None:
        raise FileNotFoundError("no Chromium on PATH")
    work.mkdir(parents=True, exist_ok=True)
    text = page.read_text(encoding="utf-8")
    probed = work / f"probe-{page.name}"
    probed.write_text(text.replace("<head>", "<head>\n" + PROBE, 1), encoding="utf-8")
    window = f"--window-size={width},{height}"
    dom, stderr, dom_s = _run(browser, ["--enable-logging=stderr", "--v=0", window,
                                        "--virtual-time-budget=20000", "--dump-dom",
                                        probed.as_uri()], work / "profile-dom", timeout)  # fmt: skip
    found = re.search(r'<pre id="__probe">(.*?)</pre>', dom, re.S)
    if found is None:
        raise RuntimeError(f"the probe did not report (no load event?); stderr: {stderr[-2000:]}")
    result = json.loads(html.unescape(found.group(1)))
    result["console_errors"] = [
        line for line in stderr.splitlines() if "CONSOLE" in line and "Uncaught" in line
    ]
    shot = work / f"{page.stem}.png"
    _, _, shot_s = _run(browser, [window, f"--screenshot={shot}", page.as_uri()],
                        work / "profile-shot", timeout)  # fmt: skip
    result |= {"screenshot": str(shot), "page_bytes": page.stat().st_size,
               "dump_dom_seconds": dom_s, "screenshot_seconds": shot_s, "browser": browser}  # fmt: skip
    return result
