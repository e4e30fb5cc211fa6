"""The SDK's in-memory backend with the fixes a standalone local scheduler needs.

`InMemoryOrchestrationBackend` (durabletask 1.12.0) is written for tests inside
one process. Served to separate worker processes it has four gaps, which
`LocalSchedulerBackend` closes by overriding a few of its methods:

- Redelivery: when a worker's GetWorkItems stream ends (the worker crashed or
  was killed), the work items it held and had not completed go back to the
  queue, as the real scheduler does once its lock on them expires. The SDK's
  backend keeps them in flight for good, so that entity or orchestration is
  stuck. A redelivered work item gets a new completion token, so a late
  completion from the old worker is rejected as stale.
- Lock isolation: while an orchestration's critical section (`lock_entities`)
  holds an entity, operations from anyone else wait until the lock is
  released. The SDK's backend applies them inside the critical section.
- Bounded memory: finished orchestrations are purged after a retention
  period, and timers and delayed signals wait in one heap served by one thread
  instead of one sleeping thread each.
- Thread budget: work-item streams and waits for orchestrations hold a server
  thread for as long as they last. They are capped below the pool size, and
  one over the cap is rejected with RESOURCE_EXHAUSTED, so that short calls
  (signals, completions, reads) always find a free thread.

Each override relies on private attributes of the SDK's class;
tests/test_backend_internals.py fails when an upgrade changes them.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import grpc
from durabletask.internal import helpers
from durabletask.internal import orchestrator_service_pb2 as pb
from durabletask.testing import InMemoryOrchestrationBackend
from durabletask.testing.in_memory_backend import (
    ActivityWorkItem,
    EntityState,
    OrchestrationInstance,
    PendingLockRequest,
)

logger = logging.getLogger("local_scheduler")

# The SDK version whose private attributes this module was written against.
SDK_VERSION = "1.12.0"

# Finished orchestrations stay readable (status, output) for this long, so that
# clients can fetch results, then they are purged.
DEFAULT_RETENTION_SECONDS = 3600.0


def long_call_limit(max_threads: int) -> int:
    """Return how many work-item streams and waits may hold server threads at once.

    An eighth of the pool (at least 2 threads) stays free for short calls, so that
    signals, reads and work-item completions are answered however many clients wait.
    """
    return max_threads - max(2, max_threads // 8)


class TimerQueue:
    """Run callbacks at given times, all from one thread.

    Replaces the SDK backend's one sleeping thread per timer or delayed signal,
    whose count grows with every durable timer in flight.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._sequence = itertools.count()
        self._condition = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="scheduler-timers", daemon=True)
        self._thread.start()

    def call_at(self, when: datetime, callback: Callable[[], None]) -> None:
        """Run `callback` at the UTC time `when` (at once if it is past)."""
        delay = max(0.0, (when - datetime.now(UTC)).total_seconds())
        self.call_later(delay, callback)

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        with self._condition:
            due = time.monotonic() + delay
            heapq.heappush(self._heap, (due, next(self._sequence), callback))
            self._condition.notify()

    def pending(self) -> int:
        with self._condition:
            return len(self._heap)

    def stop(self) -> None:
        with self._condition:
            self._stopped = True
            self._condition.notify()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._condition.wait(timeout)
                if self._stopped:
                    return
                _, _, callback = heapq.heappop(self._heap)
            try:
                callback()
            except Exception:
                logger.exception("A timer callback failed")


@dataclass
class _Critical:
    """A granted critical section: the orchestration holding it and the entities still locked."""

    instance_id: str
    entity_ids: set[str] = field(default_factory=set)


class LocalSchedulerBackend(InMemoryOrchestrationBackend):
    """`InMemoryOrchestrationBackend` with redelivery, lock isolation, purging and a thread cap."""

    def __init__(
        self,
        retention: float = DEFAULT_RETENTION_SECONDS,
        max_long_calls: int = 1000,
    ) -> None:
        super().__init__()
        self._retention = retention
        self._max_long_calls = max_long_calls
        self._long_calls = 0
        self._timers = TimerQueue()
        # Work items delivered and not completed yet: key -> (stream number, work item).
        self._held: dict[tuple[str, ...], tuple[int, pb.WorkItem]] = {}
        self._stream_numbers = itertools.count(1)
        # Operations waiting for an entity's lock to be released, in arrival order.
        self._parked: dict[str, list[pb.HistoryEvent]] = {}
        self._critical_sections: dict[str, _Critical] = {}
        # Finished orchestrations in finishing order: (monotonic time, instance).
        self._finished: deque[tuple[float, OrchestrationInstance]] = deque()
        self._timers.call_later(self._purge_interval(), self._purge_expired)

    def stop(self, grace: float | None = None) -> None:
        super().stop(grace)
        self._timers.stop()

    # Thread budget

    def _enter_long_call(self, context: grpc.ServicerContext, what: str) -> None:
        with self._lock:
            if self._long_calls >= self._max_long_calls:
                context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"The local scheduler already serves {self._long_calls} work-item streams "
                    f"and waits for orchestrations, its limit; the {what} was rejected. "
                    "Start it with a larger --max-threads.",
                )
            self._long_calls += 1

    def _leave_long_call(self) -> None:
        with self._lock:
            self._long_calls -= 1

    def WaitForInstanceCompletion(
        self, request: pb.GetInstanceRequest, context: grpc.ServicerContext
    ) -> pb.GetInstanceResponse:
        self._enter_long_call(context, f"wait for orchestration '{request.instanceId}'")
        try:
            return super().WaitForInstanceCompletion(request, context)
        finally:
            self._leave_long_call()

    def WaitForInstanceStart(
        self, request: pb.GetInstanceRequest, context: grpc.ServicerContext
    ) -> pb.GetInstanceResponse:
        self._enter_long_call(context, f"wait for orchestration '{request.instanceId}'")
        try:
            return super().WaitForInstanceStart(request, context)
        finally:
            self._leave_long_call()

    # Redelivery

    def GetWorkItems(
        self, request: pb.GetWorkItemsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.WorkItem]:
        self._enter_long_call(context, "work-item stream")
        stream = next(self._stream_numbers)
        try:
            for work_item in super().GetWorkItems(request, context):
                with self._lock:
                    self._held[_work_item_key(work_item)] = (stream, work_item)
                yield work_item
        finally:
            # Runs when the worker disconnects, is killed, or the scheduler stops.
            with self._lock:
                self._requeue_held(stream)
            self._leave_long_call()

    def _requeue_held(self, stream: int) -> None:
        for key, (owner, work_item) in list(self._held.items()):
            if owner != stream:
                continue
            del self._held[key]
            if work_item.HasField("orchestratorRequest"):
                self._requeue_orchestration(work_item)
            elif work_item.HasField("entityRequestV2"):
                self._requeue_entity(work_item)
            elif work_item.HasField("activityRequest"):
                self._requeue_activity(work_item)

    def _requeue_orchestration(self, work_item: pb.WorkItem) -> None:
        instance_id = work_item.orchestratorRequest.instanceId
        instance = self._instances.get(instance_id)
        if (
            instance is None
            or str(instance.completion_token) != work_item.completionToken
            or instance_id not in self._orchestration_in_flight
        ):
            return
        instance.pending_events = instance.dispatched_events + instance.pending_events
        instance.dispatched_events = []
        instance.completion_token = self._new_completion_token()
        self._orchestration_in_flight.discard(instance_id)
        self._enqueue_orchestration(instance_id)
        logger.warning(
            "Worker disconnected while it held orchestration '%s'; it is queued again", instance_id
        )

    def _requeue_entity(self, work_item: pb.WorkItem) -> None:
        entity_id = work_item.entityRequestV2.instanceId
        entity = self._entities.get(entity_id)
        if (
            entity is None
            or str(entity.completion_token) != work_item.completionToken
            or entity_id not in self._entity_in_flight
        ):
            return
        # The state was never replaced, so the batch is redone from the last committed state.
        count = len(entity.dispatched_operations)
        entity.pending_operations = entity.dispatched_operations + entity.pending_operations
        entity.dispatched_operations = []
        entity.completion_token = self._new_completion_token()
        self._entity_in_flight.discard(entity_id)
        self._enqueue_entity(entity_id)
        logger.warning(
            "Worker disconnected while it held %d operations on %s; they are queued again",
            count,
            entity_id,
        )

    def _requeue_activity(self, work_item: pb.WorkItem) -> None:
        request = work_item.activityRequest
        # NOTE: activity completions carry no token the SDK's backend checks, so if the
        # old worker is still alive and completes late, the activity's result arrives twice.
        self._activity_queue.append(
            ActivityWorkItem(
                instance_id=request.orchestrationInstance.instanceId,
                name=request.name,
                task_id=request.taskId,
                input=request.input.value if request.HasField("input") else None,
                completion_token=int(work_item.completionToken),
                version=request.version.value if request.HasField("version") else None,
            )
        )
        self._work_available.set()
        logger.warning(
            "Worker disconnected while it held activity '%s' of '%s'; it is queued again",
            request.name,
            request.orchestrationInstance.instanceId,
        )

    def _new_completion_token(self) -> int:
        token = self._next_completion_token
        self._next_completion_token += 1
        return token

    def CompleteOrchestratorTask(
        self, request: pb.OrchestratorResponse, context: grpc.ServicerContext
    ) -> pb.CompleteTaskResponse:
        with self._lock:
            instance = self._instances.get(request.instanceId)
            if instance is not None and str(instance.completion_token) != request.completionToken:
                # The SDK's backend also ignores it, but first clears the in-flight mark
                # that the current holder of the work item relies on.
                logger.warning(
                    "Rejected a stale completion for orchestration '%s' (token %s)",
                    request.instanceId,
                    request.completionToken,
                )
                return pb.CompleteTaskResponse()
            self._held.pop(("orchestration", request.completionToken), None)
            response = super().CompleteOrchestratorTask(request, context)
            if instance is not None and self._is_terminal_status(instance.status):
                self._finished.append((time.monotonic(), instance))
                self._release_locks_of(request.instanceId)
            return response

    def CompleteEntityTask(
        self, request: pb.EntityBatchResult, context: grpc.ServicerContext
    ) -> pb.CompleteTaskResponse:
        with self._lock:
            self._held.pop(("entity", request.completionToken), None)
            return super().CompleteEntityTask(request, context)

    def CompleteActivityTask(
        self, request: pb.ActivityResponse, context: grpc.ServicerContext
    ) -> pb.CompleteTaskResponse:
        with self._lock:
            self._held.pop(("activity", request.instanceId, str(request.taskId)), None)
            return super().CompleteActivityTask(request, context)

    # Lock isolation

    def _enqueue_entity(self, entity_id: str) -> None:
        # Every path that adds operations to an entity calls this, under self._lock.
        entity = self._entities.get(entity_id)
        if entity is not None and entity.locked_by is not None:
            self._park_blocked_operations(entity)
            if not entity.pending_operations:
                return
        super()._enqueue_entity(entity_id)

    def _park_blocked_operations(self, entity: EntityState) -> None:
        """Move operations from anyone but the lock holder out of the entity's queue."""
        section = self._critical_sections.get(entity.locked_by or "")
        holder = section.instance_id if section else None
        allowed: list[pb.HistoryEvent] = []
        for operation in entity.pending_operations:
            called = operation.entityOperationCalled
            if (
                operation.HasField("entityOperationCalled")
                and called.parentInstanceId.value == holder
            ):
                allowed.append(operation)
            else:
                self._parked.setdefault(entity.instance_id, []).append(operation)
        entity.pending_operations = allowed

    def _release_parked(self, entity_id: str) -> None:
        parked = self._parked.pop(entity_id, [])
        entity = self._entities.get(entity_id)
        if not parked or entity is None:
            return
        entity.pending_operations = parked + entity.pending_operations
        self._enqueue_entity(entity_id)

    def _grant_lock(self, pending: PendingLockRequest) -> None:
        self._critical_sections[pending.critical_section_id] = _Critical(
            pending.parent_instance_id, set(pending.lock_set)
        )
        super()._grant_lock(pending)
        # Operations queued before the grant but not yet dispatched now wait too.
        # NOTE: the service runs those before the critical section, because the lock
        # request queues behind them; here they run after it. Both keep isolation.
        for entity_id in pending.lock_set:
            self._park_blocked_operations(self._entities[entity_id])

    def _process_send_entity_message_action(
        self, instance: OrchestrationInstance, action: pb.OrchestratorAction
    ) -> None:
        super()._process_send_entity_message_action(instance, action)
        if action.sendEntityMessage.HasField("entityUnlockSent"):
            unlock = action.sendEntityMessage.entityUnlockSent
            entity_id = unlock.targetInstanceId.value
            section = self._critical_sections.get(unlock.criticalSectionId)
            if section is not None:
                section.entity_ids.discard(entity_id)
                if not section.entity_ids:
                    del self._critical_sections[unlock.criticalSectionId]
            self._release_parked(entity_id)

    def _release_locks_of(self, instance_id: str) -> None:
        """Release what a finished orchestration still holds or waits for.

        The SDK's worker unlocks when an orchestrator returns, but a terminated
        orchestration never runs again, and its locks would otherwise stay held.
        """
        self._pending_lock_requests = [
            request
            for request in self._pending_lock_requests
            if request.parent_instance_id != instance_id
        ]
        for section_id, section in list(self._critical_sections.items()):
            if section.instance_id != instance_id:
                continue
            del self._critical_sections[section_id]
            for entity_id in section.entity_ids:
                entity = self._entities.get(entity_id)
                if entity is not None and entity.locked_by == section_id:
                    entity.locked_by = None
                    self._release_parked(entity_id)
        self._try_grant_pending_locks()  # type: ignore[no-untyped-call]

    # Timers and purging

    def _process_create_timer_action(
        self, instance: OrchestrationInstance, action: pb.OrchestratorAction
    ) -> None:
        # Same effect as the SDK's version, with the timer on the shared heap.
        timer_id = action.id
        fire_at = action.createTimer.fireAt.ToDatetime(tzinfo=UTC)
        instance.history.append(helpers.new_timer_created_event(timer_id, fire_at))
        if instance.status == pb.ORCHESTRATION_STATUS_PENDING:
            instance.status = pb.ORCHESTRATION_STATUS_RUNNING
        instance_id = instance.instance_id

        def fire() -> None:
            with self._lock:
                current = self._instances.get(instance_id)
                if current is None or self._is_terminal_status(current.status):
                    return
                current.pending_events.append(helpers.new_timer_fired_event(timer_id, fire_at))
                current.last_updated_at = datetime.now(UTC)
                self._enqueue_orchestration(instance_id)

        self._timers.call_at(fire_at, fire)

    def _schedule_delayed_entity_operation(
        self, entity_id: str, event: pb.HistoryEvent, fire_at: datetime
    ) -> None:
        generation = self._generation

        def fire() -> None:
            with self._lock:
                if self._shutdown_event.is_set() or self._generation != generation:
                    return
                self._queue_entity_operation(entity_id, event)

        self._timers.call_at(fire_at, fire)

    def _purge_interval(self) -> float:
        return min(max(self._retention / 4, 0.05), 30.0)

    def _purge_expired(self) -> None:
        """Forget orchestrations that finished more than `retention` seconds ago."""
        cutoff = time.monotonic() - self._retention
        purged = 0
        with self._lock:
            while self._finished and self._finished[0][0] <= cutoff:
                _, instance = self._finished.popleft()
                instance_id = instance.instance_id
                # Skip an instance that was restarted or replaced under the same ID.
                if self._instances.get(instance_id) is instance and self._is_terminal_status(
                    instance.status
                ):
                    del self._instances[instance_id]
                    self._state_waiters.pop(instance_id, None)
                    purged += 1
        if purged:
            logger.info(
                "Purged %d orchestrations that finished over %g s ago", purged, self._retention
            )
        if not self._shutdown_event.is_set():
            self._timers.call_later(self._purge_interval(), self._purge_expired)


def _work_item_key(work_item: pb.WorkItem) -> tuple[str, ...]:
    if work_item.HasField("activityRequest"):
        # Activities of one orchestration share its completion token.
        request = work_item.activityRequest
        return ("activity", request.orchestrationInstance.instanceId, str(request.taskId))
    if work_item.HasField("orchestratorRequest"):
        return ("orchestration", work_item.completionToken)
    return ("entity", work_item.completionToken)
