"""LocalSchedulerBackend over real gRPC: redelivery, stale completions, timers, purging.

The redelivery tests play the worker's part with raw gRPC calls, so they can end a
work-item stream at an exact moment and send completions with chosen tokens.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import inspect
import threading
import uuid
from collections.abc import Generator, Iterator
from datetime import timedelta
from typing import Any

import grpc
import pytest
from durabletask import task
from durabletask.client import OrchestrationStatus, TaskHubGrpcClient
from durabletask.internal import orchestrator_service_pb2 as pb
from durabletask.internal import orchestrator_service_pb2_grpc as stubs
from durabletask.testing import InMemoryOrchestrationBackend
from durabletask.testing import in_memory_backend as sdk_backend
from durabletask.worker import TaskHubGrpcWorker
from google.protobuf import wrappers_pb2

from local_scheduler.backend import SDK_VERSION, LocalSchedulerBackend
from local_scheduler.server import RunningScheduler, start_scheduler
from tests.processes import wait_for

# What LocalSchedulerBackend overrides or reads, with the parameters it expects.
OVERRIDDEN_METHODS = {
    "GetWorkItems": ["self", "request", "context"],
    "CompleteOrchestratorTask": ["self", "request", "context"],
    "CompleteEntityTask": ["self", "request", "context"],
    "CompleteActivityTask": ["self", "request", "context"],
    "WaitForInstanceCompletion": ["self", "request", "context"],
    "WaitForInstanceStart": ["self", "request", "context"],
    "stop": ["self", "grace"],
    "_enqueue_entity": ["self", "entity_id"],
    "_enqueue_orchestration": ["self", "instance_id"],
    "_grant_lock": ["self", "pending"],
    "_try_grant_pending_locks": ["self"],
    "_process_send_entity_message_action": ["self", "instance", "action"],
    "_process_create_timer_action": ["self", "instance", "action"],
    "_schedule_delayed_entity_operation": ["self", "entity_id", "event", "fire_at"],
    "_queue_entity_operation": ["self", "entity_id", "event"],
    "_is_terminal_status": ["self", "status"],
}
PRIVATE_ATTRIBUTES = [
    "_lock",
    "_instances",
    "_entities",
    "_orchestration_in_flight",
    "_entity_in_flight",
    "_activity_queue",
    "_pending_lock_requests",
    "_state_waiters",
    "_next_completion_token",
    "_work_available",
    "_shutdown_event",
    "_generation",
]
DATACLASS_FIELDS = {
    sdk_backend.OrchestrationInstance: {
        "instance_id",
        "status",
        "history",
        "pending_events",
        "dispatched_events",
        "completion_token",
        "last_updated_at",
    },
    sdk_backend.EntityState: {
        "instance_id",
        "locked_by",
        "pending_operations",
        "dispatched_operations",
        "completion_token",
    },
    sdk_backend.ActivityWorkItem: {
        "instance_id",
        "name",
        "task_id",
        "input",
        "completion_token",
        "version",
    },
    sdk_backend.PendingLockRequest: {"critical_section_id", "parent_instance_id", "lock_set"},
}


def test_sdk_internals_unchanged() -> None:
    """Fail loudly when a durabletask upgrade changes what the backend overrides rely on."""
    installed = importlib.metadata.version("durabletask")
    assert installed == SDK_VERSION, (
        f"durabletask {installed} is installed but local_scheduler/backend.py was written "
        f"against {SDK_VERSION}; re-read in_memory_backend.py and update the overrides"
    )

    for name, parameters in OVERRIDDEN_METHODS.items():
        method = getattr(InMemoryOrchestrationBackend, name, None)
        assert method is not None, f"InMemoryOrchestrationBackend.{name} is gone"
        assert list(inspect.signature(method).parameters) == parameters, name

    backend = InMemoryOrchestrationBackend()
    for attribute in PRIVATE_ATTRIBUTES:
        assert hasattr(backend, attribute), f"InMemoryOrchestrationBackend.{attribute} is gone"

    for cls, expected in DATACLASS_FIELDS.items():
        missing = expected - {field.name for field in dataclasses.fields(cls)}
        assert not missing, f"{cls.__name__} lost fields {missing}"

    # Lock isolation relies on every producer of entity operations calling
    # _enqueue_entity under the lock after adding them.
    source = inspect.getsource(InMemoryOrchestrationBackend.SignalEntity)
    assert "pending_operations.append" in source
    assert "self._enqueue_entity(" in source
    assert "self._enqueue_entity(" in inspect.getsource(
        InMemoryOrchestrationBackend._queue_entity_operation
    )


@pytest.fixture
def scheduler() -> Iterator[RunningScheduler]:
    running = start_scheduler(port=0)
    yield running
    running.stop()


@pytest.fixture
def stub(scheduler: RunningScheduler) -> Iterator[stubs.TaskHubSidecarServiceStub]:
    with grpc.insecure_channel(scheduler.address) as channel:
        yield stubs.TaskHubSidecarServiceStub(channel)  # type: ignore[no-untyped-call]


def open_stream(stub: stubs.TaskHubSidecarServiceStub) -> Any:
    return stub.GetWorkItems(pb.GetWorkItemsRequest(), timeout=15)


def stored_state(stub: stubs.TaskHubSidecarServiceStub, entity_id: str) -> str | None:
    response = stub.GetEntity(pb.GetEntityRequest(instanceId=entity_id, includeState=True))
    if not response.entity.HasField("serializedState"):
        return None
    state: str = response.entity.serializedState.value
    return state


def entity_result(token: str, state: str, operations: int) -> pb.EntityBatchResult:
    success = pb.OperationResult(success=pb.OperationResultSuccess())
    return pb.EntityBatchResult(
        completionToken=token,
        entityState=wrappers_pb2.StringValue(value=state),
        results=[success] * operations,
    )


def test_stream_end_redelivers_entity_batch(stub: stubs.TaskHubSidecarServiceStub) -> None:
    entity_id = f"@counter@redeliver-{uuid.uuid4().hex[:8]}"
    for request_id in ("first", "second"):
        stub.SignalEntity(
            pb.SignalEntityRequest(
                instanceId=entity_id,
                name="add",
                input=wrappers_pb2.StringValue(value="1"),
                requestId=request_id,
            )
        )

    first_stream = open_stream(stub)
    first = next(first_stream)
    assert [
        op.entityOperationSignaled.requestId for op in first.entityRequestV2.operationRequests
    ] == [
        "first",
        "second",
    ]
    first_stream.cancel()

    # The same batch goes to the next worker, from the last committed state, with a new token.
    second_stream = open_stream(stub)
    second = next(second_stream)
    assert second.entityRequestV2.instanceId == entity_id
    assert [
        op.entityOperationSignaled.requestId for op in second.entityRequestV2.operationRequests
    ] == [
        "first",
        "second",
    ]
    assert not second.entityRequestV2.HasField("entityState")
    assert second.completionToken != first.completionToken

    # A late completion from the first worker is rejected and changes nothing.
    stub.CompleteEntityTask(entity_result(first.completionToken, "2", 2))
    assert stored_state(stub, entity_id) is None

    stub.CompleteEntityTask(entity_result(second.completionToken, "2", 2))
    assert stored_state(stub, entity_id) == "2"

    # Replaying the stale completion again still changes nothing.
    stub.CompleteEntityTask(entity_result(first.completionToken, "99", 2))
    assert stored_state(stub, entity_id) == "2"
    second_stream.cancel()


def test_stream_end_redelivers_orchestration(stub: stubs.TaskHubSidecarServiceStub) -> None:
    instance_id = f"redeliver-{uuid.uuid4().hex[:8]}"
    stub.StartInstance(pb.CreateInstanceRequest(instanceId=instance_id, name="anything"))

    first_stream = open_stream(stub)
    first = next(first_stream)
    assert first.orchestratorRequest.instanceId == instance_id
    first_stream.cancel()

    second_stream = open_stream(stub)
    second = next(second_stream)
    assert second.orchestratorRequest.instanceId == instance_id
    assert second.completionToken != first.completionToken
    started = [
        event
        for event in second.orchestratorRequest.newEvents
        if event.HasField("executionStarted")
    ]
    assert len(started) == 1

    complete = pb.OrchestratorAction(
        completeOrchestration=pb.CompleteOrchestrationAction(
            orchestrationStatus=pb.ORCHESTRATION_STATUS_COMPLETED,
            result=wrappers_pb2.StringValue(value='"done"'),
        )
    )
    stale = pb.OrchestratorResponse(
        instanceId=instance_id, completionToken=first.completionToken, actions=[complete]
    )
    stub.CompleteOrchestratorTask(stale)
    state = stub.GetInstance(pb.GetInstanceRequest(instanceId=instance_id))
    assert state.orchestrationState.orchestrationStatus == pb.ORCHESTRATION_STATUS_PENDING

    current = pb.OrchestratorResponse(
        instanceId=instance_id, completionToken=second.completionToken, actions=[complete]
    )
    stub.CompleteOrchestratorTask(current)
    state = stub.GetInstance(pb.GetInstanceRequest(instanceId=instance_id))
    assert state.orchestrationState.orchestrationStatus == pb.ORCHESTRATION_STATUS_COMPLETED
    second_stream.cancel()


def sleeper(ctx: task.OrchestrationContext, seconds: float) -> Generator[task.Task[Any], Any, str]:
    """Test orchestrator: wait on one durable timer."""
    yield ctx.create_timer(timedelta(seconds=seconds))
    return "woke"


def test_timers_share_one_thread() -> None:
    timers = 100
    scheduler = start_scheduler(port=0)
    endpoint = f"http://{scheduler.address}"
    worker = TaskHubGrpcWorker(host_address=endpoint)
    worker.add_orchestrator(sleeper)  # type: ignore[arg-type]
    worker.start()
    client = TaskHubGrpcClient(host_address=endpoint)
    backend = scheduler.backend
    try:
        threads_before = threading.active_count()
        instance_ids = [
            client.schedule_new_orchestration("sleeper", input=3.0) for _ in range(timers)
        ]
        wait_for(lambda: backend._timers.pending() >= timers, 30, f"{timers} timers waiting")

        # The SDK's backend would hold one sleeping thread per timer here.
        assert threading.active_count() - threads_before < 20

        for instance_id in instance_ids:
            state = client.wait_for_orchestration_completion(instance_id, timeout=30)
            assert state is not None
            assert state.runtime_status is OrchestrationStatus.COMPLETED
            assert state.get_output() == "woke"
    finally:
        client.close()
        worker.stop()
        scheduler.stop()


def quick(ctx: task.OrchestrationContext, _: Any) -> str:
    return "done"


def test_finished_orchestrations_purged_after_retention() -> None:
    scheduler = start_scheduler(port=0, retention=0.5)
    endpoint = f"http://{scheduler.address}"
    worker = TaskHubGrpcWorker(host_address=endpoint)
    worker.add_orchestrator(quick)
    worker.start()
    client = TaskHubGrpcClient(host_address=endpoint)
    try:
        instance_ids = [client.schedule_new_orchestration(quick) for _ in range(50)]
        for instance_id in instance_ids:
            state = client.wait_for_orchestration_completion(instance_id, timeout=30)
            assert state is not None
            assert state.runtime_status is OrchestrationStatus.COMPLETED

        wait_for(
            lambda: all(client.get_orchestration_state(i) is None for i in instance_ids),
            15,
            "finished orchestrations purged after 0.5 s",
        )
        assert len(scheduler.backend._instances) == 0
        assert len(scheduler.backend._finished) == 0
    finally:
        client.close()
        worker.stop()
        scheduler.stop()


def test_retention_keeps_recent_orchestrations() -> None:
    scheduler = start_scheduler(port=0, retention=3600)
    endpoint = f"http://{scheduler.address}"
    worker = TaskHubGrpcWorker(host_address=endpoint)
    worker.add_orchestrator(quick)
    worker.start()
    client = TaskHubGrpcClient(host_address=endpoint)
    try:
        instance_id = client.schedule_new_orchestration(quick)
        client.wait_for_orchestration_completion(instance_id, timeout=30)
        scheduler.backend._purge_expired()
        state = client.get_orchestration_state(instance_id)
        assert state is not None
        assert state.runtime_status is OrchestrationStatus.COMPLETED
    finally:
        client.close()
        worker.stop()
        scheduler.stop()


def test_backend_is_a_local_scheduler_backend(scheduler: RunningScheduler) -> None:
    assert isinstance(scheduler.backend, LocalSchedulerBackend)


def test_known_gaps_remain(scheduler: RunningScheduler) -> None:
    """Limits the README lists; when one of these fails, update the README."""
    from durabletask.azuremanaged.client import DurableTaskSchedulerClient
    from durabletask.client import EntityQuery
    from durabletask.entities import EntityInstanceId

    endpoint = f"http://{scheduler.address}"
    key = f"gap-{uuid.uuid4().hex[:8]}"
    entity_id = EntityInstanceId("counter", key)
    with TaskHubGrpcClient(host_address=endpoint) as client:
        # No worker runs, so the operation stays queued.
        client.signal_entity(entity_id, "add", input=1)
        listed = list(
            client.get_all_entities(EntityQuery(instance_id_starts_with=f"@counter@{key}"))
        )
        assert listed == []  # include_transient is inverted: queued entities are missing

    other_hub = DurableTaskSchedulerClient(
        host_address=endpoint, taskhub="another-hub", token_credential=None, secure_channel=False
    )
    try:
        assert other_hub.get_entity(entity_id) is not None  # task hub names are ignored
    finally:
        other_hub.close()
