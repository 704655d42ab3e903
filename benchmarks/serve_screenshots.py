"""The screenshots of docs/dashboard.md and the README, taken in headless Chromium.

Starts `credsim serve` on a free loopback port, goes through a run, a person and a
comparison as a user would, and writes docs/img/serve-*.png (1280x900, kept under
250 KiB).

    PYTHONPATH=$PWD/src python benchmarks/serve_screenshots.py          # every one
    PYTHONPATH=$PWD/src python benchmarks/serve_screenshots.py decades  # decades, family
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).parents[1]
OUT = ROOT / "docs" / "img"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shrink(path: Path, most: int = 250 * 1024) -> None:
    """Optimised, and a palette PNG if still larger than `most` bytes (a palette can turn
    a small patch of colour grey, so it is the last resort)."""
    image = Image.open(path).convert("RGB")
    image.save(path, optimize=True)
    if path.stat().st_size > most:
        image.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(path, optimize=True)


def shot(page, name: str, **kw) -> None:
    path = OUT / f"serve-{name}.png"
    page.screenshot(path=str(path), **kw)
    shrink(path)
    print(f"{path.relative_to(ROOT)}: {path.stat().st_size // 1024} KiB")


def set_lever(page, key: str, value: str) -> None:
    box = page.locator(f'[id="lv-{key}"]')
    box.fill(value)
    box.dispatch_event("change")


def wait_text(page, element: str, start: str, timeout: float = 300_000) -> None:
    page.wait_for_function(
        f"document.getElementById('{element}').textContent.startsWith('{start}')",
        timeout=timeout)


def decades(page, url: str) -> None:
    """A run of 20 years with demography: the charts by year, then a family of three
    generations followed from its eldest."""
    page.goto(url)
    page.wait_for_selector(".card.chosen")
    page.check('[id="lv-demography.enabled"]')
    page.fill("#lv-years", "20")
    page.dispatch_event("#lv-years", "change")
    set_lever(page, "run.people", "5000")
    time.sleep(1)
    page.click("#run")
    wait_text(page, "progress-text", "finished")
    time.sleep(1)
    page.locator("#decades").scroll_into_view_if_needed()
    shot(page, "decades")
    page.click('[data-tab="person"]')
    page.locator('#pick [data-family="three_generations"] [data-person]').first.click()
    page.wait_for_selector('#family-tree [data-generation="2"] .member')
    time.sleep(1)
    page.evaluate("document.getElementById('family-note').previousElementSibling"
                  ".scrollIntoView()")
    shot(page, "family")


def main(only: str | None = None) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    with tempfile.TemporaryDirectory() as data:
        server = subprocess.Popen([sys.executable, "-m", "credsim", "serve", "--no-browser",
                                   "--port", str(port), "--data", data], env=env)
        url = f"http://127.0.0.1:{port}/"
        for _ in range(300):
            try:
                urllib.request.urlopen(url + "api/health", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                if only == "decades":
                    decades(page, url)
                    return
                page.goto(url)
                page.wait_for_selector(".card.chosen")
                set_lever(page, "run.people", "100000")
                set_lever(page, "channels.court.false_rate", "0.00002")
                time.sleep(1)
                page.click("#run")
                page.wait_for_function(
                    "((document.getElementById('chart-listed').data || [])[0] || {x: []})"
                    ".x.length > 100", timeout=300_000)
                shot(page, "running")
                wait_text(page, "progress-text", "finished")
                time.sleep(1)
                shot(page, "charts")
                page.click('[data-tab="summary"]')
                shot(page, "summary")
                page.click('[data-tab="impact"]')
                time.sleep(0.5)
                shot(page, "impact")
                page.click('[data-tab="euact"]')
                shot(page, "euact")
                page.click('[data-tab="person"]')
                page.locator("#pick [data-person]").first.click()
                page.wait_for_selector("#timeline tr")
                time.sleep(1)
                shot(page, "person")
                page.click('[data-tab="compare"]')
                page.fill("#replicates", "3")
                page.click("#compare-run")
                wait_text(page, "compare-text", "finished", 600_000)
                time.sleep(1)
                shot(page, "compare")
                page.click("#tour-start")
                shot(page, "tour")
                decades(page, url)
                browser.close()
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
