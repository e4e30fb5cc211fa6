"""Bad keys, inputs, operations and large state: a clear error or a correct result.

One table, run against a scheduler process and tests/extra_worker.py, whose
`call_counter` orchestrator returns the counter's result or its error message.
Keys are also passed to client.py, which must reject them before connecting.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from durabletask.client import OrchestrationStatus, TaskHubGrpcClient
from durabletask.entities import EntityInstanceId

from sample.counter import counter_id
from tests.processes import (
    EXTERNAL_ENDPOINT_VARIABLE,
    free_port,
    run_client,
    start_extra_worker,
    start_scheduler,
    wait_for,
)

pytestmark = pytest.mark.skipif(
    bool(os.environ.get(EXTERNAL_ENDPOINT_VARIABLE)),
    reason=f"needs its own scheduler process; {EXTERNAL_ENDPOINT_VARIABLE} is set",
)

# Just under the Durable Task Scheduler's 1 MB limit on entity state, with room
# for the JSON quotes.
NEAR_LIMIT = 1_000_000 - 16


@dataclass(frozen=True)
class Case:
    key: str
    operation: str
    input: Any
    expected: str  # an error message fragment, or "value=<n>" for a correct result
    # The SDK's error when the orchestrator builds an entity instance ID it rejects.
    sdk_expected: str | None = None


PRESET = 42

CASES = {
    # Keys: client.py rejects them, and so does the entity when a client skips the check.
    "empty key": Case("", "add", 1, "must not be empty", "Entity key cannot be empty"),
    "key with @": Case("a@b", "add", 1, "must not contain '@'", "cannot contain '@'"),
    "key over 100 characters": Case("k" * 101, "add", 1, "at most 91"),
    "key of 92 characters": Case("k" * 92, "add", 1, "at most 91"),
    "non-ASCII key": Case("zähler", "add", 1, "is not printable ASCII"),
    "key with a control character": Case("tab\there", "add", 1, "is not printable ASCII"),
    "key with a newline": Case("line\nbreak", "add", 1, "is not printable ASCII"),
    # Inputs.
    "string input": Case("ok", "add", "5", "Invalid input '5' (str)"),
    "float input": Case("ok", "add", 2.5, "Invalid input 2.5 (float)"),
    "bool input": Case("ok", "add", True, "Invalid input True (bool)"),
    "null input": Case("ok", "subtract", None, "Invalid input None (NoneType)"),
    "huge integer": Case("ok", "add", 10**30, f"value={PRESET + 10**30}"),
    "huge negative integer": Case("ok", "subtract", 2**200, f"value={PRESET - 2**200}"),
    "integer over 4300 digits": Case("ok", "add", 10**5000, "Exceeds the limit (4300 digits)"),
    # Operations.
    "unknown operation": Case("ok", "multiply", 2, "Unknown operation 'multiply'"),
    "operation in wrong case": Case("ok", "ADD", 2, "Unknown operation 'ADD'"),
    "get": Case("ok", "get", None, f"value={PRESET}"),
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TaskHubGrpcClient]:
    log_dir = tmp_path_factory.mktemp("bad-input")
    port = free_port()
    scheduler = start_scheduler(port, log_dir / "scheduler.log")
    endpoint = f"http://127.0.0.1:{port}"
    worker = start_extra_worker(endpoint, log_dir / "worker.log")
    grpc_client = TaskHubGrpcClient(host_address=endpoint)
    yield grpc_client
    grpc_client.close()
    worker.stop()
    scheduler.stop()


def call(client: TaskHubGrpcClient, key: str, operation: str, input: Any) -> dict[str, Any]:
    request = {"key": key, "operation": operation, "input": input}
    instance_id = client.schedule_new_orchestration("call_counter", input=request)
    state = client.wait_for_orchestration_completion(instance_id, timeout=60)
    assert state is not None
    assert state.runtime_status is OrchestrationStatus.COMPLETED, state.failure_details
    result: dict[str, Any] = state.get_output()
    return result


def stored(client: TaskHubGrpcClient, entity: str, key: str) -> str | None:
    metadata = client.get_entity(EntityInstanceId(entity, key))
    return None if metadata is None else metadata.get_state()


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_bad_input_table(client: TaskHubGrpcClient, case: Case, tmp_path: Path) -> None:
    good_key = f"bad-input-{uuid.uuid4().hex[:8]}"
    assert call(client, good_key, "add", PRESET) == {"value": PRESET}
    key = good_key if case.key == "ok" else case.key

    if case.key != "ok":
        rejected = run_client("http://127.0.0.1:1", key, timeout=30)
        assert rejected.returncode == 2
        assert case.expected in rejected.stderr
        assert "Traceback" not in rejected.stderr

    try:
        result = call(client, key, case.operation, case.input)
    except ValueError as error:
        # Python refuses to turn the integer into JSON text before anything is sent.
        result = {"error": str(error)}

    if case.expected.startswith("value="):
        assert result == {"value": int(case.expected.removeprefix("value="))}
    else:
        assert (case.sdk_expected or case.expected) in result["error"]
        if case.key != "ok" and "@" not in key and key:
            # The entity rejected its own key, so it never stored a state.
            assert not stored(client, "counter", key)
        else:
            assert call(client, good_key, "get", None) == {"value": PRESET}


def test_state_near_one_megabyte(client: TaskHubGrpcClient) -> None:
    key = f"large-{uuid.uuid4().hex[:8]}"
    entity_id = EntityInstanceId("text", key)
    value = "x" * NEAR_LIMIT
    client.signal_entity(entity_id, "set", input=value)
    client.signal_entity(counter_id(key), "add", input=1)

    def large_state() -> str | None:
        return stored(client, "text", key)

    wait_for(lambda: large_state() == f'"{value}"', 60, "the large state stored")
    assert len(large_state() or "") == NEAR_LIMIT + 2
    assert stored(client, "counter", key) == "1"


def test_state_over_one_megabyte_accepted(client: TaskHubGrpcClient) -> None:
    # The service rejects entity state over 1 MB; the local scheduler does not check.
    key = f"too-large-{uuid.uuid4().hex[:8]}"
    value = "x" * 1_100_000
    client.signal_entity(EntityInstanceId("text", key), "set", input=value)
    wait_for(lambda: stored(client, "text", key) == f'"{value}"', 60, "the 1.1 MB state stored")
