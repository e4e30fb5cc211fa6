"""Worker processes that the benchmark runs beside the sample's own worker.py.

    python -m bench.workers bare       # a bare counter entity, no logging
    python -m bench.workers latency    # the sample's registration plus two reference orchestrators

Both read ENDPOINT and TASKHUB like worker.py, and stop on SIGTERM or Ctrl+C
after finishing the work items in hand.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Generator
from types import FrameType
from typing import Any

from durabletask import task
from durabletask.azuremanaged.worker import DurableTaskSchedulerWorker
from durabletask.entities import EntityContext

from sample.counter import counter, counter_id, counter_workflow
from sample.runtime import configure_logging, create_worker
from sample.settings import load_settings

# Sequential call_entity round trips made by one `entity_calls` orchestration.
ENTITY_CALLS = 5


def bare_counter(ctx: EntityContext, input: Any) -> int:
    """Add the input to an integer state: the least an entity operation can do."""
    value: int = ctx.get_state(int, 0) + (input or 0)
    ctx.set_state(value)
    return value


def noop(ctx: task.OrchestrationContext, _: Any) -> None:
    """Do nothing: the floor for an orchestration's schedule-to-completion time."""
    return None


def entity_calls(ctx: task.OrchestrationContext, key: str) -> Generator[task.Task[Any], Any, int]:
    """Call `get` on one counter ENTITY_CALLS times in a row and return the last value."""
    value = 0
    for _ in range(ENTITY_CALLS):
        value = yield ctx.call_entity(counter_id(key), "get")
    return value


def create_bare_worker() -> DurableTaskSchedulerWorker:
    """Create the SDK's worker with the sample's settings but none of its logging."""
    settings = load_settings()
    quiet = logging.getLogger("bench.bare")
    quiet.setLevel(logging.WARNING)
    worker = DurableTaskSchedulerWorker(
        host_address=settings.endpoint,
        taskhub=settings.taskhub,
        token_credential=None,
        secure_channel=settings.secure,
        logger=quiet,
    )
    worker.add_entity(bare_counter, name="counter")
    return worker


def create_latency_worker() -> DurableTaskSchedulerWorker:
    """Create a worker set up as worker.py's, with `noop` and `entity_calls` added."""
    configure_logging(verbose=False)
    worker = create_worker(load_settings())
    worker.add_entity(counter)
    worker.add_orchestrator(counter_workflow)  # type: ignore[arg-type]
    worker.add_orchestrator(noop)
    worker.add_orchestrator(entity_calls)  # type: ignore[arg-type]
    return worker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.workers", description=__doc__)
    parser.add_argument("kind", choices=("bare", "latency"), help="which worker to run")
    args = parser.parse_args(argv)

    worker = create_bare_worker() if args.kind == "bare" else create_latency_worker()
    stop_requested = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop_requested.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    worker.start()
    stop_requested.wait()
    worker.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
