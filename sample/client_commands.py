"""The client's sub-commands for the entity patterns beyond the counter demo.

    python client.py delayed [KEY] [--delay SECONDS]
    python client.py account KEY {deposit,withdraw,balance} [AMOUNT]
    python client.py transfer SOURCE TARGET AMOUNT
    python client.py list [NAME [KEY_PREFIX]]
    python client.py delete NAME KEY

client.py hands its arguments here when the first one names a sub-command, so
`python client.py [key]` keeps running the counter demo.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from durabletask.client import EntityQuery, OrchestrationStatus, TaskHubGrpcClient
from durabletask.entities import EntityInstanceId, EntityMetadata

from sample.accounts import (
    ACCOUNT_ENTITY,
    AUDIT_ENTITY,
    CALLED_OPERATIONS,
    AccountError,
    Transfer,
    account_id,
    account_operation,
    transfer_funds,
    validate_amount,
)
from sample.counter import ENTITY_NAME as COUNTER_ENTITY
from sample.counter import check_key, counter_id
from sample.runtime import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    configure_logging,
    create_client,
    describe_rpc_error,
)
from sample.settings import AuthenticationError, SettingsError, load_settings
from sample.shutdown import raise_keyboard_interrupt

logger = logging.getLogger("client")

COMMANDS = ("delayed", "account", "transfer", "list", "delete")
MAX_TIMEOUT = 86_400.0


def find_command(arguments: list[str]) -> list[str] | None:
    """Return the arguments with the sub-command first, or None when there is no sub-command.

    Options shared with the counter demo may come before the sub-command, as in
    `client.py -v list`; any other first word is the counter demo's entity key.
    """
    leading: list[str] = []
    position = 0
    while position < len(arguments):
        argument = arguments[position]
        if argument in ("-v", "--verbose") or argument.startswith("--timeout="):
            leading.append(argument)
            position += 1
        elif argument == "--timeout" and position + 1 < len(arguments):
            leading.extend(arguments[position : position + 2])
            position += 2
        elif argument in COMMANDS:
            return [argument, *leading, *arguments[position + 1 :]]
        else:
            return None
    return None


ENTITY_NAMES = (ACCOUNT_ENTITY, AUDIT_ENTITY, COUNTER_ENTITY)
DELETABLE = (ACCOUNT_ENTITY, AUDIT_ENTITY)

DEFAULT_DELAYED_KEY = "my-delayed-counter"
DEFAULT_DELAY = 3.0
# The client waits for the delayed signal in the foreground, so the delay stays short.
MAX_DELAY = 3600.0
DEFAULT_TIMEOUT = 60.0


class CommandFailed(Exception):
    """A sub-command could not finish; the message explains what to do next."""


def run_command(argv: list[str]) -> int:
    """Run one sub-command and return the exit status."""
    args = parse_args(argv)
    configure_logging(args.verbose)
    try:
        settings = load_settings()
        client = create_client(settings)
    except (SettingsError, AuthenticationError) as error:
        logger.error("%s", error)
        return EXIT_USAGE

    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    try:
        status: int = args.handler(client, args)
    except CommandFailed as error:
        logger.error("%s", error)
        return EXIT_FAILED
    except grpc.RpcError as error:
        logger.error("%s", describe_rpc_error(error, settings))
        return EXIT_FAILED
    except KeyboardInterrupt:
        logger.warning("Interrupted; operations already sent still run in the scheduler")
        return EXIT_INTERRUPTED
    finally:
        client.close()
    return status


def parse_args(argv: list[str]) -> argparse.Namespace:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        default=DEFAULT_TIMEOUT,
        help="seconds to wait for the worker (default: %(default)s)",
    )
    common.add_argument(
        "-v", "--verbose", action="store_true", help="also show the SDK's INFO logs"
    )
    parser = argparse.ArgumentParser(prog="python client.py")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_command in (_add_delayed, _add_account, _add_transfer, _add_list, _add_delete):
        add_command(commands, common)

    args = parser.parse_args(argv)
    if not 0 < args.timeout <= MAX_TIMEOUT:  # also rejects NaN
        parser.error(
            f"--timeout {args.timeout} must be greater than 0 and at most {MAX_TIMEOUT:g} seconds"
        )
    try:
        args.check(args)
    except ValueError as error:  # AccountError is a ValueError
        args.command_parser.error(str(error))
    return args


def _add_delayed(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "delayed",
        parents=[common],
        help="signal a counter with a delay and show the value before and after it",
        description="Signal `add 1` to a counter for delivery SECONDS from now, show that the "
        "value has not changed yet, then wait until the signal is applied.",
    )
    parser.add_argument(
        "key", nargs="?", default=DEFAULT_DELAYED_KEY, help="counter key (default: %(default)s)"
    )
    parser.add_argument(
        "--delay",
        type=float,
        metavar="SECONDS",
        default=DEFAULT_DELAY,
        help="seconds until the scheduler delivers the signal (default: %(default)s)",
    )
    parser.set_defaults(command_parser=parser, handler=run_delayed, check=_check_delayed)


def _check_delayed(args: argparse.Namespace) -> None:
    _check_key(args.key)
    if not 0 < args.delay <= MAX_DELAY:
        raise ValueError(
            f"--delay {args.delay} is out of range: use more than 0 and at most {MAX_DELAY:g} "
            "seconds, for example 3."
        )


def _add_account(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "account",
        parents=[common],
        help="deposit to, withdraw from, or read the balance of an account",
        description="Call one operation on the class-based account entity through the "
        "account_operation orchestrator, which reports the new balance or why the account "
        "rejected the operation. Exit status 1 means rejected, for example an overdraft.",
    )
    parser.add_argument("key", help="account key, for example alice")
    parser.add_argument("operation", choices=CALLED_OPERATIONS)
    parser.add_argument(
        "amount", nargs="?", help="whole number greater than 0; deposit and withdraw only"
    )
    parser.set_defaults(command_parser=parser, handler=run_account, check=_check_account)


def _check_account(args: argparse.Namespace) -> None:
    _check_key(args.key)
    if args.operation == "balance":
        if args.amount is not None:
            raise ValueError(f"balance takes no amount, but got {args.amount!r}")
        return
    if args.amount is None:
        raise ValueError(f"{args.operation} needs an amount, for example 25")
    args.amount = parse_amount(args.amount)


def _add_transfer(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "transfer",
        parents=[common],
        help="move an amount between two accounts in a critical section",
        description="Run the transfer_funds orchestrator: it locks both accounts, checks the "
        "balance of SOURCE, and moves AMOUNT only if it is covered. Exit status 1 means the "
        "amount did not move.",
    )
    parser.add_argument("source", help="account to take the amount from")
    parser.add_argument("target", help="account to add the amount to")
    parser.add_argument("amount", help="whole number greater than 0")
    parser.set_defaults(command_parser=parser, handler=run_transfer, check=_check_transfer)


def _check_transfer(args: argparse.Namespace) -> None:
    amount = parse_amount(args.amount)
    args.transfer = Transfer.from_input(
        {"source": args.source, "target": args.target, "amount": amount}
    )
    check_key(args.source)
    check_key(args.target)


def _add_list(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "list",
        parents=[common],
        help="list the sample's entities and their states",
        description="List entities whose instance ID starts with @NAME@KEY_PREFIX, with their "
        "states. Without NAME it lists the account, audit and counter entities.",
    )
    parser.add_argument("name", nargs="?", choices=ENTITY_NAMES, help="entity name")
    parser.add_argument("key_prefix", nargs="?", default="", help="start of the entity key")
    parser.set_defaults(command_parser=parser, handler=run_list, check=_check_list)


def _check_list(args: argparse.Namespace) -> None:
    if "@" in args.key_prefix:
        raise ValueError(f"Invalid key prefix {args.key_prefix!r}: it must not contain '@'.")


def _add_delete(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "delete",
        parents=[common],
        help="delete an account or audit entity so that it is no longer listed",
        description="Signal `delete`, which sets the entity's state to nothing, and wait until "
        "the entity is gone. Unlike the counter's `reset`, which stores 0 and keeps the "
        "entity, a deleted entity no longer exists until its next operation.",
    )
    parser.add_argument("name", choices=ENTITY_NAMES, help="entity name")
    parser.add_argument("key", help="entity key")
    parser.set_defaults(command_parser=parser, handler=run_delete, check=_check_delete)


def _check_delete(args: argparse.Namespace) -> None:
    _check_key(args.key)
    if args.name not in DELETABLE:
        raise ValueError(
            f"The {args.name} entity has no delete operation: its `reset` stores 0 and keeps "
            f"the entity. Delete works on: {', '.join(DELETABLE)}."
        )


def _check_key(key: str) -> None:
    if not key or "@" in key:
        raise ValueError(
            f"Invalid entity key {key!r}: it must not be empty or contain '@'. "
            "Pass a name such as alice."
        )
    # The same length and character limits as counter keys: the scheduler's instance
    # IDs are printable ASCII of at most 100 characters, and `account` is as long as
    # `counter`.
    check_key(key)


def parse_amount(text: str) -> int:
    """Return the amount in `text` as an int greater than 0, else raise AccountError."""
    try:
        amount = int(text)
    except ValueError:
        raise AccountError(
            f"Invalid amount {text!r}: it must be a whole number such as 25."
        ) from None
    return validate_amount(amount)


def run_delayed(client: TaskHubGrpcClient, args: argparse.Namespace) -> int:
    entity_id = counter_id(args.key)
    before = read_state(client, entity_id) or 0

    print(f"Signalling {entity_id}: add 1, delivered {args.delay:g} s from now")
    # The scheduler compares signal_time with its own clock, so with a scheduler on
    # another machine a clock difference shifts the delivery by as much.
    sent = time.monotonic()
    deliver_at = datetime.now(UTC) + timedelta(seconds=args.delay)
    client.signal_entity(entity_id, "add", input=1, signal_time=deliver_at)

    print(f"Value right after the signal: {read_state(client, entity_id) or 0}")
    deadline = sent + args.delay + args.timeout
    after = wait_until(
        lambda: read_state(client, entity_id) == before + 1,
        deadline,
        f"Timed out waiting for the delayed signal to reach {entity_id}. "
        "Is worker.py running against the same ENDPOINT and TASKHUB?",
    )
    # The elapsed time includes up to one polling pause (0.1 s).
    print(f"Value after the delay: {before + 1} (applied {after - sent:.1f} s after the signal)")
    return EXIT_OK


def run_account(client: TaskHubGrpcClient, args: argparse.Namespace) -> int:
    request = {"key": args.key, "operation": args.operation, "amount": args.amount}
    result = run_orchestration(client, account_operation, request, args.timeout)
    if "rejected" in result:
        print(result["rejected"])
        return EXIT_FAILED

    if args.amount is None:
        print(f"{account_id(args.key)} balance: {result['balance']}")
    else:
        print(f"{account_id(args.key)} {args.operation} {args.amount}: balance {result['balance']}")
    return EXIT_OK


def run_transfer(client: TaskHubGrpcClient, args: argparse.Namespace) -> int:
    transfer: Transfer = args.transfer
    result = run_orchestration(client, transfer_funds, transfer.to_input(), args.timeout)
    source, target = account_id(transfer.source), account_id(transfer.target)
    balances = f"{source} {result['source_balance']}, {target} {result['target_balance']}"
    if result["moved"]:
        print(f"Moved {transfer.amount} from {source} to {target}. Balances: {balances}")
        return EXIT_OK
    print(
        f"Did not move {transfer.amount}: the balance of {source} is too low. Balances: {balances}"
    )
    return EXIT_FAILED


def run_list(client: TaskHubGrpcClient, args: argparse.Namespace) -> int:
    names = [args.name] if args.name else sorted(ENTITY_NAMES)
    found: list[EntityMetadata] = []
    for name in names:
        found += list_entities(client, f"@{name}@{args.key_prefix}")

    width = max((len(str(entity.id)) for entity in found), default=0)
    for entity in found:
        state = json.dumps(entity.get_typed_state())
        print(f"{entity.id!s:<{width}}  {state}")
    print(f"{len(found)} {'entity' if len(found) == 1 else 'entities'}")
    return EXIT_OK


def list_entities(client: TaskHubGrpcClient, prefix: str) -> list[EntityMetadata]:
    """Return the entities whose instance ID starts with `prefix` and that have a state."""
    # NOTE: the SDK's in-memory backend (durabletask 1.12.0) inverts include_transient:
    # by default it leaves out entities with queued operations and lists deleted ones.
    # Asking for transient entities and dropping those without state gives the same
    # list there as on the Durable Task Scheduler.
    query = EntityQuery(instance_id_starts_with=prefix, include_state=True, include_transient=True)
    entities = client.get_all_entities(query)
    return sorted(
        (entity for entity in entities if entity.get_typed_state() is not None),
        key=lambda entity: str(entity.id),
    )


def run_delete(client: TaskHubGrpcClient, args: argparse.Namespace) -> int:
    entity_id = EntityInstanceId(args.name, args.key)
    state = read_state(client, entity_id)
    if state is None:
        raise CommandFailed(
            f"Entity {entity_id} not found, so there is nothing to delete. "
            "See the existing ones with `python client.py list`."
        )

    client.signal_entity(entity_id, "delete")
    wait_until(
        lambda: read_state(client, entity_id) is None,
        time.monotonic() + args.timeout,
        f"Timed out waiting for {entity_id} to be deleted. "
        "Is worker.py running against the same ENDPOINT and TASKHUB?",
    )
    print(f"Deleted {entity_id}; its last state was {json.dumps(state)}")
    return EXIT_OK


def read_state(client: TaskHubGrpcClient, entity_id: EntityInstanceId) -> Any:
    """Return the entity's state, or None if the entity does not exist or has no state."""
    metadata = client.get_entity(entity_id)
    return None if metadata is None else metadata.get_typed_state()


def wait_until(condition: Callable[[], bool], deadline: float, message: str) -> float:
    """Poll `condition` until it is true and return the monotonic time it became true.

    Raise CommandFailed with `message` once `deadline` passes.
    """
    while not condition():
        if time.monotonic() > deadline:
            raise CommandFailed(message)
        time.sleep(0.1)
    return time.monotonic()


def run_orchestration(
    client: TaskHubGrpcClient, orchestrator: Any, request: dict[str, Any], timeout: float
) -> dict[str, Any]:
    """Run an orchestration to completion and return its output."""
    instance_id = client.schedule_new_orchestration(orchestrator, input=request)
    try:
        state = client.wait_for_orchestration_completion(instance_id, timeout=timeout)
    except TimeoutError:
        raise CommandFailed(
            f"Orchestration {instance_id} did not finish within {timeout:g} s. "
            "Is worker.py running against the same ENDPOINT and TASKHUB?"
        ) from None
    if state is None:
        raise CommandFailed(f"Orchestration {instance_id} was not found in the scheduler.")
    if state.runtime_status is not OrchestrationStatus.COMPLETED:
        details = state.failure_details
        reason = f": {details.error_type}: {details.message}" if details else ""
        raise CommandFailed(f"Orchestration {instance_id} {state.runtime_status.name}{reason}")
    output: dict[str, Any] = state.get_output()
    return output
