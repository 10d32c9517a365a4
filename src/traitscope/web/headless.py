"""The headless browser that drives the dashboard in the browser tests and ``bench/dashboard.py``:
Debian's ``chromium`` (Playwright's own download does not work offline), launched with these flags
(no sandbox for root in CI, nothing that reaches the network)."""

from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
