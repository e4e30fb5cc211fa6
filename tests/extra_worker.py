"""A worker process for tests: the sample's entity and orchestrator plus test orchestrators.

    python -m tests.extra_worker

It reads ENDPOINT and TASKHUB like worker.py and runs until SIGTERM. With
STALL_FILE set, every entity operation and orchestrator step first waits while
that file exists, so a test can kill the worker while it holds work items.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Generator
from pathlib import Path
from types import FrameType
from typing import Any

from durabletask import task
from durabletask.entities import EntityContext

from sample import counter as sample_counter
from sample.counter import counter_id
from sample.runtime import configure_logging, create_worker
from sample.settings import load_settings

logger = logging.getLogger("extra_worker")

STALL_FILE = os.environ.get("STALL_FILE")


def _stall() -> None:
    """Wait while STALL_FILE exists; write '<file>.held' first so the test knows."""
    if not STALL_FILE or not Path(STALL_FILE).exists():
        return
    Path(f"{STALL_FILE}.held").touch()
    while Path(STALL_FILE).exists():
        time.sleep(0.05)


def counter(ctx: EntityContext, input: Any) -> int:
    """The sample's counter entity, stalled while STALL_FILE exists."""
    _stall()
    return sample_counter.counter(ctx, input)


def counter_workflow(ctx: task.OrchestrationContext, key: str) -> Any:
    """The sample's counter_workflow, stalled while STALL_FILE exists."""
    if not ctx.is_replaying:
        _stall()
    return (yield from sample_counter.counter_workflow(ctx, key))


def add_one(
    ctx: task.OrchestrationContext, request: dict[str, Any]
) -> Generator[task.Task[Any], Any, int]:
    """Add 1 to a counter by a signal (`via` = "signal") or a call, then call `get`."""
    entity_id = counter_id(request["key"])
    if request["via"] == "signal":
        ctx.signal_entity(entity_id, "add", input=1)
    else:
        yield ctx.call_entity(entity_id, "add", input=1)
    value: int = yield ctx.call_entity(entity_id, "get")
    return value


def call_counter(
    ctx: task.OrchestrationContext, request: dict[str, Any]
) -> Generator[task.Task[Any], Any, dict[str, Any]]:
    """Call one counter operation and return {"value": ...} or {"error": ...}."""
    try:
        entity_id = counter_id(request["key"])
        value = yield ctx.call_entity(entity_id, request["operation"], input=request.get("input"))
    except (task.TaskFailedError, ValueError) as error:
        return {"error": str(error)}
    return {"value": value}


def text(ctx: EntityContext, input: Any) -> int:
    """A test entity with string state: `set` stores the input, `length` returns its length."""
    if ctx.operation == "set":
        ctx.set_state(input)
    value: str = ctx.get_state(str, "")
    return len(value)


def hold_lock(ctx: task.OrchestrationContext, key: str) -> Generator[task.Task[Any], Any, int]:
    """Lock a counter, read it when the `read` event arrives, release it on `release`."""
    entity_id = counter_id(key)
    with (yield ctx.lock_entities([entity_id])):
        ctx.set_custom_status("locked")
        yield ctx.wait_for_external_event("read")
        inside: int = yield ctx.call_entity(entity_id, "get")
        ctx.set_custom_status(f"read {inside}")
        yield ctx.wait_for_external_event("release")
    return inside


def main() -> int:
    configure_logging(verbose=False)
    settings = load_settings()
    worker = create_worker(settings)
    worker.add_entity(counter)
    worker.add_entity(text)
    for orchestrator in (counter_workflow, add_one, call_counter, hold_lock):
        worker.add_orchestrator(orchestrator)  # type: ignore[arg-type]

    stop_requested = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    worker.start()
    logger.info("Test worker started: %s", settings.describe())
    stop_requested.wait()
    worker.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
