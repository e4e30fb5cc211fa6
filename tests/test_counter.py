"""The counter entity and counter_workflow, run in this process on the SDK's in-memory backend."""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterator
from typing import Any

import pytest
from durabletask import task
from durabletask.client import OrchestrationStatus, TaskHubGrpcClient
from durabletask.worker import TaskHubGrpcWorker

from local_scheduler.server import start_scheduler
from sample.counter import counter, counter_id, counter_workflow
from tests.processes import wait_for


def call_counter(
    ctx: task.OrchestrationContext, request: dict[str, Any]
) -> Generator[Any, Any, Any]:
    """Test orchestrator: call one counter operation and return its result or failure."""
    entity_id = counter_id(request["key"])
    try:
        value = yield ctx.call_entity(entity_id, request["operation"], input=request.get("input"))
    except task.TaskFailedError as error:
        # The SDK wraps the entity's exception; the inner failure names the original type.
        inner = error.details.inner_failure
        return {"error": error.details.message, "type": inner.error_type if inner else None}
    return {"value": value}


@pytest.fixture(scope="module")
def client() -> Iterator[TaskHubGrpcClient]:
    scheduler = start_scheduler(port=0)
    endpoint = f"http://{scheduler.address}"
    worker = TaskHubGrpcWorker(host_address=endpoint)
    worker.add_entity(counter)
    worker.add_orchestrator(counter_workflow)  # type: ignore[arg-type]
    worker.add_orchestrator(call_counter)
    worker.start()
    grpc_client = TaskHubGrpcClient(host_address=endpoint)
    yield grpc_client
    grpc_client.close()
    worker.stop()
    scheduler.stop()


def new_key() -> str:
    return f"unit-{uuid.uuid4().hex[:12]}"


def call(client: TaskHubGrpcClient, key: str, operation: str, input: Any = None) -> Any:
    request = {"key": key, "operation": operation, "input": input}
    instance_id = client.schedule_new_orchestration(call_counter, input=request)
    state = client.wait_for_orchestration_completion(instance_id, timeout=30)
    assert state is not None
    assert state.runtime_status is OrchestrationStatus.COMPLETED, state.failure_details
    return state.get_output()


def stored_value(client: TaskHubGrpcClient, key: str) -> int | None:
    metadata = client.get_entity(counter_id(key))
    return None if metadata is None else metadata.get_typed_state(int)


def test_add_subtract_get_reset(client: TaskHubGrpcClient) -> None:
    key = new_key()
    assert call(client, key, "get") == {"value": 0}
    assert call(client, key, "add", 7) == {"value": 7}
    assert call(client, key, "subtract", 10) == {"value": -3}
    assert call(client, key, "get") == {"value": -3}
    assert call(client, key, "reset") == {"value": 0}
    assert stored_value(client, key) == 0


@pytest.mark.parametrize(
    ("operation", "input", "expected"),
    [
        ("multiply", 2, "Unknown operation 'multiply'"),
        ("Add", 2, "Unknown operation 'Add'"),
        ("add", "5", "Invalid input '5' (str) for 'add'"),
        ("add", 2.5, "Invalid input 2.5 (float) for 'add'"),
        ("add", True, "Invalid input True (bool) for 'add'"),
        ("subtract", None, "Invalid input None (NoneType) for 'subtract'"),
        ("subtract", [1], "Invalid input [1] (list) for 'subtract'"),
    ],
)
def test_bad_operation_keeps_state(
    client: TaskHubGrpcClient, operation: str, input: Any, expected: str
) -> None:
    key = new_key()
    call(client, key, "add", 42)

    result = call(client, key, operation, input)

    assert expected in result["error"]
    assert "add, subtract, get, reset" in result["error"] or "takes an integer" in result["error"]
    assert result["type"].endswith("CounterOperationError")
    assert stored_value(client, key) == 42


def test_signalled_bad_operation_keeps_state(client: TaskHubGrpcClient) -> None:
    key = new_key()
    entity_id = counter_id(key)
    client.signal_entity(entity_id, "add", input=5)
    client.signal_entity(entity_id, "add", input="five")
    client.signal_entity(entity_id, "explode")
    client.signal_entity(entity_id, "add", input=1)

    # The good signals on either side of the bad ones are applied; the bad ones change nothing.
    wait_for(lambda: stored_value(client, key) == 6, 15, f"{entity_id} reaching 6")
    assert call(client, key, "get") == {"value": 6}


def test_workflow_returns_twelve_on_fresh_key(client: TaskHubGrpcClient) -> None:
    key = new_key()
    instance_id = client.schedule_new_orchestration(counter_workflow, input=key)  # type: ignore[arg-type]
    state = client.wait_for_orchestration_completion(instance_id, timeout=30)
    assert state is not None
    assert state.runtime_status is OrchestrationStatus.COMPLETED
    assert state.get_output() == f"Counter '{key}' final value: 12"


def test_workflow_adds_twelve_to_existing_value(client: TaskHubGrpcClient) -> None:
    key = new_key()
    call(client, key, "add", 30)
    instance_id = client.schedule_new_orchestration(counter_workflow, input=key)  # type: ignore[arg-type]
    state = client.wait_for_orchestration_completion(instance_id, timeout=30)
    assert state is not None
    assert state.get_output() == f"Counter '{key}' final value: 42"
