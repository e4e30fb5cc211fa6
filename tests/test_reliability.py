"""Exact entity state under load, worker crashes, stops, scheduler restarts and locks.

Every test here runs a local scheduler process of its own, real worker processes
(worker.py, or tests/extra_worker.py where it needs the tests' own orchestrators)
and the SDK's client over gRPC on loopback.

Sizes default to the figures these tests were written for; LOAD_SCALE (a float,
default 1) scales the signal and orchestration counts for slow machines.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from durabletask.client import OrchestrationStatus, TaskHubGrpcClient

from sample.counter import counter_id
from tests.processes import (
    EXTERNAL_ENDPOINT_VARIABLE,
    PYTHON,
    Process,
    free_port,
    process_env,
    run_client,
    start_extra_worker,
    start_scheduler,
    start_worker,
    wait_for,
)

SCALE = float(os.environ.get("LOAD_SCALE", "1"))
SEEDS = (11, 22, 33)


def scaled(count: int) -> int:
    return max(1, round(count * SCALE))


pytestmark = pytest.mark.skipif(
    bool(os.environ.get(EXTERNAL_ENDPOINT_VARIABLE)),
    reason=f"needs its own scheduler processes; {EXTERNAL_ENDPOINT_VARIABLE} is set",
)


class Scheduler:
    """A scheduler process on a fixed port, so that it can be restarted at the same endpoint."""

    def __init__(self, log_dir: Path, *args: str) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._log_dir = log_dir
        self._args = args
        self._starts = 0
        self.process = self.start()

    def start(self) -> Process:
        self._starts += 1
        log = self._log_dir / f"scheduler-{self._starts}.log"
        self.process = start_scheduler(self.port, log, *self._args)
        return self.process


@pytest.fixture
def scheduler(tmp_path: Path) -> Iterator[Scheduler]:
    running = Scheduler(tmp_path)
    yield running
    running.process.stop()


@pytest.fixture
def client(scheduler: Scheduler) -> Iterator[TaskHubGrpcClient]:
    grpc_client = TaskHubGrpcClient(host_address=scheduler.endpoint)
    yield grpc_client
    grpc_client.close()


def value_of(client: TaskHubGrpcClient, key: str) -> int:
    metadata = client.get_entity(counter_id(key))
    return 0 if metadata is None else metadata.get_typed_state(int) or 0


def wait_for_values(client: TaskHubGrpcClient, expected: dict[str, int], timeout: float) -> None:
    def reached() -> bool:
        return all(value_of(client, key) == value for key, value in expected.items())

    try:
        wait_for(reached, timeout, "every key at its expected value")
    except AssertionError:
        wrong = {
            key: (value_of(client, key), value)
            for key, value in expected.items()
            if value_of(client, key) != value
        }
        raise AssertionError(f"keys at (actual, expected) values: {wrong}") from None


def test_200_orchestrations_two_workers_exact(
    scheduler: Scheduler, client: TaskHubGrpcClient, tmp_path: Path, unique_key: str
) -> None:
    count = scaled(200)
    workers = [start_extra_worker(scheduler.endpoint, tmp_path / f"worker-{n}.log") for n in (1, 2)]
    try:
        # Half add by signal, half by call, all to the same counter at once.
        requests = [
            {"key": unique_key, "via": "signal" if number % 2 else "call"}
            for number in range(count)
        ]
        with ThreadPoolExecutor(max_workers=8) as pool:
            instance_ids = list(
                pool.map(lambda r: client.schedule_new_orchestration("add_one", input=r), requests)
            )
            states = list(
                pool.map(
                    lambda i: client.wait_for_orchestration_completion(i, timeout=120), instance_ids
                )
            )

        statuses = [state.runtime_status if state else None for state in states]
        assert statuses.count(OrchestrationStatus.COMPLETED) == count, statuses
        wait_for_values(client, {unique_key: count}, 30)
        for worker in workers:
            assert "Test worker started" in worker.output()
    finally:
        for worker in workers:
            worker.stop()


def run_load_with_stop(
    scheduler: Scheduler,
    client: TaskHubGrpcClient,
    tmp_path: Path,
    key_prefix: str,
    *,
    seed: int,
    stop: str,
) -> None:
    """Send `add 1` signals over 50 keys, stop the worker mid-load, start another, check counts."""
    rng = random.Random(seed)
    keys = [f"{key_prefix}-{seed}-{n}" for n in range(50)]
    signals = [keys[n % len(keys)] for n in range(scaled(5000))]
    rng.shuffle(signals)
    stop_after = rng.randrange(len(signals) // 10, len(signals) * 9 // 10)
    workflow_keys = [f"{key_prefix}-{seed}-orch-{n}" for n in range(10)]

    first = start_worker(scheduler.endpoint, tmp_path / f"worker-{seed}-1.log")
    instance_ids = [
        client.schedule_new_orchestration("counter_workflow", input=key) for key in workflow_keys
    ]
    replacement: Process | None = None
    try:
        for number, key in enumerate(signals):
            client.signal_entity(counter_id(key), "add", input=1)
            if number == stop_after:
                if stop == "kill":
                    first.kill()
                else:
                    started = time.monotonic()
                    assert first.stop(timeout=5) == 0
                    assert time.monotonic() - started < 5
                replacement = start_worker(scheduler.endpoint, tmp_path / f"worker-{seed}-2.log")

        expected = dict.fromkeys(keys, 0)
        for key in signals:
            expected[key] += 1
        expected.update(dict.fromkeys(workflow_keys, 12))
        wait_for_values(client, expected, 120)
        for instance_id in instance_ids:
            state = client.wait_for_orchestration_completion(instance_id, timeout=60)
            assert state is not None
            assert state.runtime_status is OrchestrationStatus.COMPLETED, instance_id
    finally:
        first.kill()
        if replacement is not None:
            replacement.stop()


@pytest.mark.parametrize("seed", SEEDS)
def test_worker_sigkill_mid_load(
    scheduler: Scheduler, client: TaskHubGrpcClient, tmp_path: Path, unique_key: str, seed: int
) -> None:
    run_load_with_stop(scheduler, client, tmp_path, unique_key, seed=seed, stop="kill")


def test_worker_sigterm_mid_load(
    scheduler: Scheduler, client: TaskHubGrpcClient, tmp_path: Path, unique_key: str
) -> None:
    run_load_with_stop(scheduler, client, tmp_path, unique_key, seed=SEEDS[0], stop="term")


def test_killed_worker_batch_redelivered(
    scheduler: Scheduler, client: TaskHubGrpcClient, tmp_path: Path, unique_key: str
) -> None:
    stall = tmp_path / "stall"
    stall.touch()
    stalled = start_extra_worker(
        scheduler.endpoint, tmp_path / "stalled.log", {"STALL_FILE": str(stall)}
    )
    replacement: Process | None = None
    try:
        for _ in range(3):
            client.signal_entity(counter_id(unique_key), "add", input=1)
        instance_id = client.schedule_new_orchestration("counter_workflow", input=f"{unique_key}-w")
        held = Path(f"{stall}.held")
        wait_for(held.exists, 30, "the stalled worker holding a work item")
        stalled.kill()

        replacement = start_worker(scheduler.endpoint, tmp_path / "worker.log")
        wait_for_values(client, {unique_key: 3, f"{unique_key}-w": 12}, 60)
        state = client.wait_for_orchestration_completion(instance_id, timeout=60)
        assert state is not None
        assert state.runtime_status is OrchestrationStatus.COMPLETED
        assert "queued again" in scheduler.process.output()
    finally:
        stalled.kill()
        if replacement is not None:
            replacement.stop()


def test_locked_entity_waits_for_release(
    scheduler: Scheduler, client: TaskHubGrpcClient, tmp_path: Path, unique_key: str
) -> None:
    worker = start_extra_worker(scheduler.endpoint, tmp_path / "worker.log")
    entity_id = counter_id(unique_key)
    try:
        client.signal_entity(entity_id, "add", input=5)
        wait_for_values(client, {unique_key: 5}, 30)

        instance_id = client.schedule_new_orchestration("hold_lock", input=unique_key)

        def custom_status() -> str:
            state = client.get_orchestration_state(instance_id)
            return state.serialized_custom_status or "" if state else ""

        wait_for(lambda: "locked" in custom_status(), 30, "hold_lock holding the lock")

        # Queued before the orchestration's own `get`, so without isolation `get` sees 6.
        client.signal_entity(entity_id, "add", input=1)
        client.raise_orchestration_event(instance_id, "read")
        wait_for(lambda: "read" in custom_status(), 30, "hold_lock reading inside the lock")
        assert custom_status() == '"read 5"'
        assert value_of(client, unique_key) == 5

        client.raise_orchestration_event(instance_id, "release")
        state = client.wait_for_orchestration_completion(instance_id, timeout=30)
        assert state is not None
        assert state.runtime_status is OrchestrationStatus.COMPLETED
        assert state.get_output() == 5

        # Applied once the lock is released, and only once.
        wait_for_values(client, {unique_key: 6}, 30)
        client.signal_entity(entity_id, "add", input=10)
        wait_for_values(client, {unique_key: 16}, 30)
    finally:
        worker.stop()


def test_poison_operation_does_not_block(
    scheduler: Scheduler, client: TaskHubGrpcClient, tmp_path: Path, unique_key: str
) -> None:
    worker = start_worker(scheduler.endpoint, tmp_path / "worker.log")
    entity_id = counter_id(unique_key)
    try:
        for round_number in range(3):
            client.signal_entity(entity_id, "explode")
            client.signal_entity(entity_id, "add", input="not a number")
            client.signal_entity(entity_id, "add", input=1)
            wait_for_values(client, {unique_key: round_number + 1}, 30)
        wait_for(
            lambda: worker.output().count("Unknown operation 'explode'") >= 3,
            15,
            "the worker logging each failed operation",
        )
    finally:
        worker.stop()


def test_scheduler_restart_noticed(scheduler: Scheduler, tmp_path: Path, unique_key: str) -> None:
    worker = start_worker(scheduler.endpoint, tmp_path / "worker.log")
    try:
        assert run_client(scheduler.endpoint, unique_key, "--count", "1").returncode == 0

        scheduler.process.kill()
        wait_for(
            lambda: "Lost the connection to the scheduler" in worker.output(),
            30,
            "the worker logging the lost scheduler",
        )

        started = time.monotonic()
        down = run_client(scheduler.endpoint, unique_key, "--count", "1", timeout=30)
        assert down.returncode == 1
        assert f"Cannot reach the scheduler at {scheduler.endpoint}" in down.stderr
        assert "Traceback" not in down.stderr
        assert time.monotonic() - started < 20

        scheduler.start()
        wait_for(
            lambda: "Connected to the scheduler" in worker.output(),
            60,
            "the worker reconnecting",
        )
        # State is kept in memory only: the restarted scheduler has forgotten the key.
        with TaskHubGrpcClient(host_address=scheduler.endpoint) as fresh:
            assert fresh.get_entity(counter_id(unique_key)) is None
        back = run_client(scheduler.endpoint, f"{unique_key}-2", "--count", "1")
        assert back.returncode == 0, back.stderr
        assert "1 of 1 orchestrations completed" in back.stdout
    finally:
        worker.stop()


def test_client_waiting_when_scheduler_dies(
    scheduler: Scheduler, tmp_path: Path, unique_key: str
) -> None:
    # No worker: the client sends its signals and waits for them to be applied.
    log = tmp_path / "client.log"
    client_process = Process(
        [PYTHON, "client.py", unique_key, "--timeout", "120"], log, process_env(scheduler.endpoint)
    )
    wait_for(lambda: "Signalling" in client_process.output(), 30, "the client sending signals")
    scheduler.process.kill()

    status = client_process.popen.wait(timeout=30)
    assert status == 1
    assert f"Cannot reach the scheduler at {scheduler.endpoint}" in client_process.output()


def test_waiters_and_workers_all_served(
    scheduler: Scheduler, client: TaskHubGrpcClient, tmp_path: Path, unique_key: str
) -> None:
    waiters = 50
    workers = [start_worker(scheduler.endpoint, tmp_path / f"worker-{n}.log") for n in range(3)]
    instance_ids = [f"{unique_key}-{n}" for n in range(waiters)]
    try:
        with ThreadPoolExecutor(max_workers=waiters) as pool:
            # Every waiter holds a server thread until its orchestration finishes.
            futures = [
                pool.submit(client.wait_for_orchestration_completion, i, timeout=120)
                for i in instance_ids
            ]
            for number, instance_id in enumerate(instance_ids):
                client.schedule_new_orchestration(
                    "counter_workflow", input=f"{unique_key}-k{number}", instance_id=instance_id
                )
            states = [future.result() for future in futures]
        assert all(
            state is not None and state.runtime_status is OrchestrationStatus.COMPLETED
            for state in states
        )
    finally:
        for worker in workers:
            worker.stop()


def test_waiters_over_budget_rejected(tmp_path: Path, unique_key: str) -> None:
    # 16 threads: 14 for work-item streams and waits, 2 kept for short calls.
    small = Scheduler(tmp_path, "--max-threads", "16")
    client = TaskHubGrpcClient(host_address=small.endpoint)
    worker = start_worker(small.endpoint, tmp_path / "worker.log")
    waiters = 20
    instance_ids = [f"{unique_key}-{n}" for n in range(waiters)]
    errors: list[str] = []
    lock = threading.Lock()

    def wait(instance_id: str) -> OrchestrationStatus | None:
        try:
            state = client.wait_for_orchestration_completion(instance_id, timeout=120)
        except grpc.RpcError as error:
            with lock:
                errors.append(f"{error.code().name}: {error.details()}")  # type: ignore[attr-defined]
            return None
        return state.runtime_status if state else None

    try:
        wait_for(
            lambda: run_client(small.endpoint, unique_key, "--count", "1").returncode == 0,
            60,
            "worker ready",
        )
        with ThreadPoolExecutor(max_workers=waiters) as pool:
            futures = [pool.submit(wait, i) for i in instance_ids]
            wait_for(lambda: len(errors) >= waiters - 13, 30, "waiters over the cap rejected")
            # Short calls still get through while the long ones fill their share.
            for number, instance_id in enumerate(instance_ids):
                client.schedule_new_orchestration(
                    "counter_workflow", input=f"{unique_key}-k{number}", instance_id=instance_id
                )
            results = [future.result() for future in futures]
        completed = results.count(OrchestrationStatus.COMPLETED)
        assert completed + len(errors) == waiters
        assert completed >= 1
        assert all(error.startswith("RESOURCE_EXHAUSTED") for error in errors), errors
        assert all("--max-threads" in error for error in errors), errors
    finally:
        worker.stop()
        client.close()
        small.process.stop()
