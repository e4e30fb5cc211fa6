"""What the dashboard reads through the SDK client, against a real local scheduler."""

from __future__ import annotations

import json
import time

import pytest
from durabletask.client import EntityQuery, OrchestrationStatus
from durabletask.entities import EntityInstanceId
from durabletask.worker import TaskHubGrpcWorker

from dashboard import queries
from sample.counter import counter_id
from tests.dashboard_support import (
    Scheduler,
    stored_state,
)
from tests.processes import wait_for

pytestmark = pytest.mark.e2e

# The fixtures `scheduler`, `test_worker` and `dashboard`.
pytest_plugins = ["tests.dashboard_fixtures"]

BULK_COUNT = 3000


def test_orchestrations_page_through_thousands(scheduler: Scheduler, unique_key: str) -> None:
    # No worker is attached, so every instance stays pending and nothing changes under us.
    ids = [f"{unique_key}-{number:05d}" for number in range(BULK_COUNT)]
    for instance_id in ids:
        scheduler.client.schedule_new_orchestration("counter_workflow", instance_id=instance_id)

    started = time.monotonic()
    first = queries.list_orchestrations(scheduler.client, id_prefix=unique_key)
    elapsed = time.monotonic() - started
    print(f"one page out of {BULK_COUNT} instances: {elapsed * 1000:.0f} ms")

    assert first.total == BULK_COUNT
    assert first.count == BULK_COUNT // queries.PAGE_SIZE
    assert [state.instance_id for state in first.items] == ids[::-1][: queries.PAGE_SIZE]

    seen: list[str] = []
    for number in range(1, first.count + 1):
        page = queries.list_orchestrations(scheduler.client, id_prefix=unique_key, page=number)
        assert len(page.items) == queries.PAGE_SIZE
        seen += [state.instance_id for state in page.items]
    assert seen == ids[::-1]

    past_end = queries.list_orchestrations(
        scheduler.client, id_prefix=unique_key, page=first.count + 1
    )
    assert past_end.items == []
    assert past_end.total == BULK_COUNT


def test_orchestrations_filter_by_status_and_prefix(
    scheduler: Scheduler, test_worker: TaskHubGrpcWorker, unique_key: str
) -> None:
    done = scheduler.client.schedule_new_orchestration(
        "counter_workflow", input=f"{unique_key}-c", instance_id=f"{unique_key}-done"
    )
    failed = scheduler.client.schedule_new_orchestration(
        "no_such_orchestrator", instance_id=f"{unique_key}-failed"
    )
    other = scheduler.client.schedule_new_orchestration(
        "counter_workflow", input=f"{unique_key}-o", instance_id=f"other-{unique_key}"
    )
    for instance_id in (done, failed, other):
        scheduler.client.wait_for_orchestration_completion(instance_id, timeout=30)

    by_prefix = queries.list_orchestrations(scheduler.client, id_prefix=unique_key)
    assert [state.instance_id for state in by_prefix.items] == [failed, done]

    completed = queries.list_orchestrations(scheduler.client, OrchestrationStatus.COMPLETED)
    assert {state.instance_id for state in completed.items} == {done, other}

    failed_only = queries.list_orchestrations(
        scheduler.client, OrchestrationStatus.FAILED, unique_key
    )
    assert [state.instance_id for state in failed_only.items] == [failed]

    none = queries.list_orchestrations(scheduler.client, OrchestrationStatus.TERMINATED)
    assert none.items == []
    assert none.total == 0


def test_orchestration_detail_has_entity_history(
    scheduler: Scheduler, test_worker: TaskHubGrpcWorker, unique_key: str
) -> None:
    instance_id = scheduler.client.schedule_new_orchestration("counter_workflow", input=unique_key)
    scheduler.client.wait_for_orchestration_completion(instance_id, timeout=30)

    detail = queries.get_orchestration(scheduler.client, instance_id)

    assert detail is not None
    assert detail.input == json.dumps(unique_key)
    assert detail.output == json.dumps(f"Counter '{unique_key}' final value: 12")
    assert detail.failures == []
    kinds = [row.kind for row in detail.history]
    assert kinds.count("Entity operation signaled") == 3
    assert kinds.count("Entity operation called") == 1
    assert kinds.index("Execution started") < kinds.index("Entity operation signaled")
    assert kinds[-1] == "Execution completed"
    entity_rows = [row for row in detail.history if row.entity_id]
    assert {row.entity_id for row in entity_rows} == {str(counter_id(unique_key))}
    assert [row.summary for row in entity_rows] == [
        "signal 'add' with input 10",
        "signal 'add' with input 5",
        "signal 'subtract' with input 3",
        "call 'get'",
    ]
    assert "call returned 12" in [row.summary for row in detail.history]
    # The in-memory backend stamps only the OrchestratorStarted events.
    assert detail.history[0].kind == "Orchestrator started"
    assert detail.history[0].timestamp is not None
    assert detail.history[1].kind == "Execution started"
    assert detail.history[1].timestamp is None
    assert [row.number for row in detail.history] == list(range(1, len(detail.history) + 1))


def test_orchestration_detail_failed_and_terminated(
    scheduler: Scheduler, test_worker: TaskHubGrpcWorker, unique_key: str
) -> None:
    failed = scheduler.client.schedule_new_orchestration("no_such_orchestrator", input=[1, 2])
    scheduler.client.wait_for_orchestration_completion(failed, timeout=30)
    waiting = scheduler.client.schedule_new_orchestration("waiter", instance_id=unique_key)
    scheduler.client.wait_for_orchestration_start(waiting, timeout=30)
    wait_for(
        lambda: (
            (detail := queries.get_orchestration(scheduler.client, waiting))
            and detail.custom_status
        ),
        30,
        "waiter setting its custom status",
    )

    running = queries.get_orchestration(scheduler.client, waiting)
    assert running is not None
    assert running.custom_status == json.dumps({"step": "waiting for go"}, indent=2)

    scheduler.client.terminate_orchestration(waiting, output="stopped by test")
    scheduler.client.wait_for_orchestration_completion(waiting, timeout=30)

    failure = queries.get_orchestration(scheduler.client, failed)
    assert failure is not None
    assert failure.state.runtime_status is OrchestrationStatus.FAILED
    assert failure.input == "[\n  1,\n  2\n]"
    assert len(failure.failures) == 1
    assert failure.failures[0].error_type.endswith("OrchestratorNotRegisteredError")
    assert "no_such_orchestrator" in failure.failures[0].message

    terminated = queries.get_orchestration(scheduler.client, waiting)
    assert terminated is not None
    assert terminated.state.runtime_status is OrchestrationStatus.TERMINATED
    assert terminated.output == json.dumps("stopped by test")
    assert "Execution terminated" in [row.kind for row in terminated.history]

    assert queries.get_orchestration(scheduler.client, f"{unique_key}-missing") is None


def test_entities_with_queued_operations_are_listed(scheduler: Scheduler, unique_key: str) -> None:
    # No worker: the signal stays queued, so the entity has a backlog and no state.
    entity_id = counter_id(unique_key)
    scheduler.client.signal_entity(entity_id, "add", input=1)
    scheduler.client.signal_entity(entity_id, "add", input=2)

    # The SDK's default query (include_transient=False) misses it on this backend.
    default_ids = [str(item.id) for item in scheduler.client.get_all_entities(EntityQuery())]
    assert str(entity_id) not in default_ids

    page = queries.list_entities(scheduler.client, "counter", unique_key)
    assert [row.entity_id for row in page.items] == [str(entity_id)]
    assert page.items[0].backlog == 2
    assert page.items[0].state is None


def test_entities_filter_and_hide_deleted(
    scheduler: Scheduler, test_worker: TaskHubGrpcWorker, unique_key: str
) -> None:
    keys = [f"{unique_key}-a1", f"{unique_key}-a2", f"{unique_key}-b1"]
    for key in keys:
        scheduler.client.signal_entity(EntityInstanceId("store", key), "set", input={"key": key})
    scheduler.client.signal_entity(counter_id(f"{unique_key}-a1"), "add", input=7)
    for entity_id in [EntityInstanceId("store", key) for key in keys]:
        wait_for(
            lambda entity_id=entity_id: stored_state(scheduler.client, entity_id),  # type: ignore[misc]
            30,
            f"{entity_id} applied",
        )
    wait_for(
        lambda: stored_state(scheduler.client, counter_id(f"{unique_key}-a1")) == 7,
        30,
        "counter applied",
    )

    store_a = queries.list_entities(scheduler.client, "store", f"{unique_key}-a")
    assert [row.key for row in store_a.items] == keys[:2]
    assert store_a.items[0].state == json.dumps({"key": keys[0]}, indent=2)
    assert store_a.items[0].name == "store"

    any_name = queries.list_entities(scheduler.client, "", f"{unique_key}-a")
    assert [row.entity_id for row in any_name.items] == [
        f"@counter@{unique_key}-a1",
        f"@store@{unique_key}-a1",
        f"@store@{unique_key}-a2",
    ]

    upper = queries.list_entities(scheduler.client, "STORE", unique_key)
    assert len(upper.items) == 3

    deleted = EntityInstanceId("store", keys[2])
    scheduler.client.signal_entity(deleted, "delete")
    wait_for(lambda: stored_state(scheduler.client, deleted) is None, 30, "store deleted")
    listed_by_backend = scheduler.client.get_all_entities(
        EntityQuery(instance_id_starts_with=str(deleted))
    )
    assert [str(item.id) for item in listed_by_backend] == [str(deleted)]
    remaining = queries.list_entities(scheduler.client, "store", unique_key)
    assert [row.key for row in remaining.items] == keys[:2]


def test_entity_with_large_json_state(
    scheduler: Scheduler, test_worker: TaskHubGrpcWorker, unique_key: str
) -> None:
    value = {f"field-{number:04d}": {"n": number, "tags": ["a", "b"]} for number in range(2000)}
    entity_id = EntityInstanceId("store", unique_key)
    scheduler.client.signal_entity(entity_id, "set", input=value)
    wait_for(lambda: stored_state(scheduler.client, entity_id), 30, "large state applied")

    page = queries.list_entities(scheduler.client, "store", unique_key)

    assert len(page.items) == 1
    assert page.items[0].state == json.dumps(value, indent=2)
    assert json.loads(page.items[0].state or "") == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "pages start at 1"),
        ("two", "use a whole number"),
        ("-3", "pages start at 1"),
    ],
)
def test_invalid_page_number(text: str, message: str) -> None:
    with pytest.raises(queries.InvalidFilter, match=message):
        queries.parse_page_number(text)


def test_invalid_status_names_choices() -> None:
    with pytest.raises(queries.InvalidFilter, match="Invalid status 'done'; use one of: running"):
        queries.parse_status("done")
    assert queries.parse_status("Completed") is OrchestrationStatus.COMPLETED
    assert queries.parse_status("") is None


def test_entity_filter_rejects_at_sign(scheduler: Scheduler) -> None:
    with pytest.raises(queries.InvalidFilter, match="never contain '@'"):
        queries.list_entities(scheduler.client, "counter", "a@b")
