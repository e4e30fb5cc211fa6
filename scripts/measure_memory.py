"""Measure the local scheduler's memory after many finished orchestrations.

    python scripts/measure_memory.py [--count 10000] [--retention SECONDS]

Starts `python -m local_scheduler` and worker.py on a free loopback port, runs
`counter_workflow` orchestrations (each on its own key), and prints the
scheduler's resident memory (VmRSS from /proc, so Linux only) before, right
after the last one finished, and once the retention has purged them.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from durabletask.client import OrchestrationStatus, TaskHubGrpcClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.processes import free_port, start_scheduler, start_worker, wait_for  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def run_one(client: TaskHubGrpcClient, number: int) -> str:
    """Run one orchestration and return its instance ID, or raise if it did not complete."""
    instance_id = client.schedule_new_orchestration("counter_workflow", input=f"memory-{number}")
    state = client.wait_for_orchestration_completion(instance_id, timeout=300)
    if state is None or state.runtime_status is not OrchestrationStatus.COMPLETED:
        raise RuntimeError(f"orchestration {instance_id} did not complete: {state}")
    return instance_id


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="orchestrations to run")
    parser.add_argument(
        "--retention", type=float, default=3600, help="the scheduler's --retention, in seconds"
    )
    args = parser.parse_args()

    log_dir = Path("/tmp") / f"measure-memory-{free_port()}"
    log_dir.mkdir()
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    scheduler = start_scheduler(port, log_dir / "scheduler.log", "--retention", str(args.retention))
    worker = start_worker(endpoint, log_dir / "worker.log")
    quiet = logging.getLogger("measure_memory")
    quiet.setLevel(logging.WARNING)
    client = TaskHubGrpcClient(host_address=endpoint, logger=quiet)
    try:
        before = rss_mb(scheduler.pid)
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=16) as pool:
            instance_ids = list(pool.map(lambda n: run_one(client, n), range(args.count)))
        elapsed = time.monotonic() - started
        after = rss_mb(scheduler.pid)
        print(f"{len(instance_ids)} orchestrations completed in {elapsed:.0f} s")
        print(f"scheduler RSS before: {before:.1f} MB, after the last one: {after:.1f} MB")

        if args.retention < 600:
            wait_for(
                lambda: client.get_orchestration_state(instance_ids[-1]) is None,
                args.retention * 2 + 60,
                "the last orchestration purged",
            )
            print(f"scheduler RSS once all were purged: {rss_mb(scheduler.pid):.1f} MB")
    finally:
        client.close()
        worker.stop()
        scheduler.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
