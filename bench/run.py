"""Benchmark the sample's worker against a bare SDK worker on local schedulers.

    python -m bench [--quick] [--signals N] [--repetitions N] [--latency-samples N] [--out DIR]

Every scheduler and worker it measures is a process of its own on a free
loopback port, started and stopped by this program. It prints a table and
writes <out>/<name>.json and <out>/<name>.png.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report
from bench.measure import (
    apply_load,
    create_async_client,
    time_demo_client,
    time_orchestration,
    time_startup,
    wait_until_workers_ready,
)
from bench.processes import (
    BenchmarkError,
    Child,
    describe_machine,
    start_bench_worker,
    start_sample_worker,
    start_scheduler,
)
from bench.workers import ENTITY_CALLS

KEY_COUNTS = (1, 100)
# "load": timed while the client sends; "backlog": timed while paused workers catch up.
MODES = ("load", "backlog")
WORKER_COUNTS = (1, 2, 4)
DEFAULT_OUT = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Sizes:
    """How much work each figure gets; --quick shrinks it to finish in under a minute."""

    signals: int
    repetitions: int
    in_flight: int
    latency_samples: int
    demo_runs: int
    startup_runs: int


FULL = Sizes(
    signals=4000, repetitions=5, in_flight=100, latency_samples=40, demo_runs=5, startup_runs=5
)
QUICK = Sizes(
    signals=600, repetitions=2, in_flight=100, latency_samples=10, demo_runs=2, startup_runs=2
)


# Raw results by mode, then worker kind or count, then key count.
Nested = dict[str, Any]


def add_result(results: Nested, path: list[str], value: dict[str, float]) -> None:
    for step in path[:-1]:
        results = results.setdefault(step, {})
    results.setdefault(path[-1], []).append(value)


class Run:
    """One benchmark run: its schedulers, log folder, unique key prefix and raw results."""

    def __init__(self, sizes: Sizes, log_dir: Path) -> None:
        self.sizes = sizes
        self.log_dir = log_dir
        self.tag = uuid.uuid4().hex[:8]
        self.children: list[Child] = []
        self.raw: dict[str, Any] = {}
        self.worker_number = 0

    def log_path(self, name: str) -> Path:
        self.worker_number += 1
        return self.log_dir / f"{self.worker_number:02d}-{name}.log"

    def scheduler(self, name: str) -> str:
        child, endpoint = start_scheduler(self.log_dir, name)
        self.children.append(child)
        return endpoint

    def stop_all(self) -> None:
        for child in reversed(self.children):
            child.stop()


async def measure_startup(run: Run, endpoint: str) -> None:
    client = create_async_client(endpoint)
    seconds = []
    for index in range(run.sizes.startup_runs):
        key = f"start-{run.tag}-{index}"
        start = functools.partial(start_sample_worker, endpoint, run.log_path("startup-worker.py"))
        seconds.append(await time_startup(client, start, key))
    run.raw["startup_seconds"] = seconds
    await client.close()


async def measure_throughput(run: Run, bare_endpoint: str, sample_endpoint: str) -> None:
    """Alternate bare and sample measurements, so both see the same machine load."""
    workers = {
        "bare": start_bench_worker("bare", bare_endpoint, run.log_path("bare-worker")),
        "sample": start_sample_worker(sample_endpoint, run.log_path("worker.py")),
    }
    clients = {
        "bare": create_async_client(bare_endpoint),
        "sample": create_async_client(sample_endpoint),
    }
    try:
        for kind, worker in workers.items():
            await wait_until_workers_ready(
                clients[kind], [worker], f"tp-{run.tag}", kind == "sample"
            )

        results: Nested = {}
        for repetition in range(run.sizes.repetitions):
            order = ["bare", "sample"] if repetition % 2 == 0 else ["sample", "bare"]
            for keys, mode, kind in itertools.product(KEY_COUNTS, MODES, order):
                prefix = f"tp-{run.tag}-{mode}-{kind}-{keys}-{repetition}"
                load = await apply_load(
                    clients[kind],
                    prefix,
                    keys,
                    run.sizes.signals,
                    run.sizes.in_flight,
                    workers=[workers[kind]],
                    backlog=mode == "backlog",
                )
                add_result(results, [mode, kind, str(keys)], asdict(load))
        run.raw["throughput"] = results
        run.raw["worker_peak_rss_bytes"] = workers["sample"].peak_rss_bytes()
        run.raw["bare_worker_peak_rss_bytes"] = workers["bare"].peak_rss_bytes()
    finally:
        for kind, worker in workers.items():
            worker.stop()
            await clients[kind].close()


async def measure_scale_out(run: Run, endpoint: str) -> None:
    client = create_async_client(endpoint)
    results: Nested = {}
    for count in WORKER_COUNTS:
        workers = [
            start_sample_worker(endpoint, run.log_path(f"scale-{count}-worker.py"))
            for _ in range(count)
        ]
        try:
            await wait_until_workers_ready(client, workers, f"so-{run.tag}-{count}", True)
            for repetition in range(run.sizes.repetitions):
                for keys, mode in itertools.product(KEY_COUNTS, MODES):
                    prefix = f"so-{run.tag}-{mode}-{count}-{keys}-{repetition}"
                    load = await apply_load(
                        client,
                        prefix,
                        keys,
                        run.sizes.signals,
                        run.sizes.in_flight,
                        workers=workers,
                        backlog=mode == "backlog",
                    )
                    add_result(results, [mode, str(count), str(keys)], asdict(load))
        finally:
            for worker in workers:
                worker.stop()
    run.raw["scale_out"] = results
    await client.close()


async def measure_latency(run: Run, endpoint: str) -> None:
    """Interleave the three orchestrations one at a time, so each sample sees an idle worker."""
    worker = start_bench_worker("latency", endpoint, run.log_path("latency-worker"))
    client = create_async_client(endpoint)
    try:
        await wait_until_workers_ready(client, [worker], f"lat-{run.tag}", True)
        # Warm-up: the first orchestrations of each kind pay for imports and caches.
        for index in range(3):
            await time_orchestration(client, "noop", None)
            await time_orchestration(client, "counter_workflow", f"lat-{run.tag}-warm-{index}")
            await time_orchestration(client, "entity_calls", f"lat-{run.tag}-warm-{index}")

        samples: dict[str, list[float]] = {"noop": [], "counter_workflow": [], "entity_calls": []}
        for index in range(run.sizes.latency_samples):
            key = f"lat-{run.tag}-{index}"
            samples["noop"].append(await time_orchestration(client, "noop", None))
            samples["counter_workflow"].append(
                await time_orchestration(client, "counter_workflow", key)
            )
            samples["entity_calls"].append(await time_orchestration(client, "entity_calls", key))
        run.raw["latency_seconds"] = samples
        run.raw["entity_calls_per_orchestration"] = ENTITY_CALLS
    finally:
        worker.stop()
        await client.close()


async def measure_demo(run: Run, endpoint: str) -> None:
    worker = start_sample_worker(endpoint, run.log_path("demo-worker.py"))
    client = create_async_client(endpoint)
    try:
        await wait_until_workers_ready(client, [worker], f"demo-{run.tag}", True)
        seconds = []
        for index in range(run.sizes.demo_runs):
            key = f"demo-{run.tag}-{index}"
            seconds.append(time_demo_client(endpoint, key, run.log_path(f"client-{index}")))
        run.raw["demo_seconds"] = seconds
    finally:
        worker.stop()
        await client.close()


async def measure_all(run: Run) -> None:
    bare_endpoint = run.scheduler("bare")
    sample_endpoint = run.scheduler("sample")
    phases: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("worker start-up", lambda: measure_startup(run, sample_endpoint)),
        ("throughput", lambda: measure_throughput(run, bare_endpoint, sample_endpoint)),
        ("scale-out", lambda: measure_scale_out(run, sample_endpoint)),
        ("latency", lambda: measure_latency(run, bare_endpoint)),
        ("demo client", lambda: measure_demo(run, sample_endpoint)),
    ]
    for name, phase in phases:
        started = time.monotonic()
        print(f"bench: measuring {name}", file=sys.stderr, flush=True)
        await phase()
        print(f"bench: {name} took {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    run.raw["scheduler_peak_rss_bytes"] = {
        child.name: child.peak_rss_bytes() for child in run.children
    }


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, Sizes]:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    parser.add_argument("--signals", type=int, metavar="N", help="signals per throughput run")
    parser.add_argument(
        "--repetitions", type=int, metavar="N", help="repetitions of each throughput run"
    )
    parser.add_argument(
        "--latency-samples", type=int, metavar="N", help="orchestrations of each kind timed"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="folder for JSON and PNG (default: %(default)s)",
    )
    parser.add_argument(
        "--name", help="file name stem for the results (default: full-<time> or quick-<time>)"
    )
    args = parser.parse_args(argv)

    sizes = QUICK if args.quick else FULL
    overrides = {
        "signals": args.signals,
        "repetitions": args.repetitions,
        "latency_samples": args.latency_samples,
    }
    for field, value in overrides.items():
        if value is None:
            continue
        if value < 1:
            parser.error(f"--{field.replace('_', '-')} {value} must be 1 or more")
        sizes = Sizes(**{**asdict(sizes), field: value})
    if sizes.repetitions < 1 or sizes.signals < max(KEY_COUNTS):
        parser.error(f"--signals {sizes.signals} must be at least {max(KEY_COUNTS)}, one per key")
    return args, sizes


def main(argv: list[str] | None = None) -> int:
    args, sizes = parse_args(argv)
    started = datetime.now(UTC)
    name = args.name or f"{'quick' if args.quick else 'full'}-{started:%Y%m%dT%H%M%SZ}"
    machine = describe_machine()

    with tempfile.TemporaryDirectory(prefix="bench-logs-") as log_dir:
        run = Run(sizes, Path(log_dir))
        try:
            asyncio.run(measure_all(run))
        except BenchmarkError as error:
            print(f"bench: {error}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("bench: interrupted", file=sys.stderr)
            return 130
        finally:
            run.stop_all()

    machine["load_average_at_end"] = list(os.getloadavg())
    results = report.build_results(
        name=name,
        started=started,
        machine=machine,
        sizes=asdict(sizes),
        quick=args.quick,
        raw=run.raw,
    )
    print(report.format_table(results))
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = report.write_json(results, args.out / f"{name}.json")
    png_path = report.draw_chart(results, args.out / f"{name}.png")
    print(f"Results: {json_path}\nChart:   {png_path}")
    return 0
