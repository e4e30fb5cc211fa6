"""The dashboard in a real headless Chromium (Debian's chromium and chromium-driver).

Without them the tests are skipped locally; in CI (CI=true) a skip fails the run,
and .ci/run installs both.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from durabletask.entities import EntityInstanceId
from durabletask.worker import TaskHubGrpcWorker
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from dashboard.server import RunningDashboard
from tests.dashboard_support import Scheduler, stored_state
from tests.processes import (
    PYTHON,
    ROOT,
    Process,
    free_port,
    process_env,
    start_scheduler,
    wait_for,
)

pytestmark = pytest.mark.e2e

# The fixtures `scheduler`, `test_worker` and `dashboard`.
pytest_plugins = ["tests.dashboard_fixtures"]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
MARKUP = '<script>window.xssRan = true</script><img src=x onerror="window.xssRan = true">'


def start_chromium(profile: Path) -> WebDriver:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip("needs Debian's chromium and chromium-driver: apt-get install both")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # Without the background-networking flags Chromium tries to reach Google's
    # services on every start; nothing here may leave 127.0.0.1.
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    driver = start_chromium(tmp_path / "chromium-profile")
    yield driver
    driver.quit()


def live_text(browser: WebDriver) -> str:
    return str(browser.find_element(By.ID, "live").text)


def refreshes(browser: WebDriver) -> int:
    value = browser.execute_script("return document.getElementById('live').dataset.refreshes")
    return int(value or 0)


def test_demo_shows_orchestrations_and_entities(browser: WebDriver, tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    log = tmp_path / "demo.log"
    with open(log, "w") as output:
        demo = subprocess.Popen(
            [PYTHON, "scripts/demo.py", "--keep-running", "--dashboard-port", str(free_port())],
            cwd=ROOT,
            env=process_env(endpoint),
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    try:
        wait_for(lambda: "still running" in log.read_text(), 90, "demo reaching --keep-running")
        match = re.search(r"demo: dashboard at (http://\S+)", log.read_text())
        assert match, log.read_text()
        url = match.group(1)

        browser.get(f"{url}/orchestrations")
        rows = browser.find_elements(By.CSS_SELECTOR, "#live tbody tr")
        assert len(rows) == 5
        for row in rows:
            assert "counter_workflow" in row.text
            assert "completed" in row.text
        assert "Showing 1–5 of 5 orchestrations" in live_text(browser)  # noqa: RUF001

        browser.get(f"{url}/entities?name=counter")
        values = {
            row.find_element(By.CSS_SELECTOR, ".id").text: row.find_element(
                By.CSS_SELECTOR, ".state"
            ).text
            for row in browser.find_elements(By.CSS_SELECTOR, "#live tbody tr")
        }
        expected = {"@counter@my-counter": "75"}
        expected |= {f"@counter@my-counter-orch-{number}": "12" for number in range(1, 6)}
        assert values == expected

        browser.get(f"{url}/orchestrations")
        browser.find_element(By.CSS_SELECTOR, "#live tbody tr .id a").click()
        wait_for(lambda: "/orchestrations/" in browser.current_url, 10, "detail page opened")
        history = browser.find_element(By.CSS_SELECTOR, "table.history").text
        assert history.count("Entity operation signaled") == 3
        assert "Entity operation called" in history
        assert "call returned 12" in history
        assert "Execution completed" in history
    finally:
        os.killpg(demo.pid, signal.SIGINT)
        assert demo.wait(timeout=30) == 0, log.read_text()


def test_markup_in_entity_shows_as_text(
    browser: WebDriver,
    dashboard: RunningDashboard,
    scheduler: Scheduler,
    test_worker: TaskHubGrpcWorker,
    unique_key: str,
) -> None:
    key = f"{unique_key}{MARKUP}"
    entity_id = EntityInstanceId("store", key)
    scheduler.client.signal_entity(entity_id, "set", input={"html": MARKUP})
    wait_for(lambda: stored_state(scheduler.client, entity_id), 30, "markup state applied")

    browser.get(f"{dashboard.url}/entities?name=store")
    first_load = live_text(browser)
    # The refresh swaps in fresh HTML with innerHTML, which is a second way in.
    wait_for(lambda: refreshes(browser) >= 1, 30, "one automatic refresh")

    for text in (first_load, live_text(browser)):
        assert f"@store@{key}" in text
        assert f'"html": "{MARKUP.replace(chr(34), chr(92) + chr(34))}"' in text
    assert browser.execute_script("return window.xssRan === undefined")
    assert browser.find_elements(By.CSS_SELECTOR, "#live img") == []
    assert browser.find_elements(By.CSS_SELECTOR, "#live script") == []


def test_refresh_keeps_filter_and_scroll(
    browser: WebDriver,
    dashboard: RunningDashboard,
    scheduler: Scheduler,
    test_worker: TaskHubGrpcWorker,
    unique_key: str,
) -> None:
    # Enough rows of multi-line state to make the page scroll.
    for number in range(30):
        scheduler.client.signal_entity(
            EntityInstanceId("store", f"{unique_key}-{number:02d}"),
            "set",
            input={"number": number, "lines": ["one", "two", "three"]},
        )
    last = EntityInstanceId("store", f"{unique_key}-29")
    wait_for(lambda: stored_state(scheduler.client, last), 30, "entities applied")

    browser.set_window_size(1000, 600)
    browser.get(f"{dashboard.url}/entities?name=store&key={unique_key}")
    browser.execute_script("window.pageMarker = 'still the same page'")
    typed = browser.find_element(By.NAME, "key")
    typed.send_keys("-typed")
    browser.execute_script("window.scrollTo(0, 400)")
    wait_for(lambda: browser.execute_script("return window.scrollY") == 400, 10, "scrolled")

    scheduler.client.signal_entity(
        EntityInstanceId("store", f"{unique_key}-zz"), "set", input={"new": True}
    )
    wait_for(
        lambda: f"@store@{unique_key}-zz" in live_text(browser), 30, "new entity shown by refresh"
    )

    assert browser.execute_script("return window.pageMarker") == "still the same page"
    assert browser.execute_script("return window.scrollY") == 400
    assert typed.get_attribute("value") == f"{unique_key}-typed"
    assert browser.current_url.endswith(f"/entities?name=store&key={unique_key}")
    assert "Showing 1–31 of 31 entities" in live_text(browser)  # noqa: RUF001


def test_banner_when_scheduler_stops(browser: WebDriver, tmp_path: Path) -> None:
    scheduler_port, dashboard_port = free_port(), free_port()
    scheduler = start_scheduler(scheduler_port, tmp_path / "scheduler.log")
    dashboard = Process(
        [PYTHON, "-m", "dashboard", "--port", str(dashboard_port), "--refresh", "0.5"],
        tmp_path / "dashboard.log",
        process_env(f"http://127.0.0.1:{scheduler_port}"),
    )
    try:
        wait_for(lambda: "Dashboard at" in dashboard.output(), 30, "dashboard start")
        browser.get(f"http://127.0.0.1:{dashboard_port}/orchestrations")
        banner = browser.find_element(By.ID, "banner")
        assert not banner.is_displayed()

        scheduler.stop()

        wait_for(banner.is_displayed, 30, "banner shown")
        assert banner.text.startswith(
            f"Cannot reach the scheduler at http://127.0.0.1:{scheduler_port}"
        )
        assert "stale" in str(browser.find_element(By.ID, "live").get_attribute("class"))
    finally:
        scheduler.kill()
        dashboard.stop()
