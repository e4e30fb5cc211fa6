"""The measurements: each one drives real worker processes through the local scheduler."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from durabletask.client import AsyncTaskHubGrpcClient, OrchestrationStatus
from durabletask.entities import EntityInstanceId

from bench.processes import PYTHON, ROOT, BenchmarkError, Child
from sample.counter import counter_id

# Generous deadlines: the machine may be busy, and a timeout is an error, not a figure.
APPLY_TIMEOUT = 120.0
READY_TIMEOUT = 60.0
POLL_PAUSE = 0.005


def create_async_client(endpoint: str) -> AsyncTaskHubGrpcClient:
    """Create the SDK's asyncio client; its per-request INFO logs are switched off."""
    quiet = logging.getLogger("bench.client")
    quiet.setLevel(logging.WARNING)
    return AsyncTaskHubGrpcClient(host_address=endpoint, logger=quiet)


async def read_value(client: AsyncTaskHubGrpcClient, entity_id: EntityInstanceId) -> int:
    entity = await client.get_entity(entity_id)
    if entity is None:
        return 0
    return entity.get_typed_state(int) or 0


async def wait_for_values(
    client: AsyncTaskHubGrpcClient,
    expected: dict[str, int],
    timeout: float = APPLY_TIMEOUT,
    check: Callable[[], None] | None = None,
) -> None:
    """Wait until each counter `expected` names (key to value) has its value.

    The counters are read one at a time, staying on one until it is done, so the
    polling adds one request at a time to the scheduler's load, not one per key.
    """
    deadline = time.monotonic() + timeout
    for key, value in expected.items():
        while (current := await read_value(client, counter_id(key))) != value:
            if check is not None:
                check()
            if time.monotonic() > deadline:
                raise BenchmarkError(
                    f"timed out after {timeout:g} s waiting for {counter_id(key)} to reach "
                    f"{value}; it is {current}"
                )
            await asyncio.sleep(POLL_PAUSE)


@dataclass(frozen=True)
class Load:
    """One throughput measurement: `signals` signals of `add 1` spread over `keys` keys.

    `apply_seconds` runs from the first signal sent, or for a backlog from the
    moment the paused workers resume, until every counter shows its total.
    """

    signals: int
    send_seconds: float
    apply_seconds: float
    worker_cpu_seconds: float

    @property
    def applied_per_second(self) -> float:
        return self.signals / self.apply_seconds


async def apply_load(
    client: AsyncTaskHubGrpcClient,
    prefix: str,
    keys: int,
    signals: int,
    in_flight: int,
    *,
    workers: list[Child],
    backlog: bool = False,
) -> Load:
    """Send the signals with `in_flight` requests outstanding; time until all are applied.

    Without `backlog`, the clock runs while the client sends, so the figure is
    the rate of the whole path: client, scheduler and worker sharing the cores.
    With it, the workers are paused while the signals queue in the scheduler and
    the clock starts when they resume, so the figure is the workers' own rate.
    Either way the clock stops when every counter shows its total: this measures
    what the workers applied, not what the client sent. The CPU time the workers
    used meanwhile is recorded too, because it hardly depends on what else the
    machine runs.
    """
    names = [f"{prefix}-{index}" for index in range(keys)]
    ids = [counter_id(name) for name in names]
    next_index = 0

    async def sender() -> None:
        nonlocal next_index
        while next_index < signals:
            index = next_index
            next_index += 1
            await client.signal_entity(ids[index % keys], "add", input=1)

    if backlog:
        for worker in workers:
            worker.pause()
    cpu_before = sum(worker.cpu_seconds() for worker in workers)
    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(min(in_flight, signals))))
    sent = time.perf_counter() - started
    if backlog:
        started = time.perf_counter()
        for worker in workers:
            worker.resume()

    expected = {
        name: signals // keys + (1 if i < signals % keys else 0) for i, name in enumerate(names)
    }
    await wait_for_values(client, expected)
    applied = time.perf_counter() - started
    cpu = sum(worker.cpu_seconds() for worker in workers) - cpu_before
    return Load(signals, sent, applied, cpu)


async def wait_until_workers_ready(
    client: AsyncTaskHubGrpcClient, workers: list[Child], prefix: str, logged: bool
) -> None:
    """Wait until every worker has applied an operation.

    A worker that logs its operations (worker.py) is ready when its log shows one
    for a `<prefix>-ready-*` key; signals go to new keys until each log does. A
    worker that does not log is ready when one signal has been applied.
    """
    deadline = time.monotonic() + READY_TIMEOUT
    round_number = 0
    while True:
        for worker in workers:
            worker.check_running()
        round_number += 1
        keys = [f"{prefix}-ready-{round_number}-{index}" for index in range(4 * len(workers))]
        for key in keys:
            await client.signal_entity(counter_id(key), "add", input=1)

        def check() -> None:
            for worker in workers:
                worker.check_running()

        await wait_for_values(client, dict.fromkeys(keys, 1), READY_TIMEOUT, check)
        marker = f"@counter@{prefix}-ready-"
        if not logged or all(marker in worker.output() for worker in workers):
            return
        if time.monotonic() > deadline:
            idle = [w.name for w in workers if marker not in w.output()]
            raise BenchmarkError(f"workers never received work: {', '.join(idle)}")


async def time_startup(
    client: AsyncTaskHubGrpcClient, start: Callable[[], Child], key: str
) -> float:
    """Return seconds from launching a worker to its first applied operation.

    The signal is queued in the scheduler before the worker launches, so the time
    covers interpreter start, imports, connecting and one operation.
    """
    await client.signal_entity(counter_id(key), "add", input=1)
    started = time.perf_counter()
    worker = start()
    try:
        await wait_for_values(client, {key: 1}, READY_TIMEOUT, worker.check_running)
        return time.perf_counter() - started
    finally:
        worker.stop()


async def time_orchestration(client: AsyncTaskHubGrpcClient, name: str, input: str | None) -> float:
    """Return seconds from scheduling one orchestration to seeing it completed."""
    started = time.perf_counter()
    instance_id = await client.schedule_new_orchestration(name, input=input)
    state = await client.wait_for_orchestration_completion(instance_id, timeout=READY_TIMEOUT)
    elapsed = time.perf_counter() - started
    if state is None or state.runtime_status is not OrchestrationStatus.COMPLETED:
        status = "not found" if state is None else state.runtime_status.name
        raise BenchmarkError(f"orchestration {name} ({instance_id}) ended as {status}")
    return elapsed


def time_demo_client(endpoint: str, key: str, log_path: Path) -> float:
    """Return the wall time of one `python client.py <key>` run, as a user starts it."""
    env = dict(os.environ)
    env.pop("DURABLE_TASK_SCHEDULER_CONNECTION_STRING", None)
    env.update(ENDPOINT=endpoint, TASKHUB="default")
    started = time.perf_counter()
    result = subprocess.run(
        [PYTHON, "client.py", key],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=READY_TIMEOUT,
        check=False,
    )
    elapsed = time.perf_counter() - started
    log_path.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise BenchmarkError(
            f"client.py {key} exited with status {result.returncode}:\n{result.stdout}"
            f"{result.stderr}"
        )
    return elapsed
