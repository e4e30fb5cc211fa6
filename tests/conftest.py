"""Shared fixtures: a real scheduler, a real worker, unique entity keys.

By default the session starts its own local scheduler (`python -m local_scheduler`)
on a free loopback port. Set DTS_TEST_ENDPOINT to run the same tests against a
scheduler that is already running, such as the emulator at http://localhost:8080.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sample.runtime import scheduler_answers
from tests.processes import (
    EXTERNAL_ENDPOINT_VARIABLE,
    Process,
    free_port,
    start_scheduler,
    start_worker,
)


@pytest.fixture(scope="session")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Endpoint of the scheduler that the end-to-end tests use."""
    external = os.environ.get(EXTERNAL_ENDPOINT_VARIABLE)
    if external:
        if not scheduler_answers(external):
            pytest.fail(f"{EXTERNAL_ENDPOINT_VARIABLE}={external} does not answer; start it first")
        yield external
        return

    port = free_port()
    process = start_scheduler(port, tmp_path_factory.mktemp("scheduler") / "scheduler.log")
    yield f"http://127.0.0.1:{port}"
    process.stop()


@pytest.fixture(scope="session")
def worker(endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    """A worker shared by tests that do not stop it; keys are unique per test."""
    process = start_worker(endpoint, tmp_path_factory.mktemp("worker") / "worker.log")
    yield process
    process.stop()


@pytest.fixture
def private_endpoint(tmp_path: Path) -> Iterator[str]:
    """A scheduler of this test's own, for tests that must know which worker did the work.

    Against an external scheduler (DTS_TEST_ENDPOINT) these tests are skipped, because
    the shared worker, or another one, would take part of their work.
    """
    if os.environ.get(EXTERNAL_ENDPOINT_VARIABLE):
        pytest.skip(f"needs a scheduler with no other worker; {EXTERNAL_ENDPOINT_VARIABLE} is set")
    port = free_port()
    process = start_scheduler(port, tmp_path / "private-scheduler.log")
    yield f"http://127.0.0.1:{port}"
    process.stop()


@pytest.fixture
def unique_key(request: pytest.FixtureRequest) -> str:
    """An entity key no other test uses: the test's name plus a random suffix."""
    name = re.sub(r"[^A-Za-z0-9-]+", "-", request.node.name).strip("-")[:40]
    return f"{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI (CI=true) a skipped test fails the run: every check must really run there."""
    if os.environ.get("CI", "").lower() != "true":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    skipped = reporter.stats.get("skipped", [])
    if skipped and exitstatus == 0:
        reporter.write_line(f"CI=true: {len(skipped)} skipped tests count as failures", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
