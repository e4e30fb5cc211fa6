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

# The Durable Task Scheduler accepts instance IDs of at most 100 printable ASCII
# characters, and an entity's instance ID is `@counter@<key>`.
MAX_INSTANCE_ID_LENGTH = 100
MAX_KEY_LENGTH = MAX_INSTANCE_ID_LENGTH - len(f"@{ENTITY_NAME}@")


class CounterOperationError(ValueError):
    """An operation name or input the counter does not accept."""


class InvalidKeyError(ValueError):
    """An entity key the scheduler would not accept in an instance ID."""


def check_key(key: Any) -> str:
    """Return the key, or raise InvalidKeyError naming it and saying how to fix it."""
    example = "Use a key such as my-counter."
    if not isinstance(key, str):
        raise InvalidKeyError(
            f"Invalid entity key {key!r} ({type(key).__name__}): it must be a string. {example}"
        )
    if not key:
        raise InvalidKeyError(f"Invalid entity key '': it must not be empty. {example}")
    if "@" in key:
        raise InvalidKeyError(
            f"Invalid entity key {key!r}: it must not contain '@', which separates the "
            f"entity name from the key in '@{ENTITY_NAME}@<key>'. {example}"
        )
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKeyError(
            f"Invalid entity key {key[:20]!r}... ({len(key)} characters): it may have at most "
            f"{MAX_KEY_LENGTH}, because the scheduler limits the instance ID "
            f"'@{ENTITY_NAME}@<key>' to {MAX_INSTANCE_ID_LENGTH} characters."
        )
    for position, character in enumerate(key):
        if not " " <= character <= "~":
            raise InvalidKeyError(
                f"Invalid entity key {key!r}: character {character!r} at position {position} "
                "is not printable ASCII, which the scheduler requires in instance IDs. "
                f"{example}"
            )
    return key


def counter(ctx: EntityContext, input: Any) -> int:
    """Apply one operation to an integer counter and return its new value.

    `add` and `subtract` take an integer; `get` and `reset` take no input.
    A rejected operation raises before `set_state`, so the state stays as it was.
    Keys that the scheduler would reject are rejected here too, for clients that
    signal the entity without checking them.
    """
    check_key(ctx.entity_id.key)
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
    entity_id = counter_id(check_key(key))

    # Signals are one-way: the orchestrator does not wait for them to be applied.
    ctx.signal_entity(entity_id, "add", input=10)
    ctx.signal_entity(entity_id, "add", input=5)
    ctx.signal_entity(entity_id, "subtract", input=3)

    # The call is sent by the same orchestration after the three signals, and the
    # scheduler delivers one sender's messages to one entity in order, so `get`
    # runs after all three: 10 + 5 - 3 = 12 on a fresh key.
    value = yield ctx.call_entity(entity_id, "get")
    return f"Counter '{key}' final value: {value}"
