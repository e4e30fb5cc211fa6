"""The `counter` entity and the `counter_workflow` orchestrator.

Importing this module starts nothing: the worker registers both, and tests run
them on the SDK's in-process backend.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any

from durabletask import task
from durabletask.entities import EntityContext, EntityInstanceId

logger = logging.getLogger(__name__)

ENTITY_NAME = "counter"
OPERATIONS = ("add", "subtract", "get", "reset")


class CounterOperationError(ValueError):
    """An operation name or input the counter does not accept."""


def counter(ctx: EntityContext, input: Any) -> int:
    """Apply one operation to an integer counter and return its new value.

    `add` and `subtract` take an integer; `get` and `reset` take no input.
    A rejected operation raises before `set_state`, so the state stays as it was.
    """
    operation = ctx.operation
    value: int = ctx.get_state(int, 0)

    if operation == "add":
        value += _require_int(operation, input)
    elif operation == "subtract":
        value -= _require_int(operation, input)
    elif operation == "reset":
        value = 0
    elif operation != "get":
        raise CounterOperationError(
            f"Unknown operation {operation!r} on {ctx.entity_id}; "
            f"allowed operations: {', '.join(OPERATIONS)}."
        )

    if operation != "get":
        ctx.set_state(value)
    # Lazy %-formatting: the string is built only when INFO is enabled.
    if input is None:
        logger.info("%s %s -> %d", ctx.entity_id, operation, value)
    else:
        logger.info("%s %s %s -> %d", ctx.entity_id, operation, input, value)
    return value


def _require_int(operation: str, value: Any) -> int:
    # bool is a subclass of int in Python, but `add True` is a bug, not a 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise CounterOperationError(
            f"Invalid input {value!r} ({type(value).__name__}) for '{operation}'; "
            "it takes an integer such as 5."
        )
    return value


def counter_id(key: str) -> EntityInstanceId:
    """Return the entity instance ID `@counter@<key>`."""
    return EntityInstanceId(ENTITY_NAME, key)


def counter_workflow(
    ctx: task.OrchestrationContext, key: str
) -> Generator[task.Task[Any], Any, str]:
    """Signal three changes to one counter, then call `get` and report its value."""
    entity_id = counter_id(key)

    # Signals are one-way: the orchestrator does not wait for them to be applied.
    ctx.signal_entity(entity_id, "add", input=10)
    ctx.signal_entity(entity_id, "add", input=5)
    ctx.signal_entity(entity_id, "subtract", input=3)

    # The call is sent by the same orchestration after the three signals, and the
    # scheduler delivers one sender's messages to one entity in order, so `get`
    # runs after all three: 10 + 5 - 3 = 12 on a fresh key.
    value = yield ctx.call_entity(entity_id, "get")
    return f"Counter '{key}' final value: {value}"
