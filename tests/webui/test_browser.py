"""The web UI in a real headless Chromium: start a run from the page, charts, our tabs, CSVs."""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

from cluster import FAST, LOCUST, LOCUSTFILE, clean_env, cli_credentials, free_port, servers_named  # noqa: E402
from waiting import wait_until  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
import playwright.sync_api as playwright_api  # noqa: E402 (the test extra installs it)


def artifact_dir(tmp_path: Path) -> Path:
    """Where screenshots go: $NOVASTRESS_TEST_ARTIFACTS (CI keeps it) or the test's tmp dir."""
    directory = Path(os.environ.get("NOVASTRESS_TEST_ARTIFACTS") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture
def web_locust(cloud_factory, tmp_path):
    faulty = cloud_factory(faults="scheduler-capacity-race", delay_scale=0.1, seed=7,
                           extra_args=["--fault-probability", "scheduler-capacity-race=1.0"])
    yield from _web_master(faulty, tmp_path, LOCUSTFILE, "--target-logfiles", f"{faulty.log_dir}/*.log",
                           "--log-check-interval", "0.5", "--log-discovery", "none",
                           "--sla", "failure_rate=100,max_seconds_per_iteration=0.001")


def _web_master(cloud, tmp_path: Path, locustfile: str, *args: str):
    """A locust serving its web UI on loopback against `cloud`: (cloud, url, process, output file)."""
    port = free_port()
    out = open(tmp_path / "locust.out", "w")
    process = subprocess.Popen(
        [LOCUST, "-f", locustfile, "--web-host", "127.0.0.1", "--web-port", str(port), *FAST,
         *cli_credentials(cloud), *args],
        cwd=ROOT, env=clean_env(), stdout=out, stderr=subprocess.STDOUT, text=True)

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                return response.status == 200
        except OSError:
            return process.poll() is not None     # exited: stop waiting, the test will say why
    wait_until(ready, "the web UI", timeout=60, interval=0.3)
    assert process.poll() is None, (tmp_path / "locust.out").read_text()[-3000:]
    yield cloud, f"http://127.0.0.1:{port}", process, tmp_path / "locust.out"
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def runner_state(url: str) -> str:
    with urllib.request.urlopen(f"{url}/stats/requests", timeout=10) as response:
        return json.loads(response.read())["state"]


def chart_signature(page) -> str:
    """What the charts draw right now (canvas pixels, or SVG markup)."""
    return page.evaluate("""() => Array.from(document.querySelectorAll('canvas, svg'))
        .map(e => e.tagName === 'CANVAS' ? e.toDataURL() : e.outerHTML).join('|')""")


def test_run_from_the_page_charts_tabs_and_csv_downloads(web_locust, tmp_path):
    cloud, url, process, log = web_locust
    password = cloud.credentials()["password"]
    artifacts = artifact_dir(tmp_path)
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
            page.set_default_timeout(30_000)
            page.goto(url)
            page.wait_for_selector("input[name=userCount]")

            # our options are in the form; secrets are password fields that carry no value
            assert page.locator("input[name=osPassword]").get_attribute("type") == "password"
            assert page.locator("input[name=osPassword]").input_value() == ""
            assert page.locator("input[name=osApplicationCredentialSecret]").get_attribute("type") == "password"
            assert page.locator("input[name=osAuthUrl]").count() == 1
            assert password not in page.content()

            page.fill("input[name=userCount]", "4")
            page.fill("input[name=spawnRate]", "4")
            page.click("button[type=submit]")
            page.wait_for_selector("text=server_create_destroy")      # the ACTION row in the stats table

            page.get_by_role("tab", name="Charts").click()
            page.wait_for_selector("canvas, svg")
            first = wait_until(lambda: chart_signature(page), "a chart", timeout=30, interval=0.2)
            wait_until(lambda: chart_signature(page) != first, "the charts to update", timeout=30, interval=0.5)

            page.get_by_role("tab", name="Log errors").click()
            page.wait_for_selector("td:has-text('nova-conductor.log')")
            assert page.locator("td:has-text('server_create_destroy')").count() >= 1
            assert page.locator("td:has-text('req-')").count() >= 1
            page.screenshot(path=str(artifacts / "webui-log-errors.png"), full_page=True)

            # the Findings tab: the conductor's records grouped into one finding, its action named
            page.get_by_role("tab", name="Findings").click()
            page.wait_for_selector("td:has-text('nova-conductor logs')")
            row = page.locator("tr", has=page.locator("td:has-text('nova-conductor logs')")).first
            assert "NoValidHost" in row.inner_text() and "server_create_destroy" in row.inner_text(), row.inner_text()
            assert "req-" in row.inner_text()
            page.screenshot(path=str(artifacts / "webui-findings.png"), full_page=True)

            page.get_by_role("tab", name="Actions").click()
            page.wait_for_selector("td:has-text('server_create_destroy')")
            assert page.locator("td:has-text('local')").count() >= 1
            page.screenshot(path=str(artifacts / "webui-actions.png"), full_page=True)

            # the SLA tab: each criterion judged live, one that holds and one that cannot
            page.get_by_role("tab", name="SLA").click()
            page.wait_for_selector("td:has-text('max_seconds_per_iteration')")
            row = page.locator("tr", has=page.locator("td:has-text('max_seconds_per_iteration')"))
            assert "FAILED" in row.inner_text() and "server_create_destroy" in row.inner_text()
            row = page.locator("tr", has=page.locator("td:has-text('failure_rate')"))
            assert "Passed" in row.inner_text() and "<= 100 %" in row.inner_text()
            page.screenshot(path=str(artifacts / "webui-sla.png"), full_page=True)

            page.get_by_role("tab", name="Download Data").click()
            tables = {}
            for title in ("Download novastress log errors CSV", "Download novastress actions per worker CSV"):
                with page.expect_download() as download:
                    page.get_by_text(title).click()
                tables[title] = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
            errors = tables["Download novastress log errors CSV"]
            assert errors and all(row["host"] == "localhost" and "ERROR" in row["lines"] for row in errors)
            assert any(row["action"] == "server_create_destroy" for row in errors)
            actions = tables["Download novastress actions per worker CSV"]
            assert [(row["action"], row["worker"]) for row in actions] == [("server_create_destroy", "local")]
            assert int(actions[0]["runs"]) >= 1 and int(actions[0]["failures"]) >= 1

            page.get_by_role("button", name="Stop").click()
            # users delete what they made before the runner reports "stopped": allow for a busy machine
            wait_until(lambda: runner_state(url) == "stopped", "the stop", timeout=120, interval=0.5)
            # the page stops polling once the run is stopping: a reload shows the final state
            page.reload()
            page.wait_for_selector("text=STOPPED")
            page.screenshot(path=str(artifacts / "webui-stopped.png"), full_page=True)
        finally:
            browser.close()
    # stopping from the page deletes everything the run made (the sweep runs at test stop)
    wait_until(lambda: servers_named(cloud, "ns-") == [], "cleanup", timeout=60, interval=0.5)
    assert password not in log.read_text()


@pytest.fixture
def web_storm(cloud_factory, tmp_path):
    yield from _web_master(cloud_factory(faults="none", delay_scale=0.1), tmp_path, "locustfiles/storm.py")


def test_a_bad_storm_option_in_the_form_is_refused_on_the_page(web_storm, tmp_path):
    """The form's storm options pass the checks the preflight runs: a ratio outside 0-1 or a
    word where a number goes is said on the page, and nothing starts."""
    cloud, url, process, log = web_storm
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            page.goto(url)
            page.wait_for_selector("input[name=userCount]")
            page.fill("input[name=userCount]", "2")
            page.fill("input[name=spawnRate]", "2")
            page.get_by_text("Custom parameters").click()    # the accordion our options are in
            for value, message in (("2", "--storm-plan-ratio 2: a fraction of rounds, between 0 and 1"),
                                   ("often", "--storm-plan-ratio: invalid value 'often'")):
                page.fill("input[name=stormPlanRatio]", value)
                page.click("button[type=submit]")
                page.wait_for_selector(f"text={message}")
                assert runner_state(url) == "ready"
            page.screenshot(path=str(artifact_dir(tmp_path) / "webui-bad-storm-option.png"), full_page=True)
        finally:
            browser.close()
    assert servers_named(cloud, "ns-") == []
    assert process.poll() is None, log.read_text()[-3000:]
