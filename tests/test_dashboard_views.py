"""The dashboard's pages over HTTP, and how the scheduler and `python -m dashboard` start it."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest
from durabletask.client import TaskHubGrpcClient
from durabletask.entities import EntityInstanceId
from durabletask.worker import TaskHubGrpcWorker
from markupsafe import escape

from dashboard.app import FRAGMENT_HEADER
from dashboard.server import RunningDashboard, start_dashboard
from sample.accounts import Account, audit
from sample.counter import counter_id
from tests.dashboard_support import (
    QUIET,
    Scheduler,
    http_get,
    stored_state,
)
from tests.processes import (
    PYTHON,
    Process,
    free_port,
    process_env,
    start_scheduler,
    wait_for,
)

pytestmark = pytest.mark.e2e

# The fixtures `scheduler`, `test_worker` and `dashboard`.
pytest_plugins = ["tests.dashboard_fixtures"]

MARKUP = '<script>window.xssRan = true</script><img src=x onerror="window.xssRan = true">'
FRAGMENT = {FRAGMENT_HEADER: "1"}


def escaped(text: str) -> str:
    """`text` as the templates write it into HTML."""
    return str(escape(text))


def test_orchestrations_page_empty(dashboard: RunningDashboard) -> None:
    response = http_get(f"{dashboard.url}/orchestrations")

    assert response.status == 200
    assert "No orchestrations" in response.body
    assert "<table" not in response.body
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_root_redirects_to_orchestrations(dashboard: RunningDashboard) -> None:
    response = http_get(f"{dashboard.url}/")

    assert response.status == 200
    assert "<h1>Orchestrations</h1>" in response.body


def test_orchestrations_page_lists_and_pages(
    dashboard: RunningDashboard, scheduler: Scheduler, unique_key: str
) -> None:
    ids = [f"{unique_key}-{number:03d}" for number in range(120)]
    for instance_id in ids:
        scheduler.client.schedule_new_orchestration("counter_workflow", instance_id=instance_id)

    first = http_get(f"{dashboard.url}/orchestrations?prefix={unique_key}")
    third = http_get(f"{dashboard.url}/orchestrations?prefix={unique_key}&page=3&status=pending")
    wrong_status = http_get(f"{dashboard.url}/orchestrations?status=completed")

    assert first.status == 200
    assert "Showing 1\N{EN DASH}50 of 120 orchestrations, newest first" in first.body
    assert first.body.index(ids[119]) < first.body.index(ids[118])
    assert f'href="/orchestrations?page=2&amp;prefix={unique_key}"' in first.body
    assert third.status == 200
    assert "Showing 101\N{EN DASH}120 of 120 orchestrations" in third.body
    assert f'data-instance-id="{ids[0]}"' in third.body
    assert f'data-instance-id="{ids[100]}"' not in third.body
    assert '<option value="pending" selected>' in third.body
    assert "No orchestrations" in wrong_status.body


def test_orchestrations_page_invalid_filter(dashboard: RunningDashboard) -> None:
    bad_status = http_get(f"{dashboard.url}/orchestrations?status=done")
    bad_page = http_get(f"{dashboard.url}/orchestrations?page=x", FRAGMENT)

    assert bad_status.status == 400
    assert "Invalid status &#39;done&#39;; use one of: running" in bad_status.body
    assert bad_page.status == 400
    assert bad_page.body == "Invalid page 'x': use a whole number such as 2."


def test_orchestration_page_shows_history(
    dashboard: RunningDashboard,
    scheduler: Scheduler,
    test_worker: TaskHubGrpcWorker,
    unique_key: str,
) -> None:
    instance_id = scheduler.client.schedule_new_orchestration("counter_workflow", input=unique_key)
    scheduler.client.wait_for_orchestration_completion(instance_id, timeout=30)

    response = http_get(f"{dashboard.url}/orchestrations/{instance_id}")

    assert response.status == 200
    assert '<span class="status status-completed">completed</span>' in response.body
    assert escaped(f"Counter '{unique_key}' final value: 12") in response.body
    assert response.body.count("Entity operation signaled") == 3
    assert response.body.count("Entity operation called") == 1
    assert "call returned 12" in response.body
    entity_link = f'<a href="/entities?name=counter&amp;key={unique_key}">@counter@{unique_key}</a>'
    assert response.body.count(entity_link) == 4


def test_orchestration_page_failed_and_terminated(
    dashboard: RunningDashboard,
    scheduler: Scheduler,
    test_worker: TaskHubGrpcWorker,
    unique_key: str,
) -> None:
    failed = scheduler.client.schedule_new_orchestration(
        "no_such_orchestrator", instance_id=f"{unique_key}-failed"
    )
    scheduler.client.wait_for_orchestration_completion(failed, timeout=30)
    waiting = scheduler.client.schedule_new_orchestration(
        "waiter", instance_id=f"{unique_key}-waiter"
    )
    scheduler.client.wait_for_orchestration_start(waiting, timeout=30)
    scheduler.client.terminate_orchestration(waiting, output="stopped by test")
    scheduler.client.wait_for_orchestration_completion(waiting, timeout=30)

    failure = http_get(f"{dashboard.url}/orchestrations/{failed}")
    terminated = http_get(f"{dashboard.url}/orchestrations/{waiting}")
    listing = http_get(f"{dashboard.url}/orchestrations?prefix={unique_key}")

    assert failure.status == 200
    assert '<span class="status status-failed">failed</span>' in failure.body
    assert "OrchestratorNotRegisteredError</code>" in failure.body
    assert "A &#39;no_such_orchestrator&#39; orchestrator was not registered." in failure.body
    assert "stack trace" in failure.body
    assert terminated.status == 200
    assert '<span class="status status-terminated">terminated</span>' in terminated.body
    assert "&#34;stopped by test&#34;" in terminated.body
    assert "Execution terminated" in terminated.body
    assert "status-failed" in listing.body
    assert "status-terminated" in listing.body


def test_orchestration_page_not_found(dashboard: RunningDashboard, unique_key: str) -> None:
    response = http_get(f"{dashboard.url}/orchestrations/{unique_key}")

    assert response.status == 404
    assert f"Orchestration &#39;{unique_key}&#39; not found on this scheduler." in response.body


def test_entities_page_shows_state_and_backlog(
    dashboard: RunningDashboard, scheduler: Scheduler, unique_key: str
) -> None:
    # No worker: both signals stay queued.
    scheduler.client.signal_entity(counter_id(unique_key), "add", input=1)
    scheduler.client.signal_entity(counter_id(unique_key), "add", input=2)

    response = http_get(f"{dashboard.url}/entities?name=counter&key={unique_key}")

    assert response.status == 200
    assert "Showing 1\N{EN DASH}1 of 1 entities" in response.body
    assert f'data-entity-id="@counter@{unique_key}"' in response.body
    assert '<td class="backlog">2</td>' in response.body
    assert '<span class="none">none</span>' in response.body


def test_entities_page_large_state(
    dashboard: RunningDashboard,
    scheduler: Scheduler,
    test_worker: TaskHubGrpcWorker,
    unique_key: str,
) -> None:
    value = {f"field-{number:04d}": {"n": number, "note": "<b>"} for number in range(2000)}
    entity_id = EntityInstanceId("store", unique_key)
    scheduler.client.signal_entity(entity_id, "set", input=value)
    wait_for(lambda: stored_state(scheduler.client, entity_id), 30, "large state applied")

    response = http_get(f"{dashboard.url}/entities?name=store&key={unique_key}")

    pretty = json.dumps(value, indent=2)
    assert response.status == 200
    assert f"<summary>{pretty.count(chr(10)) + 1} lines</summary>" in response.body
    assert escaped(pretty) in response.body
    assert "<b>" not in response.body


def test_entities_page_escapes_markup(
    dashboard: RunningDashboard,
    scheduler: Scheduler,
    test_worker: TaskHubGrpcWorker,
    unique_key: str,
) -> None:
    entity_id = EntityInstanceId("store", f"{unique_key}{MARKUP}")
    scheduler.client.signal_entity(entity_id, "set", input={"html": MARKUP})
    wait_for(lambda: stored_state(scheduler.client, entity_id), 30, "markup state applied")

    full = http_get(f"{dashboard.url}/entities?name=store&key={unique_key}")
    fragment = http_get(f"{dashboard.url}/entities?name=store&key={unique_key}", FRAGMENT)

    for body in (full.body, fragment.body):
        assert "<script>window" not in body
        assert "<img" not in body
        assert escaped(MARKUP) in body
    assert "<html" not in fragment.body
    assert fragment.body.lstrip().startswith('<p class="meta">')


def test_pages_report_unreachable_scheduler(unique_key: str) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    client = TaskHubGrpcClient(host_address=endpoint.removeprefix("http://"), logger=QUIET)
    running = start_dashboard(client, endpoint, port=0)
    try:
        for path in ("/orchestrations", "/entities", f"/orchestrations/{unique_key}"):
            page = http_get(f"{running.url}{path}")
            fragment = http_get(f"{running.url}{path}", FRAGMENT)
            assert page.status == 503, path
            assert f"Cannot reach the scheduler at {endpoint}" in page.body
            assert fragment.status == 503, path
            assert fragment.body.startswith(f"Cannot reach the scheduler at {endpoint}")
            assert fragment.headers["Content-Type"].startswith("text/plain")
    finally:
        running.stop()


# ------------------------------------------------------------ how the dashboard starts


def test_scheduler_serves_dashboard(tmp_path: Path) -> None:
    port, dashboard_port = free_port(), free_port()
    process = start_scheduler(
        port, tmp_path / "scheduler.log", "--dashboard-port", str(dashboard_port)
    )
    url = f"http://127.0.0.1:{dashboard_port}"
    try:
        wait_for(lambda: f"Dashboard at {url}" in process.output(), 15, "dashboard log line")
        health = http_get(f"{url}/healthz")
        assert health.status == 200
        assert json.loads(health.body) == {"endpoint": f"http://127.0.0.1:{port}"}
        assert http_get(f"{url}/entities").status == 200
    finally:
        assert process.stop() == 0
    assert "Local scheduler stopped" in process.output()


def test_scheduler_without_dashboard(tmp_path: Path) -> None:
    process = start_scheduler(free_port(), tmp_path / "scheduler.log", "--no-dashboard")
    assert process.stop() == 0
    assert "Dashboard" not in process.output()


def test_scheduler_runs_on_when_dashboard_port_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        dashboard_port = taken.getsockname()[1]
        process = start_scheduler(
            free_port(), tmp_path / "scheduler.log", "--dashboard-port", str(dashboard_port)
        )
        try:
            wait_for(lambda: "Dashboard not started" in process.output(), 15, "dashboard warning")
            assert process.running()
        finally:
            assert process.stop() == 0
    assert f"cannot listen on 127.0.0.1:{dashboard_port}" in process.output()
    assert "--dashboard-port" in process.output()


def test_scheduler_rejects_bad_dashboard_port() -> None:
    result = subprocess.run(
        [PYTHON, "-m", "local_scheduler", "--dashboard-port", "70000"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "--dashboard-port 70000 is out of range; use 0 to 65535" in result.stderr


def test_standalone_dashboard_reads_endpoint(scheduler: Scheduler, tmp_path: Path) -> None:
    port = free_port()
    process = Process(
        [PYTHON, "-m", "dashboard", "--port", str(port)],
        tmp_path / "dashboard.log",
        process_env(scheduler.endpoint),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: "Dashboard at" in process.output(), 30, "dashboard start")
        health = http_get(f"{url}/healthz")
        assert json.loads(health.body) == {"endpoint": scheduler.endpoint}
        assert http_get(f"{url}/orchestrations").status == 200
    finally:
        assert process.stop() == 0
    assert f"Dashboard at {url} for endpoint {scheduler.endpoint}" in process.output()
    assert "Dashboard stopped" in process.output()


def test_standalone_dashboard_rejects_bad_endpoint(tmp_path: Path) -> None:
    result = subprocess.run(
        [PYTHON, "-m", "dashboard", "--port", "0"],
        env=process_env("localhost:8080"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "ENDPOINT" in result.stderr


def test_entities_page_shows_accounts(
    dashboard: RunningDashboard, scheduler: Scheduler, unique_key: str
) -> None:
    # The class-based entity is listed like the counters, under its lowercased class name.
    worker = TaskHubGrpcWorker(host_address=scheduler.address, logger=QUIET)
    worker.add_entity(Account)
    worker.add_entity(audit)
    worker.start()
    try:
        account_id = EntityInstanceId("account", unique_key)
        scheduler.client.signal_entity(account_id, "deposit", input=250)
        wait_for(
            lambda: stored_state(scheduler.client, account_id) == 250,
            15,
            f"{account_id} reaching 250",
        )
    finally:
        worker.stop()

    response = http_get(f"{dashboard.url}/entities?name=account&key={unique_key}")

    assert response.status == 200
    assert f'data-entity-id="@account@{unique_key}"' in response.body
    assert "250" in response.body
