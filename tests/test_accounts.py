"""The account and audit entities and their orchestrators, run in this process on the SDK's
in-memory backend."""

from __future__ import annotations

import time
import uuid
from collections.abc import Generator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from durabletask import task
from durabletask.client import OrchestrationState, OrchestrationStatus, TaskHubGrpcClient
from durabletask.entities import DurableEntity, EntityInstanceId
from durabletask.worker import TaskHubGrpcWorker

from local_scheduler.server import start_scheduler
from sample.accounts import (
    LARGE_WITHDRAWAL,
    MAX_AUDIT_ENTRIES,
    Account,
    account_id,
    account_operation,
    audit,
    audit_id,
    transfer_funds,
)
from sample.counter import counter, counter_id
from tests.processes import wait_for


class Probe(DurableEntity):
    """Test entity: shows that attributes on `self` do not outlive one operation."""

    def remember(self, value: object) -> None:
        self.value = value

    def recall(self) -> object:
        return getattr(self, "value", None)


def call_probe(ctx: task.OrchestrationContext, key: str) -> Generator[Any, Any, Any]:
    entity_id = EntityInstanceId("probe", key)
    yield ctx.call_entity(entity_id, "remember", input="kept?")
    recalled = yield ctx.call_entity(entity_id, "recall")
    return recalled


@pytest.fixture(scope="module")
def client() -> Iterator[TaskHubGrpcClient]:
    scheduler = start_scheduler(port=0)
    endpoint = f"http://{scheduler.address}"
    worker = TaskHubGrpcWorker(host_address=endpoint)
    worker.add_entity(Account)
    worker.add_entity(audit)
    worker.add_entity(counter)
    worker.add_entity(Probe)
    worker.add_orchestrator(call_probe)
    worker.add_orchestrator(account_operation)  # type: ignore[arg-type]
    worker.add_orchestrator(transfer_funds)  # type: ignore[arg-type]
    worker.start()
    grpc_client = TaskHubGrpcClient(host_address=endpoint)
    yield grpc_client
    grpc_client.close()
    worker.stop()
    scheduler.stop()


def new_key() -> str:
    return f"unit-{uuid.uuid4().hex[:12]}"


def run(client: TaskHubGrpcClient, orchestrator: Any, request: Any) -> OrchestrationState:
    instance_id = client.schedule_new_orchestration(orchestrator, input=request)
    state = client.wait_for_orchestration_completion(instance_id, timeout=30)
    assert state is not None
    return state


def operate(client: TaskHubGrpcClient, key: str, operation: str, amount: Any = None) -> Any:
    """Run one account operation; return the balance, or the reason it was rejected."""
    request = {"key": key, "operation": operation, "amount": amount}
    state = run(client, account_operation, request)
    assert state.runtime_status is OrchestrationStatus.COMPLETED, state.failure_details
    output = state.get_output()
    return output["balance"] if "balance" in output else output["rejected"]


def stored(client: TaskHubGrpcClient, entity_id: Any) -> Any:
    metadata = client.get_entity(entity_id)
    return None if metadata is None else metadata.get_typed_state()


def test_class_entity_instance_per_operation(client: TaskHubGrpcClient) -> None:
    state = run(client, call_probe, new_key())

    assert state.runtime_status is OrchestrationStatus.COMPLETED, state.failure_details
    assert state.get_output() is None


def test_deposit_withdraw_balance(client: TaskHubGrpcClient) -> None:
    key = new_key()
    assert operate(client, key, "balance") == 0
    assert operate(client, key, "deposit", 100) == 100
    assert operate(client, key, "withdraw", 30) == 70
    assert operate(client, key, "balance") == 70
    assert stored(client, account_id(key)) == 70


def test_overdraft_rejected_keeps_balance(client: TaskHubGrpcClient) -> None:
    key = new_key()
    operate(client, key, "deposit", 50)

    message = operate(client, key, "withdraw", 51)

    assert f"Withdrawal of 51 from @account@{key} rejected: the balance is 50" in message
    assert stored(client, account_id(key)) == 50


@pytest.mark.parametrize(
    ("operation", "amount", "expected"),
    [
        ("deposit", -5, "Invalid amount -5: it must be greater than 0"),
        ("deposit", 0, "Invalid amount 0: it must be greater than 0"),
        ("deposit", 2.5, "Invalid amount 2.5 (float): it must be a whole number"),
        ("deposit", "10", "Invalid amount '10' (str): it must be a whole number"),
        ("withdraw", True, "Invalid amount True (bool): it must be a whole number"),
        ("withdraw", None, "Invalid amount None (NoneType): it must be a whole number"),
    ],
)
def test_bad_amount_rejected(
    client: TaskHubGrpcClient, operation: str, amount: Any, expected: str
) -> None:
    key = new_key()
    operate(client, key, "deposit", 10)

    assert expected in operate(client, key, operation, amount)
    assert stored(client, account_id(key)) == 10


def test_signal_to_inherited_set_state_rejected(client: TaskHubGrpcClient) -> None:
    key = new_key()
    client.signal_entity(account_id(key), "deposit", input=5)
    client.signal_entity(account_id(key), "set_state", input=1_000_000)
    client.signal_entity(account_id(key), "deposit", input=1)

    wait_for(lambda: stored(client, account_id(key)) == 6, 15, "account reaching 6")


def test_delete_removes_state(client: TaskHubGrpcClient) -> None:
    key = new_key()
    operate(client, key, "deposit", 10)

    client.signal_entity(account_id(key), "delete")

    wait_for(lambda: stored(client, account_id(key)) is None, 15, "account state deleted")
    # The next operation starts again from the default state.
    assert operate(client, key, "balance") == 0


def test_large_withdrawal_signals_audit(client: TaskHubGrpcClient) -> None:
    key = new_key()
    operate(client, key, "deposit", 5000)
    operate(client, key, "withdraw", LARGE_WITHDRAWAL - 1)
    operate(client, key, "withdraw", LARGE_WITHDRAWAL)
    operate(client, key, "withdraw", 10_000)  # rejected: its signal is discarded too

    expected = [{"withdrawal": LARGE_WITHDRAWAL, "balance": 5000 - 2 * LARGE_WITHDRAWAL + 1}]
    wait_for(lambda: stored(client, audit_id(key)) == expected, 15, "audit entry")
    # A later large withdrawal appends to the trail; the first entry stays as it was.
    operate(client, key, "withdraw", 2000)
    wait_for(lambda: len(stored(client, audit_id(key)) or []) == 2, 15, "second audit entry")
    assert stored(client, audit_id(key))[0] == expected[0]


def test_audit_delete_and_unknown_operation(client: TaskHubGrpcClient) -> None:
    key = new_key()
    client.signal_entity(audit_id(key), "record", input={"withdrawal": 1, "balance": 0})
    client.signal_entity(audit_id(key), "forget")
    wait_for(lambda: stored(client, audit_id(key)) is not None, 15, "audit entry")

    client.signal_entity(audit_id(key), "delete")
    wait_for(lambda: stored(client, audit_id(key)) is None, 15, "audit state deleted")


def test_audit_keeps_latest_entries(client: TaskHubGrpcClient) -> None:
    key = new_key()
    for number in range(MAX_AUDIT_ENTRIES + 5):
        client.signal_entity(audit_id(key), "record", input={"withdrawal": number})

    def entries() -> list[Any]:
        return stored(client, audit_id(key)) or []

    wait_for(
        lambda: entries()[-1:] == [{"withdrawal": MAX_AUDIT_ENTRIES + 4}], 15, "last audit entry"
    )
    assert len(entries()) == MAX_AUDIT_ENTRIES
    assert entries()[0] == {"withdrawal": 5}


def test_transfer_moves_amount(client: TaskHubGrpcClient) -> None:
    source, target = new_key(), new_key()
    operate(client, source, "deposit", 100)

    state = run(client, transfer_funds, {"source": source, "target": target, "amount": 30})

    assert state.runtime_status is OrchestrationStatus.COMPLETED, state.failure_details
    assert state.get_output() == {
        "source": source,
        "target": target,
        "amount": 30,
        "moved": True,
        "source_balance": 70,
        "target_balance": 30,
    }
    assert stored(client, account_id(source)) == 70
    assert stored(client, account_id(target)) == 30


def test_transfer_without_funds_moves_nothing(client: TaskHubGrpcClient) -> None:
    source, target = new_key(), new_key()
    operate(client, source, "deposit", 20)
    operate(client, target, "deposit", 5)

    state = run(client, transfer_funds, {"source": source, "target": target, "amount": 21})

    assert state.runtime_status is OrchestrationStatus.COMPLETED, state.failure_details
    output = state.get_output()
    assert output["moved"] is False
    assert output["source_balance"] == 20
    assert output["target_balance"] == 5
    assert stored(client, account_id(source)) == 20
    assert stored(client, account_id(target)) == 5


def test_transfer_of_whole_balance(client: TaskHubGrpcClient) -> None:
    source, target = new_key(), new_key()
    operate(client, source, "deposit", 40)

    state = run(client, transfer_funds, {"source": source, "target": target, "amount": 40})

    assert state.get_output()["moved"] is True
    assert stored(client, account_id(source)) == 0
    assert stored(client, account_id(target)) == 40


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        ({"source": "same", "target": "same", "amount": 5}, "Invalid transfer from @account@same"),
        ({"source": "a", "target": "b", "amount": -5}, "Invalid amount -5"),
        ({"source": "a", "target": "b", "amount": 1.5}, "Invalid amount 1.5 (float)"),
        ({"source": "a", "target": "b", "amount": "5"}, "Invalid amount '5' (str)"),
        ({"source": "a@b", "target": "b", "amount": 5}, "Invalid account key 'a@b'"),
        ({"source": "", "target": "b", "amount": 5}, "Invalid account key ''"),
        ({"target": "b", "amount": 5}, "Invalid account key None"),
        (["a", "b", 5], "Invalid transfer input ['a', 'b', 5]"),
    ],
)
def test_bad_transfer_fails(client: TaskHubGrpcClient, request_: Any, expected: str) -> None:
    state = run(client, transfer_funds, request_)

    assert state.runtime_status is OrchestrationStatus.FAILED
    assert state.failure_details is not None
    assert expected in state.failure_details.message
    assert state.failure_details.error_type.endswith("AccountError")


def test_bad_account_request_fails(client: TaskHubGrpcClient) -> None:
    state = run(client, account_operation, {"key": "x", "operation": "delete"})

    assert state.runtime_status is OrchestrationStatus.FAILED
    assert state.failure_details is not None
    assert "Invalid account request" in state.failure_details.message


def test_delayed_signal_applied_after_delay(client: TaskHubGrpcClient) -> None:
    key = new_key()
    entity_id = counter_id(key)
    delay = 1.5
    sent = time.monotonic()
    client.signal_entity(
        entity_id, "add", input=1, signal_time=datetime.now(UTC) + timedelta(seconds=delay)
    )
    client.signal_entity(entity_id, "add", input=10)

    # The second signal, sent without a delay, is applied while the first one waits.
    wait_for(lambda: stored(client, entity_id) is not None, 15, "undelayed signal applied")
    assert stored(client, entity_id) == 10
    assert time.monotonic() - sent < delay, "too slow to observe the value before the delay"

    wait_for(lambda: stored(client, entity_id) == 11, 15, "delayed signal applied")
    assert time.monotonic() - sent >= delay
