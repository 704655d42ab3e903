"""`credsim serve` in a real browser: Debian's Chromium driven by Playwright, against a real
server on a free loopback port. One server and one browser for the module; small runs.

It goes through what a user does: choose a preset, change a lever (and see a bad value
refused), run, see the charts, compare, follow a person, download the report."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SRC = str(Path(__file__).parents[1] / "src")

if not CHROMIUM.exists():
    pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does it)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="playwright (python) is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = _free_port()
    data = tmp_path_factory.mktemp("serve-e2e")
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "credsim", "serve", "--port", str(port),
                             "--no-browser", "--data", str(data)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "api/health", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(proc.stdout.read().decode()) from None
            time.sleep(0.2)
    yield url, data
    proc.terminate()
    proc.wait(20)


@pytest.fixture(scope="module")
def page(server):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900},
                                      accept_downloads=True)
        pg = context.new_page()
        pg.errors = []
        pg.on("pageerror", lambda e: pg.errors.append(str(e)))
        pg.goto(server[0])
        pg.wait_for_selector(".card.chosen")
        yield pg
        browser.close()


def _set(page, key: str, value: str) -> None:
    box = page.locator(f'[id="lv-{key}"]')
    box.fill(value)
    box.dispatch_event("change")


def test_a_user_runs_reads_compares_follows_and_downloads(page, server):
    # Choose a preset: its levers load, from the schema.
    page.click('[data-preset="rongcheng"]')
    page.wait_for_selector('[id="lv-safeguards.review_capacity"]')
    assert "rongcheng" in page.inner_text("#preset-name")

    # A bad value is refused with the schema's message, and Run is disabled.
    _set(page, "safeguards.review_capacity", "-5")
    page.wait_for_selector('.lever.invalid[data-key="safeguards.review_capacity"]')
    assert "greater than or equal to 0" in page.inner_text("#lever-error")
    assert page.is_disabled("#run")

    # Change levers to valid values: a small run with more false court cases.
    _set(page, "safeguards.review_capacity", "0")
    _set(page, "run.people", "2000")
    _set(page, "run.days", "60")
    _set(page, "channels.court.false_rate", "0.0002")
    page.wait_for_function("!document.getElementById('run').disabled")

    # Run: progress streams and the run finishes; the charts are drawn.
    page.click("#run")
    page.wait_for_function(
        "document.getElementById('progress-text').textContent.startsWith('finished')",
        timeout=120_000)
    assert page.inner_text("#progress-text").startswith("finished: 2,000 people, 60 days")
    for chart in ("chart-scores", "chart-listed", "chart-gates", "chart-groups"):
        assert page.locator(f"#{chart} .main-svg").count() >= 1, chart
    traces = page.evaluate("document.getElementById('chart-scores').data.length")
    assert traces == 6, "one trace per grade"
    days = page.evaluate("document.getElementById('chart-listed').data[0].x.length")
    assert days == 60

    # Read it: the summary, the EU AI Act panel, disparate impact against 0.8.
    page.click('[data-tab="summary"]')
    assert "What was run." in page.inner_text("#story")
    page.click('[data-tab="euact"]')
    assert "cross_context_share" in page.inner_text("#euact")
    page.click('[data-tab="impact"]')
    assert "audit group 1" in page.inner_text("#impact")

    # Follow a person: one of the wrongfully sanctioned; false records are marked.
    page.click('[data-tab="person"]')
    page.locator("#pick [data-person]").first.click()
    page.wait_for_selector("#timeline tr.false")
    assert "court_listing" in page.inner_text("#timeline")
    assert page.locator("#family").count() == 1

    # Download the report: the same self-contained HTML as credsim report.
    page.click('[data-tab="downloads"]')
    with page.expect_download() as info:
        page.click('[data-kind="report"]')
    report = Path(info.value.path()).read_text("utf-8")
    assert report.lower().startswith("<!doctype html") and "EU AI Act" in report

    # Compare: setting B adds review; paired differences with intervals appear.
    page.click('[data-tab="compare"]')
    page.fill("#replicates", "2")
    page.click("#compare-run")
    page.wait_for_function(
        "document.getElementById('compare-text').textContent.startsWith('finished')",
        timeout=180_000)
    table = page.inner_text("#compare")
    assert "B − A (paired, 95 %)" in table and "[" in table
    assert page.locator("#chart-forest .main-svg").count() >= 1
    assert page.errors == []


def test_a_comparison_is_shared_taken_away_and_survives_a_reload(page, server):
    """After the comparison above: its downloads and share link; the address names it, so
    a reload reconnects; another browser opening the link sees the job's own change."""
    page.click('[data-tab="downloads"]')
    assert page.locator('#downloads [data-kind="report"]').count() == 1
    link = page.input_value("#share")
    assert "?job=" in link and "&share=" in link
    assert page.url == link
    compare_id = link.split("?job=")[1].split("&")[0]
    assert page.locator(f'#my-jobs a[href*="{compare_id}"]').count() == 1

    page.reload()
    page.wait_for_function(
        "document.getElementById('compare-text').textContent.startsWith('finished')",
        timeout=60_000)
    assert "B − A (paired, 95 %)" in page.inner_text("#compare")

    browser = page.context.browser
    other = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    errors: list[str] = []
    other.on("pageerror", lambda e: errors.append(str(e)))
    other.goto(link)
    other.wait_for_function(
        "document.getElementById('compare-text').textContent.startsWith('finished')",
        timeout=60_000)
    key = other.input_value("#changes .change select")
    value = other.input_value("#changes .change [data-control]")
    assert (key, value) == ("safeguards.review_capacity", "200")
    assert other.is_disabled("#compare-cancel")  # a share link reads; it does not cancel
    assert errors == [] and page.errors == []
    other.context.close()


def test_a_reload_reconnects_to_a_running_job(page, server):
    page.goto(server[0])
    page.wait_for_selector(".card.chosen")
    _set(page, "run.people", "2000")
    _set(page, "run.days", "1500")
    page.wait_for_function("!document.getElementById('run').disabled")
    page.click("#run")
    page.wait_for_function("location.search.startsWith('?job=')")
    job_id = page.evaluate("new URLSearchParams(location.search).get('job')")
    page.goto(server[0])  # the bare address, as a user retyping it
    page.wait_for_function(
        f"new URLSearchParams(location.search).get('job') === {job_id!r}", timeout=30_000)
    page.wait_for_function("!document.getElementById('cancel').disabled")
    page.click("#cancel")
    page.wait_for_function(
        "document.getElementById('progress-text').textContent.startsWith('cancelled')",
        timeout=60_000)


def test_a_true_false_change_is_chosen_not_typed(page, server):
    page.click('[data-tab="compare"]')
    page.click("#add-change")
    row = page.locator("#changes .change").last
    toggle = page.evaluate(
        "state.levers.find((l) => l.control === 'toggle' && l.group !== 'run').key")
    row.locator("select").first.select_option(toggle)
    control = row.locator("[data-control]")
    assert control.evaluate("n => n.tagName") == "SELECT"
    assert sorted(control.locator("option").all_inner_texts()) == ["false", "true"]
    control.select_option("true")
    assert page.evaluate("changes()")[toggle] is True
    assert page.errors == []


def test_a_decades_run_and_a_family(page, server):
    """Demography on, the years slider at 20, a run of 2,000 people whose progress counts
    years; the charts by year; then a family followed from one member to another."""
    page.goto(server[0])
    page.wait_for_selector(".card.chosen")
    assert page.is_disabled("#years-range")  # demography off: the run is set in days
    page.check('[id="lv-demography.enabled"]')
    page.wait_for_function("!document.getElementById('years-range').disabled")
    page.fill("#lv-years", "20")
    page.dispatch_event("#lv-years", "change")
    assert page.input_value('[id="lv-run.days"]') == "7305"
    _set(page, "run.people", "2000")
    assert "(20 years)" in page.inner_text("#estimate")
    page.wait_for_function("!document.getElementById('run').disabled")
    page.click("#run")
    page.wait_for_function(
        "document.getElementById('progress-text').textContent.startsWith('year ')",
        timeout=120_000)
    assert " of 20 (day " in page.inner_text("#progress-text")
    page.wait_for_function(
        "document.getElementById('progress-text').textContent.startsWith('finished')",
        timeout=600_000)
    assert "(20 years)" in page.inner_text("#progress-text")

    # Charts by year: people alive, births and deaths, and any column by year.
    assert page.is_visible("#decades")
    alive = page.evaluate("document.getElementById('chart-population').data[0]")
    assert alive["x"] == list(range(1, 21)) and min(alive["y"]) > 1000
    births = page.evaluate("document.getElementById('chart-life').data[0]")
    total = page.evaluate("state.rows.reduce((s, r) => s + r.births, 0)")
    assert births["name"] == "births" and sum(births["y"]) == total > 0
    page.select_option("#yearly-column", "listed")
    assert "at each year's end" in page.evaluate(
        "document.getElementById('chart-yearly').layout.title.text")

    # Follow a family: three generations, each member's score on one chart; click one.
    page.click('[data-tab="person"]')
    page.locator('#pick [data-family="three_generations"] [data-person]').first.click()
    page.wait_for_selector('#family-tree [data-generation="2"] .member')
    grandparent = page.input_value("#person-id")
    assert page.locator("#family-tree .member.self").count() == 1
    lines = page.evaluate("document.getElementById('chart-family').data.map((t) => t.name)")
    assert any(n.startswith(f"#{grandparent} ") for n in lines) and "births" in lines
    child = page.locator('#family-tree [data-generation="1"] .member').first
    child_id = child.get_attribute("data-member")
    child.click()
    page.wait_for_function(f"document.getElementById('person-id').value === '{child_id}'")
    page.wait_for_selector(f'#family-tree [data-generation="-1"] [data-member="{grandparent}"]')
    assert page.errors == []
