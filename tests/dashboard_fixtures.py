"""Fixtures for the dashboard's tests; a test module loads them with pytest_plugins.

The tests run the real local scheduler as a process and talk to it over gRPC. A
worker inside the test process registers, besides the sample's counter, a
`store` entity whose state is whatever it is sent (markup, large JSON) and a
`waiter` orchestrator that stays running until terminated.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from durabletask.client import TaskHubGrpcClient
from durabletask.worker import TaskHubGrpcWorker

from dashboard.server import RunningDashboard, start_dashboard
from sample.counter import counter, counter_workflow
from tests.dashboard_support import QUIET, Scheduler, store, waiter
from tests.processes import free_port, start_scheduler


@pytest.fixture
def scheduler(tmp_path: Path) -> Iterator[Scheduler]:
    """A local scheduler process of this test's own, with no worker attached."""
    port = free_port()
    process = start_scheduler(port, tmp_path / "scheduler.log")
    endpoint = f"http://127.0.0.1:{port}"
    client = TaskHubGrpcClient(host_address=endpoint.removeprefix("http://"), logger=QUIET)
    yield Scheduler(endpoint, client)
    client.close()
    process.stop()


@pytest.fixture
def test_worker(scheduler: Scheduler) -> Iterator[TaskHubGrpcWorker]:
    """A worker in this process with the counter, the store entity and two orchestrators."""
    worker = TaskHubGrpcWorker(host_address=scheduler.address, logger=QUIET)
    worker.add_entity(counter)
    worker.add_entity(store)
    # The SDK types the generator's return value as Never; a str is what it records.
    worker.add_orchestrator(counter_workflow)  # type: ignore[arg-type]
    worker.add_orchestrator(waiter)  # type: ignore[arg-type]
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def dashboard(scheduler: Scheduler) -> Iterator[RunningDashboard]:
    """The dashboard served from this process on a free port, reading `scheduler`."""
    client = TaskHubGrpcClient(host_address=scheduler.address, logger=QUIET)
    running = start_dashboard(client, scheduler.endpoint, port=0, refresh_seconds=0.5)
    yield running
    running.stop()
