"""End to end: the client's pattern sub-commands against a real scheduler and worker.py."""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from durabletask.client import OrchestrationStatus, TaskHubGrpcClient

from sample.accounts import LARGE_WITHDRAWAL, account_id, transfer_funds
from sample.counter import counter_id
from tests.processes import Process, free_port, run_client, start_worker, wait_for

pytestmark = pytest.mark.e2e

NOWHERE = "http://127.0.0.1:1"  # for arguments rejected before any connection


@pytest.fixture
def sdk_client(endpoint: str, worker: Process) -> Iterator[TaskHubGrpcClient]:
    client = TaskHubGrpcClient(host_address=endpoint)
    yield client
    client.close()


def client_ok(endpoint: str, *args: str) -> str:
    result = run_client(endpoint, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_account_deposit_withdraw_balance(endpoint: str, worker: Process, unique_key: str) -> None:
    name = f"@account@{unique_key}"
    assert client_ok(endpoint, "account", unique_key, "deposit", "100") == (
        f"{name} deposit 100: balance 100\n"
    )
    assert client_ok(endpoint, "account", unique_key, "withdraw", "30") == (
        f"{name} withdraw 30: balance 70\n"
    )
    assert client_ok(endpoint, "account", unique_key, "balance") == f"{name} balance: 70\n"


def test_account_overdraft_rejected(endpoint: str, worker: Process, unique_key: str) -> None:
    client_ok(endpoint, "account", unique_key, "deposit", "50")

    result = run_client(endpoint, "account", unique_key, "withdraw", "80")

    assert result.returncode == 1
    assert (
        f"Withdrawal of 80 from @account@{unique_key} rejected: the balance is 50. "
        "Deposit more first" in result.stdout
    )
    assert client_ok(endpoint, "account", unique_key, "balance").endswith("balance: 50\n")


def test_large_withdrawal_audited(endpoint: str, worker: Process, unique_key: str) -> None:
    client_ok(endpoint, "account", unique_key, "deposit", str(3 * LARGE_WITHDRAWAL))
    client_ok(endpoint, "account", unique_key, "withdraw", str(LARGE_WITHDRAWAL))

    # The account signals its audit entity after the withdrawal, so wait for it.
    expected = f'@audit@{unique_key}  [{{"withdrawal": 1000, "balance": 2000}}]\n1 entity\n'
    wait_for(
        lambda: client_ok(endpoint, "list", "audit", unique_key) == expected,
        20,
        "audit entry listed",
    )
    log = worker.output()
    assert f"@account@{unique_key} withdraw 1000 -> 2000" in log
    assert f"@audit@{unique_key} record" in log


def test_transfer_moves_and_reports(endpoint: str, worker: Process, unique_key: str) -> None:
    source, target = f"{unique_key}-a", f"{unique_key}-b"
    client_ok(endpoint, "account", source, "deposit", "100")

    moved = run_client(endpoint, "transfer", source, target, "60")
    not_moved = run_client(endpoint, "transfer", source, target, "60")

    assert moved.returncode == 0, moved.stderr
    assert moved.stdout == (
        f"Moved 60 from @account@{source} to @account@{target}. "
        f"Balances: @account@{source} 40, @account@{target} 60\n"
    )
    assert not_moved.returncode == 1, not_moved.stderr
    assert not_moved.stdout == (
        f"Did not move 60: the balance of @account@{source} is too low. "
        f"Balances: @account@{source} 40, @account@{target} 60\n"
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["transfer", "alice", "alice", "5"], "Invalid transfer from @account@alice to itself"),
        (["transfer", "alice", "bob", "-5"], "Invalid amount -5: it must be greater than 0"),
        (["transfer", "alice", "bob", "0"], "Invalid amount 0: it must be greater than 0"),
        (["transfer", "alice", "bob", "2.5"], "Invalid amount '2.5': it must be a whole number"),
        (["transfer", "alice", "bob", "ten"], "Invalid amount 'ten': it must be a whole number"),
        (["transfer", "a@b", "bob", "5"], "Invalid account key 'a@b'"),
        (["account", "alice", "deposit", "-1"], "Invalid amount -1"),
        (["account", "alice", "withdraw", "1.5"], "Invalid amount '1.5'"),
        (["account", "alice", "deposit"], "deposit needs an amount"),
        (["account", "alice", "balance", "5"], "balance takes no amount"),
        (["account", "alice", "close"], "invalid choice: 'close'"),
        (["delete", "counter", "x"], "The counter entity has no delete operation"),
        (["delete", "account", "a@b"], "Invalid entity key 'a@b'"),
        (["list", "cards"], "invalid choice: 'cards'"),
        (["list", "account", "a@"], "Invalid key prefix 'a@'"),
        (["delayed", "--delay", "0"], "--delay 0.0 is out of range"),
        (["delayed", "--delay", "nan"], "--delay nan is out of range"),
        (["transfer", "a", "b", "5", "--timeout", "0"], "--timeout 0.0 must be greater than 0"),
    ],
)
def test_bad_arguments_rejected(args: list[str], expected: str) -> None:
    result = run_client(NOWHERE, *args, timeout=30)

    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_list_and_delete(endpoint: str, worker: Process, unique_key: str) -> None:
    first, second = f"{unique_key}-1", f"{unique_key}-2"
    client_ok(endpoint, "account", first, "deposit", "10")
    client_ok(endpoint, "account", second, "deposit", "20")

    listed = client_ok(endpoint, "list", "account", unique_key)
    assert listed == (f"@account@{first}  10\n@account@{second}  20\n2 entities\n")

    deleted = client_ok(endpoint, "delete", "account", second)
    assert deleted == f"Deleted @account@{second}; its last state was 20\n"
    assert client_ok(endpoint, "list", "account", unique_key) == (
        f"@account@{first}  10\n1 entity\n"
    )
    # A deleted account starts again from the default balance.
    assert client_ok(endpoint, "account", second, "balance").endswith("balance: 0\n")


def test_list_without_name_shows_all_kinds(endpoint: str, worker: Process, unique_key: str) -> None:
    client_ok(endpoint, "account", unique_key, "deposit", "5")
    client_ok(endpoint, unique_key, "--count", "0")  # the counter demo: value 75

    listed = client_ok(endpoint, "list")

    assert f"@account@{unique_key}" in listed
    assert re.search(rf"^@counter@{unique_key} +75$", listed, re.MULTILINE), listed


def test_reset_keeps_counter_listed(
    endpoint: str, sdk_client: TaskHubGrpcClient, unique_key: str
) -> None:
    client_ok(endpoint, unique_key, "--count", "0")  # the counter demo: value 75

    sdk_client.signal_entity(counter_id(unique_key), "reset")

    # Unlike delete, reset stores 0, so the entity still exists and is listed.
    expected = f"@counter@{unique_key}  0\n1 entity\n"
    wait_for(
        lambda: client_ok(endpoint, "list", "counter", unique_key) == expected,
        20,
        "counter listed with 0",
    )


def test_sub_command_word_as_counter_key(private_endpoint: str, tmp_path: Path) -> None:
    # A scheduler of its own, because the key "list" is the same in every run.
    worker = start_worker(private_endpoint, tmp_path / "worker.log")
    try:
        result = run_client(private_endpoint, "--count", "0", "--", "list")
    finally:
        worker.stop()

    assert result.returncode == 0, result.stderr
    assert "Counter 'list' value: 75\n" in result.stdout


def test_delete_missing_entity_fails(endpoint: str, worker: Process, unique_key: str) -> None:
    result = run_client(endpoint, "delete", "account", unique_key)

    assert result.returncode == 1
    assert f"Entity @account@{unique_key} not found, so there is nothing to delete" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr


def test_delete_twice_fails_second_time(endpoint: str, worker: Process, unique_key: str) -> None:
    client_ok(endpoint, "account", unique_key, "deposit", "1")
    client_ok(endpoint, "delete", "account", unique_key)

    again = run_client(endpoint, "delete", "account", unique_key)

    assert again.returncode == 1
    assert "not found" in again.stderr


def test_delayed_signal_applies_after_delay(
    endpoint: str, worker: Process, unique_key: str
) -> None:
    result = run_client(endpoint, "delayed", unique_key, "--delay", "1.5")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"Signalling @counter@{unique_key}: add 1, delivered 1.5 s from now"
    assert lines[1] == "Value right after the signal: 0"
    match = re.fullmatch(
        r"Value after the delay: 1 \(applied (\d+\.\d) s after the signal\)", lines[2]
    )
    assert match is not None, lines
    assert float(match[1]) >= 1.5


def test_transfer_times_out_without_worker(private_endpoint: str) -> None:
    result = run_client(private_endpoint, "transfer", "a", "b", "5", "--timeout", "2")

    assert result.returncode == 1
    assert "did not finish within 2 s" in result.stderr
    assert "Is worker.py running" in result.stderr


def test_sub_command_without_scheduler_fails() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    result = run_client(endpoint, "list", timeout=30)

    assert result.returncode == 1
    assert f"Cannot reach the scheduler at {endpoint}" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["delayed", "account", "transfer", "list", "delete"])
def test_sub_command_help(command: str) -> None:
    result = run_client(NOWHERE, command, "--help", timeout=30)

    assert result.returncode == 0
    assert f"python client.py {command}" in result.stdout
    assert "--timeout" in result.stdout
    main_help = run_client(NOWHERE, "--help", timeout=30).stdout
    assert f"python client.py {command}" in main_help


def test_concurrent_transfers_conserve_money(
    sdk_client: TaskHubGrpcClient, unique_key: str
) -> None:
    """Transfers and direct signals run at once; every unit of money is accounted for."""
    rich = [f"{unique_key}-rich-{n}" for n in range(2)]
    poor = [f"{unique_key}-poor-{n}" for n in range(3)]
    accounts = rich + poor
    expected = {key: 1_000_000 for key in rich} | {key: 100 for key in poor}
    for key, amount in expected.items():
        sdk_client.signal_entity(account_id(key), "deposit", input=amount)
    funded = dict(expected)
    wait_for(
        lambda: all(balance(sdk_client, key) == funded[key] for key in accounts),
        20,
        "accounts funded",
    )

    rng = random.Random(7)
    transfers = [
        {"source": source, "target": target, "amount": rng.randint(1, 150)}
        for source, target in (rng.sample(accounts, 2) for _ in range(40))
    ]
    # Transfers that can never be covered, so the "not moved" branch runs every time.
    transfers += [{"source": key, "target": rich[0], "amount": 10**9} for key in poor]
    # Direct signals: deposits to every account, withdrawals only from the rich ones,
    # which hold far more than all transfers together can take, so none is rejected.
    direct = [(key, "deposit", rng.randint(1, 50)) for key in accounts for _ in range(10)]
    direct += [(key, "withdraw", rng.randint(1, 50)) for key in rich for _ in range(10)]
    rng.shuffle(direct)

    signaller = threading.Thread(target=send_signals, args=(sdk_client, direct))
    signaller.start()
    with ThreadPoolExecutor(max_workers=4) as pool:
        instance_ids = list(pool.map(lambda t: schedule_transfer(sdk_client, t), transfers))
    signaller.join()

    moved = 0
    for instance_id in instance_ids:
        state = sdk_client.wait_for_orchestration_completion(instance_id, timeout=60)
        assert state is not None
        assert state.runtime_status is OrchestrationStatus.COMPLETED, state.failure_details
        outcome = state.get_output()
        if outcome["moved"]:
            moved += 1
            expected[outcome["source"]] -= outcome["amount"]
            expected[outcome["target"]] += outcome["amount"]
    for key, operation, amount in direct:
        expected[key] += amount if operation == "deposit" else -amount

    assert moved > 0
    # Every direct signal has been sent and every transfer has finished, so the
    # balances settle once the queued signals are applied.
    actual: dict[str, int | None] = {}
    try:
        wait_for(
            lambda: all(balance(sdk_client, key) == expected[key] for key in accounts),
            30,
            "balances settled",
        )
    finally:
        actual = {key: balance(sdk_client, key) for key in accounts}
    assert actual == expected
    deposits = sum(amount for _, operation, amount in direct if operation == "deposit")
    withdrawals = sum(amount for _, operation, amount in direct if operation == "withdraw")
    total = sum(value or 0 for value in actual.values())
    assert total == sum(funded.values()) + deposits - withdrawals


def balance(client: TaskHubGrpcClient, key: str) -> int | None:
    metadata = client.get_entity(account_id(key))
    return None if metadata is None else metadata.get_typed_state(int)


def send_signals(client: TaskHubGrpcClient, signals: list[tuple[str, str, int]]) -> None:
    for key, operation, amount in signals:
        client.signal_entity(account_id(key), operation, input=amount)


def schedule_transfer(client: TaskHubGrpcClient, transfer: dict[str, Any]) -> str:
    instance_id: str = client.schedule_new_orchestration(transfer_funds, input=transfer)  # type: ignore[arg-type]
    return instance_id


@pytest.mark.parametrize(
    "args",
    [
        ["account", "x" * 92, "balance"],
        ["account", "caf\u00e9", "balance"],
        ["delayed", "d\nx"],
        ["transfer", "alice", "b\x1bb", "5"],
        ["delete", "account", "y" * 120],
    ],
)
def test_sub_command_keys_checked_like_counter_keys(args: list[str]) -> None:
    result = run_client("http://127.0.0.1:1", *args, timeout=30)
    assert result.returncode == 2, result.stderr
    assert "Invalid entity key" in result.stderr
