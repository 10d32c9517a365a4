"""Time until the dashboard's first view is interactive, for a run root with 5 traits.

Builds a run root from one real run directory (copied under 5 trait names, with its steering
results and traces), serves it on 127.0.0.1 and loads the Extraction view in headless Chromium
(Debian's /usr/bin/chromium through Playwright) until its heatmaps report `data-state=ready`.
Prints `name: value` lines: `first view seconds` (median of 5 cold page loads; target < 2).

Usage: python bench/dashboard.py RUN_DIR   (e.g. runs/smollm2-135m-instruct/optimism from `make demo`)
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from traitscope.web.app import bind, create_app, make_server
from traitscope.web.headless import CHROMIUM, CHROMIUM_ARGS


def main() -> None:
    from playwright.sync_api import sync_playwright

    run = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/smollm2-135m-instruct/optimism")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "runs"
        names = ["optimism", "refusal", "uncertainty", "formality", "sycophancy"]
        for name in names:
            shutil.copytree(run, root / run.parent.name / name, ignore=shutil.ignore_patterns("activations"))
        sock = bind("127.0.0.1", 0)
        server = make_server(create_app(root))
        threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
        while not server.started:
            time.sleep(0.02)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/?model={run.parent.name}&trait=optimism#extraction"
        times = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))
            for _ in range(6):
                page = browser.new_page()
                t = time.perf_counter()
                page.goto(url)
                page.wait_for_selector("#view-extraction[data-state=ready] rect.cell", timeout=30_000)
                times.append(time.perf_counter() - t)
                page.close()
            browser.close()
        server.should_exit = True
    print("traits: 5")
    print(f"first view seconds: {statistics.median(times[1:]):.2f}")
    print(f"first view seconds (browser cold start): {times[0]:.2f}")


if __name__ == "__main__":
    main()
