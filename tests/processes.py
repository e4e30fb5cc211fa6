"""Start and stop the sample's real processes for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from sample.runtime import scheduler_answers

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

# Set this to run the end-to-end tests against a scheduler that is already running,
# for example the emulator: DTS_TEST_ENDPOINT=http://localhost:8080
EXTERNAL_ENDPOINT_VARIABLE = "DTS_TEST_ENDPOINT"

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for(condition: Callable[[], T], timeout: float, message: str) -> T:
    """Return the first truthy result of `condition`, polling until `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    pause = 0.02
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s: {message}")
        time.sleep(pause)
        pause = min(pause * 2, 0.25)


def process_env(endpoint: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("ENDPOINT", "TASKHUB", "DURABLE_TASK_SCHEDULER_CONNECTION_STRING")
    }
    env["ENDPOINT"] = endpoint
    env["TASKHUB"] = os.environ.get("TASKHUB", "default")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class Process:
    """A child process whose combined output goes to a file, so a full pipe never blocks it."""

    def __init__(self, command: list[str], log_path: Path, env: Mapping[str, str] | None = None):
        self.log_path = log_path
        with open(log_path, "w") as log:
            self.popen = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def running(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 10) -> int:
        """Send SIGTERM and return the exit status; fail the test if it takes over `timeout` s."""
        if self.running():
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise AssertionError(
                f"process did not stop within {timeout:g} s:\n{self.output()}"
            ) from None

    def kill(self) -> None:
        if self.running():
            self.popen.kill()
            self.popen.wait()


def start_scheduler(port: int, log_path: Path, *extra_args: str) -> Process:
    # A test that wants the dashboard asks for it on a free port; 8082 may be in use.
    if not any(arg.startswith("--dashboard") for arg in extra_args):
        extra_args = ("--no-dashboard", *extra_args)
    process = Process([PYTHON, "-m", "local_scheduler", "--port", str(port), *extra_args], log_path)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: not process.running() or scheduler_answers(endpoint),
            15,
            f"local scheduler answering at {endpoint}",
        )
    except AssertionError:
        process.kill()
        raise
    if not process.running():
        raise AssertionError(
            f"local scheduler exited with {process.popen.returncode}:\n{process.output()}"
        )
    return process


def start_worker(
    endpoint: str,
    log_path: Path,
    extra_env: Mapping[str, str] | None = None,
    prefix: list[str] | None = None,
) -> Process:
    return Process(
        [*(prefix or []), PYTHON, "worker.py"], log_path, process_env(endpoint, extra_env)
    )


def run_client(
    endpoint: str,
    *args: str,
    extra_env: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "client.py", *args],
        cwd=ROOT,
        env=process_env(endpoint, extra_env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_extra_worker(
    endpoint: str, log_path: Path, extra_env: Mapping[str, str] | None = None
) -> Process:
    """Start tests/extra_worker.py: the sample's entity plus the tests' own orchestrators."""
    return Process([PYTHON, "-m", "tests.extra_worker"], log_path, process_env(endpoint, extra_env))
