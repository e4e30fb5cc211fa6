"""`make demo`'s script: starts what is missing, reports, and cleans up after itself."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from sample.runtime import scheduler_answers
from tests.processes import PYTHON, ROOT, free_port, process_env, wait_for

pytestmark = pytest.mark.e2e


def start_demo(endpoint: str, log_path: Path, *args: str) -> subprocess.Popen[str]:
    with open(log_path, "w") as log:
        return subprocess.Popen(
            [PYTHON, "scripts/demo.py", *args],
            cwd=ROOT,
            env=process_env(endpoint),
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )


def test_demo_runs_and_stops_everything(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    log = tmp_path / "demo.log"
    demo = start_demo(endpoint, log)

    assert demo.wait(timeout=120) == 0, log.read_text()
    output = log.read_text()
    assert "demo: starting a local scheduler" in output
    assert "Counter 'my-counter' value: 75" in output
    assert output.count("final value: 12") == 5
    assert "worker | " in output
    assert "Worker stopped" in output
    assert "Local scheduler stopped" in output
    assert not scheduler_answers(endpoint)


def test_demo_returns_client_failure(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    log = tmp_path / "demo.log"
    demo = start_demo(endpoint, log, "--count", "-1")

    assert demo.wait(timeout=120) == 2, log.read_text()
    assert "--count -1 is negative" in log.read_text()
    assert "Local scheduler stopped" in log.read_text()
    assert not scheduler_answers(endpoint)


def test_demo_keep_running_stops_on_ctrl_c(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    log = tmp_path / "demo.log"
    demo = start_demo(endpoint, log, "--keep-running", "--count", "1")

    wait_for(lambda: "still running" in log.read_text(), 60, "demo reaching --keep-running")
    assert scheduler_answers(endpoint)

    # Ctrl+C in a terminal sends SIGINT to the whole foreground process group.
    os.killpg(demo.pid, signal.SIGINT)

    assert demo.wait(timeout=30) == 0, log.read_text()
    assert "Worker stopped" in log.read_text()
    assert not scheduler_answers(endpoint)


def test_demo_stops_everything_on_hangup(tmp_path: Path) -> None:
    # A closed terminal sends SIGHUP; the children run in sessions of their own and
    # would be left behind if the demo did not stop them.
    endpoint = f"http://127.0.0.1:{free_port()}"
    log = tmp_path / "demo.log"
    demo = start_demo(endpoint, log, "--keep-running", "--no-dashboard", "--count", "1")

    wait_for(lambda: "still running" in log.read_text(), 60, "demo reaching --keep-running")
    demo.send_signal(signal.SIGHUP)

    assert demo.wait(timeout=30) == 0, log.read_text()
    assert "Worker stopped" in log.read_text()
    assert "Local scheduler stopped" in log.read_text()
    assert not scheduler_answers(endpoint)
