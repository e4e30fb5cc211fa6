"""End to end: a real scheduler, worker.py and client.py as separate processes."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.processes import (
    PYTHON,
    ROOT,
    Process,
    free_port,
    process_env,
    run_client,
    start_worker,
    wait_for,
)

pytestmark = pytest.mark.e2e

FINAL_VALUE = re.compile(r"Counter '(?P<key>[^']+)' final value: (?P<value>-?\d+)")


def final_values(output: str) -> dict[str, int]:
    return {match["key"]: int(match["value"]) for match in FINAL_VALUE.finditer(output)}


def test_client_prints_75_then_twelves(endpoint: str, worker: Process, unique_key: str) -> None:
    result = run_client(endpoint, unique_key)

    assert result.returncode == 0, result.stderr
    assert f"Counter '{unique_key}' value: 75\n" in result.stdout
    assert final_values(result.stdout) == {f"{unique_key}-orch-{n}": 12 for n in range(1, 6)}
    assert "5 of 5 orchestrations completed" in result.stdout


def test_second_run_with_worker_restart(
    private_endpoint: str, unique_key: str, log_dir: Path
) -> None:
    first_worker = start_worker(private_endpoint, log_dir / "worker-1.log")
    first = run_client(private_endpoint, unique_key)
    assert first.returncode == 0, first.stderr
    assert f"Counter '{unique_key}' value: 75\n" in first.stdout

    # Stopping the worker between runs must lose nothing: state lives in the scheduler.
    assert first_worker.stop(timeout=5) == 0

    second_worker = start_worker(private_endpoint, log_dir / "worker-2.log")
    try:
        second = run_client(private_endpoint, unique_key)
    finally:
        second_worker.stop()
    assert second.returncode == 0, second.stderr
    assert f"Counter '{unique_key}' value: 150\n" in second.stdout
    assert set(final_values(second.stdout).values()) == {24}
    assert len(final_values(second.stdout)) == 5


def test_worker_logs_each_operation(private_endpoint: str, unique_key: str, log_dir: Path) -> None:
    worker = start_worker(private_endpoint, log_dir / "worker.log")
    try:
        result = run_client(private_endpoint, unique_key, "--count", "1")
        assert result.returncode == 0, result.stderr
        wait_for(
            lambda: f"@counter@{unique_key}-orch-1 get -> 12" in worker.output(),
            10,
            "worker logging the get operation",
        )
    finally:
        worker.stop()
    output = worker.output()
    assert f"@counter@{unique_key} add 100 -> 100" in output
    assert f"@counter@{unique_key} subtract 25 -> 75" in output
    assert f"@counter@{unique_key}-orch-1 subtract 3 -> 12" in output


def wait_until_connected(worker: Process, endpoint: str, unique_key: str) -> None:
    """Prove the worker processes work: a one-orchestration client run completes."""
    result = run_client(endpoint, unique_key, "--count", "1")
    assert result.returncode == 0, result.stderr + worker.output()


def test_sigterm_stops_worker_quickly(
    private_endpoint: str, unique_key: str, log_dir: Path
) -> None:
    worker = start_worker(private_endpoint, log_dir / "worker.log")
    wait_until_connected(worker, private_endpoint, unique_key)

    started = time.monotonic()
    status = worker.stop(timeout=5)
    elapsed = time.monotonic() - started

    assert status == 0, worker.output()
    assert elapsed < 5
    assert "Received SIGTERM" in worker.output()
    assert "Worker stopped" in worker.output()
    assert "Traceback" not in worker.output()


def test_sigint_stops_worker_like_ctrl_c(
    private_endpoint: str, unique_key: str, log_dir: Path
) -> None:
    worker = start_worker(private_endpoint, log_dir / "worker.log")
    wait_until_connected(worker, private_endpoint, unique_key)

    worker.popen.send_signal(2)  # SIGINT, as Ctrl+C sends
    assert worker.popen.wait(timeout=5) == 0
    assert "Worker stopped" in worker.output()
    assert "KeyboardInterrupt" not in worker.output()


def can_unshare() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    probe = subprocess.run(
        [unshare, "--pid", "--fork", "--mount-proc", "true"], capture_output=True, check=False
    )
    return probe.returncode == 0


@pytest.mark.skipif(
    not can_unshare(), reason="needs root and util-linux unshare for a PID namespace"
)
def test_sigterm_stops_worker_as_pid_1(
    private_endpoint: str, unique_key: str, log_dir: Path
) -> None:
    # As PID 1 a process gets no default SIGTERM action, as in a container.
    worker = start_worker(
        private_endpoint,
        log_dir / "worker.log",
        prefix=["unshare", "--pid", "--fork", "--mount-proc", "--kill-child=SIGKILL"],
    )
    children: list[str] = []
    try:
        wait_until_connected(worker, private_endpoint, unique_key)

        # unshare forks the worker, which is PID 1 inside the new namespace. Signal it
        # directly, as a container runtime does; unshare then exits with its status.
        children = Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()
        assert len(children) == 1, children
        pid_1_status = Path(f"/proc/{children[0]}/status").read_text()
        assert re.search(r"^NSpid:\s+\d+\s+1$", pid_1_status, re.MULTILINE), pid_1_status

        started = time.monotonic()
        os.kill(int(children[0]), signal.SIGTERM)
        status = worker.popen.wait(timeout=5)
    finally:
        # A failed check must not leave the worker behind: killing unshare with
        # SIGKILL would not reach its child.
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(child), signal.SIGKILL)
        worker.kill()

    assert status == 0, worker.output()
    assert time.monotonic() - started < 5
    assert "Worker stopped" in worker.output()


def test_client_without_scheduler_fails_fast() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = run_client(endpoint, "nobody-home", timeout=30)
    elapsed = time.monotonic() - started

    assert result.returncode != 0
    assert elapsed < 10
    assert f"Cannot reach the scheduler at {endpoint}" in result.stderr


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"ENDPOINT": "localhost:8080"}, "ENDPOINT is invalid"),
        ({"TASKHUB": ""}, "TASKHUB is empty"),
        (
            {
                "DURABLE_TASK_SCHEDULER_CONNECTION_STRING": "Endpoint=http://localhost:8080;TaskHub=default"
            },
            "DURABLE_TASK_SCHEDULER_CONNECTION_STRING is missing Authentication=",
        ),
    ],
)
@pytest.mark.parametrize("program", ["worker.py", "client.py"])
def test_invalid_settings_fail_at_start(
    program: str, variables: dict[str, str], expected: str
) -> None:
    env = process_env("http://127.0.0.1:1", variables)
    result = subprocess.run(
        [PYTHON, program],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("", "must not be empty"),
        ("a@b", "must not contain '@'"),
        ("@counter", "must not contain '@'"),
    ],
)
def test_bad_key_rejected(key: str, expected: str) -> None:
    result = run_client("http://127.0.0.1:1", key, timeout=30)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "variables", "expected"),
    [
        (["--count", "-1"], {}, "--count -1 is negative"),
        (["--timeout", "0"], {}, "--timeout 0.0 must be greater than 0"),
        (["--interval", "-2"], {}, "--interval -2.0 must be from 0 to 86400 seconds"),
        (["--interval", "inf"], {}, "--interval inf must be from 0 to 86400 seconds"),
        (["--timeout", "nan"], {}, "--timeout nan must be greater than 0 and at most 86400"),
        (["--count", "99999999999999999999"], {}, "is too large; use at most 10000"),
        ([], {"ORCHESTRATION_INTERVAL": "soon"}, "ORCHESTRATION_INTERVAL='soon' is not a number"),
        (
            ["--loop"],
            {"ORCHESTRATION_INTERVAL": "1e10"},
            "ORCHESTRATION_INTERVAL='1e10' must be from",
        ),
        (
            [],
            {"ORCHESTRATION_INTERVAL": "-1"},
            "ORCHESTRATION_INTERVAL='-1' must be from 0 to 86400",
        ),
    ],
)
def test_bad_client_options_rejected(
    args: list[str], variables: dict[str, str], expected: str
) -> None:
    result = run_client("http://127.0.0.1:1", *args, extra_env=variables, timeout=30)
    assert result.returncode == 2
    assert expected in result.stderr


def test_client_help_lists_options() -> None:
    result = run_client("http://127.0.0.1:1", "--help", timeout=30)
    assert result.returncode == 0
    for option in (
        "--count",
        "--interval",
        "--timeout",
        "--verbose",
        "--loop",
        "ORCHESTRATION_INTERVAL",
    ):
        assert option in result.stdout


def test_interval_spaces_schedules(endpoint: str, worker: Process, unique_key: str) -> None:
    result = run_client(
        endpoint, unique_key, "--count", "3", extra_env={"ORCHESTRATION_INTERVAL": "0.4"}
    )
    assert result.returncode == 0, result.stderr

    # Two pauses of 0.4 s sit between three schedules, so the round cannot be shorter.
    match = re.search(r"3 of 3 orchestrations completed in (\d+\.\d+) s", result.stdout)
    assert match is not None, result.stdout
    assert float(match[1]) >= 0.8


def test_default_output_hides_sdk_info(endpoint: str, worker: Process, unique_key: str) -> None:
    quiet = run_client(endpoint, unique_key, "--count", "1")
    verbose = run_client(endpoint, unique_key + "-v", "--count", "1", "--verbose")

    assert quiet.returncode == 0
    assert verbose.returncode == 0
    assert "durabletask" not in quiet.stderr
    assert "INFO durabletask.client:" in verbose.stderr


def test_client_times_out_without_worker(private_endpoint: str, unique_key: str) -> None:
    # With no worker the signals stay queued, and the client gives up at its timeout.
    started = time.monotonic()
    result = run_client(private_endpoint, unique_key, "--timeout", "2")
    elapsed = time.monotonic() - started

    assert result.returncode == 1
    assert elapsed < 15
    assert f"Timed out waiting for @counter@{unique_key} to reach 75" in result.stderr
    assert "Is worker.py running" in result.stderr


def test_second_scheduler_on_same_port_fails(private_endpoint: str) -> None:
    port = private_endpoint.rsplit(":", 1)[1]
    result = subprocess.run(
        [PYTHON, "-m", "local_scheduler", "--port", port, "--no-dashboard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_loop_client_stops_promptly_without_worker(
    private_endpoint: str, unique_key: str, log_dir: Path
) -> None:
    # With no worker the round waits for its signals; SIGTERM must still end it at once.
    client = Process(
        [PYTHON, "client.py", unique_key, "--loop", "--timeout", "600"],
        log_dir / "client.log",
        process_env(private_endpoint),
    )
    try:
        wait_for(lambda: "Round 1 starting" in client.output(), 15, "the first round starting")
        started = time.monotonic()
        status = client.stop(timeout=5)
    finally:
        client.kill()

    assert status == 0, client.output()
    assert time.monotonic() - started < 5
    assert "Received SIGTERM; stopped during round 1" in client.output()
