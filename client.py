"""Client: signals the counter entity directly, then runs `counter_workflow` orchestrations.

    python client.py [entity-key] [--count N] [--interval SECONDS] [--timeout SECONDS]
                     [--loop] [--verbose]

Start worker.py first (against the same ENDPOINT and TASKHUB). The exit status
is 0 only when every orchestration completed. With --loop, as in the container
image, it runs one round every ORCHESTRATION_INTERVAL seconds (default 60) until
SIGTERM, because a container app that exits is restarted over and over.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

import grpc
from durabletask.client import OrchestrationStatus, TaskHubGrpcClient
from durabletask.entities import EntityInstanceId

from sample.client_commands import find_command, run_command
from sample.counter import MAX_KEY_LENGTH, check_key, counter_id, counter_workflow
from sample.runtime import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    configure_logging,
    create_client,
    describe_rpc_error,
)
from sample.settings import AuthenticationError, Settings, SettingsError, load_settings
from sample.shutdown import StopSignals, raise_keyboard_interrupt, unblock_stop_signals

logger = logging.getLogger("client")

DEFAULT_KEY = "my-counter"
DEFAULT_COUNT = 5
DEFAULT_TIMEOUT = 60.0
DEFAULT_LOOP_INTERVAL = 60.0
INTERVAL_VARIABLE = "ORCHESTRATION_INTERVAL"
# Upper bounds that keep a typo from hanging the client: a day for any wait or
# pause, and as many orchestrations as one run reasonably schedules and waits for.
MAX_SECONDS = 86_400.0
MAX_COUNT = 10_000


SUB_COMMANDS_HELP = """
More entity patterns, each with its own --help:
  python client.py delayed [KEY] [--delay SECONDS]   delayed signal to a counter
  python client.py account KEY {deposit,withdraw,balance} [AMOUNT]
  python client.py transfer SOURCE TARGET AMOUNT     critical section over two accounts
  python client.py list [NAME [KEY_PREFIX]]          entities and their states
  python client.py delete NAME KEY                   delete an account or audit entity
To use one of these words as the counter key, put -- before it: python client.py -- list
"""


class StopRequested(Exception):
    """A stop signal arrived during a pause; nothing more is scheduled."""


class DemoFailed(Exception):
    """The demo could not finish; the message explains what to do next."""


@dataclass(frozen=True)
class Options:
    key: str
    count: int
    interval: float
    timeout: float
    verbose: bool
    loop: bool = False
    round_interval: float = DEFAULT_LOOP_INTERVAL


def validate_key(key: str) -> str:
    """Return the key, or raise ValueError with a message that explains the fix."""
    if not key:
        raise ValueError(
            "Invalid entity key '': it must not be empty. Pass a name such as my-counter."
        )
    if "@" in key:
        raise ValueError(
            f"Invalid entity key {key!r}: it must not contain '@', which separates the "
            "entity name from the key in '@counter@<key>'. Pass a name such as my-counter."
        )
    # The scheduler's limits on length and characters.
    return check_key(key)


def parse_args(argv: list[str] | None, environ: dict[str, str] | None = None) -> Options:
    env = dict(os.environ) if environ is None else environ
    parser = argparse.ArgumentParser(
        description="Signal the counter entity, read it back, then run counter_workflow "
        "orchestrations.",
        epilog="Connection settings come from ENDPOINT, TASKHUB, AZURE_MANAGED_IDENTITY_CLIENT_ID "
        "or DURABLE_TASK_SCHEDULER_CONNECTION_STRING.\n" + SUB_COMMANDS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "key", nargs="?", default=DEFAULT_KEY, help="entity key (default: %(default)s)"
    )
    parser.add_argument(
        "-n",
        "--count",
        type=int,
        metavar="N",
        default=DEFAULT_COUNT,
        help="number of counter_workflow orchestrations, for keys <key>-orch-1 to <key>-orch-N "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        metavar="SECONDS",
        default=None,
        help="seconds between scheduling two orchestrations "
        f"(default: ${INTERVAL_VARIABLE}, else 0)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        default=DEFAULT_TIMEOUT,
        help="seconds to wait for the signals to be applied and for the orchestrations to finish "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--loop",
        action="store_true",
        help=f"run one round every ${INTERVAL_VARIABLE} seconds "
        f"(default {DEFAULT_LOOP_INTERVAL:g}) until SIGTERM; the variable then spaces rounds, "
        "not schedules",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="also show the SDK's INFO logs"
    )
    args = parser.parse_args(argv)

    try:
        validate_key(args.key)
    except ValueError as error:
        parser.error(str(error))
    if args.count < 0:
        parser.error(f"--count {args.count} is negative; use 0 or more")
    if args.count > MAX_COUNT:
        parser.error(f"--count {args.count} is too large; use at most {MAX_COUNT}")
    longest = f"{args.key}-orch-{args.count}"
    if args.count and len(longest) > MAX_KEY_LENGTH:
        parser.error(
            f"Entity key {args.key!r} is too long for --count {args.count}: orchestrations use "
            f"keys up to {longest!r}, over {MAX_KEY_LENGTH} characters. Use a shorter key."
        )
    if not 0 < args.timeout <= MAX_SECONDS:  # also rejects NaN
        parser.error(f"--timeout {args.timeout} must be greater than 0 and at most {MAX_SECONDS:g}")

    raw = env.get(INTERVAL_VARIABLE, "").strip()
    try:
        from_env = float(raw) if raw else None
    except ValueError:
        parser.error(
            f"{INTERVAL_VARIABLE}={raw!r} is not a number of seconds; set it to e.g. 0 or 2.5"
        )
    if from_env is not None and not 0 <= from_env <= MAX_SECONDS:  # also rejects NaN
        parser.error(f"{INTERVAL_VARIABLE}={raw!r} must be from 0 to {MAX_SECONDS:g} seconds")
    if args.interval is not None and not 0 <= args.interval <= MAX_SECONDS:
        parser.error(f"--interval {args.interval} must be from 0 to {MAX_SECONDS:g} seconds")

    if args.loop:
        round_interval = DEFAULT_LOOP_INTERVAL if from_env is None else from_env
        interval = args.interval or 0.0
    else:
        round_interval = DEFAULT_LOOP_INTERVAL
        interval = args.interval if args.interval is not None else (from_env or 0.0)

    return Options(
        args.key, args.count, interval, args.timeout, args.verbose, args.loop, round_interval
    )


def read_counter(client: TaskHubGrpcClient, entity_id: EntityInstanceId) -> int:
    metadata = client.get_entity(entity_id)
    if metadata is None:
        return 0
    return metadata.get_typed_state(int) or 0


def wait_for_counter(
    client: TaskHubGrpcClient,
    entity_id: EntityInstanceId,
    expected: int,
    deadline: float,
    pause: Callable[[float], object],
) -> int:
    """Poll the entity until its value is `expected`, with a growing pause, until the deadline."""
    delay = 0.01
    while True:
        value = read_counter(client, entity_id)
        if value == expected:
            return value
        if time.monotonic() + delay > deadline:
            raise DemoFailed(
                f"Timed out waiting for {entity_id} to reach {expected}; it is {value}. "
                "Is worker.py running against the same ENDPOINT and TASKHUB? If the value "
                "moved past it, other signals to this key were applied meanwhile (for "
                "example ones queued by an earlier run with no worker); use another key."
            )
        if pause(delay):
            raise StopRequested
        delay = min(delay * 2, 0.5)


def signal_directly(
    client: TaskHubGrpcClient,
    key: str,
    deadline: float,
    out: TextIO,
    pause: Callable[[float], object],
) -> None:
    entity_id = counter_id(key)
    # NOTE: the value read before the signals sets the value to wait for, so signals
    # to the same key from elsewhere, or still queued from an earlier run, make this
    # wait time out. The scheduler offers no way to wait for one particular signal.
    before = read_counter(client, entity_id)

    print(f"Signalling {entity_id}: add 100, then subtract 25", file=out)
    client.signal_entity(entity_id, "add", input=100)
    client.signal_entity(entity_id, "subtract", input=25)

    value = wait_for_counter(client, entity_id, before + 75, deadline, pause)
    print(f"Counter '{key}' value: {value}", file=out)


TIMED_OUT = object()

# Maximum length of one wait call, so that a stop signal is noticed within a second.
WAIT_SLICE = 1.0


def wait_for_completion(
    client: TaskHubGrpcClient,
    instance_id: str,
    deadline: float,
    pause: Callable[[float], object],
) -> Any:
    """Return the orchestration's final state, None if not found, or TIMED_OUT."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return TIMED_OUT
        try:
            return client.wait_for_orchestration_completion(
                instance_id, timeout=min(remaining, WAIT_SLICE)
            )
        except TimeoutError:
            # pause(0) only checks whether a stop signal arrived.
            if pause(0):
                raise StopRequested from None


def run_orchestrations(
    client: TaskHubGrpcClient,
    options: Options,
    deadline: float,
    out: TextIO,
    pause: Callable[[float], object],
) -> int:
    """Schedule counter_workflow orchestrations, wait for all, and return how many failed."""
    keys = [f"{options.key}-orch-{number}" for number in range(1, options.count + 1)]
    print(f"Scheduling {len(keys)} counter_workflow orchestrations", file=out)
    started = time.monotonic()

    instance_ids = []
    for index, key in enumerate(keys):
        if index and options.interval and pause(options.interval):
            raise StopRequested
        instance_ids.append(
            client.schedule_new_orchestration(
                counter_workflow,  # type: ignore[arg-type]  # mypy cannot infer the output type
                input=key,
            )
        )

    failures = 0
    for instance_id in instance_ids:
        state = wait_for_completion(client, instance_id, deadline, pause)
        if state is TIMED_OUT:
            print(f"  {instance_id}: did not finish within {options.timeout:g} s", file=out)
            failures += 1
            continue
        if state is not None and state.runtime_status is OrchestrationStatus.COMPLETED:
            print(f"  {instance_id}: {state.get_output(str)}", file=out)
            continue
        failures += 1
        if state is None:
            print(f"  {instance_id}: not found in the scheduler", file=out)
        elif state.failure_details is not None:
            detail = f"{state.failure_details.error_type}: {state.failure_details.message}"
            print(f"  {instance_id}: {state.runtime_status.name}, {detail}", file=out)
        else:
            print(f"  {instance_id}: {state.runtime_status.name}", file=out)

    completed = len(instance_ids) - failures
    elapsed = time.monotonic() - started
    print(
        f"{completed} of {len(instance_ids)} orchestrations completed in {elapsed:.2f} s", file=out
    )
    return failures


def run_demo(
    client: TaskHubGrpcClient,
    options: Options,
    out: TextIO = sys.stdout,
    pause: Callable[[float], object] = time.sleep,
) -> int:
    """Run one round of the demo and return the exit status."""
    deadline = time.monotonic() + options.timeout
    signal_directly(client, options.key, deadline, out, pause)
    failures = run_orchestrations(client, options, deadline, out, pause)
    return EXIT_OK if failures == 0 else EXIT_FAILED


def run_forever(
    client: TaskHubGrpcClient, settings: Settings, options: Options, stop: StopSignals
) -> int:
    """Run rounds until Ctrl+C or SIGTERM; a failed round is logged and the next one still runs.

    A stop signal ends the round within about a second, whatever it is waiting for;
    orchestrations already scheduled keep running in the scheduler.
    """
    round_number = 0
    while not stop.is_set():
        round_number += 1
        logger.info("Round %d starting", round_number)
        try:
            if run_demo(client, options, pause=stop.wait) != EXIT_OK:
                logger.error("Round %d: some orchestrations did not complete", round_number)
        except StopRequested:
            break
        except DemoFailed as error:
            logger.error("Round %d failed: %s", round_number, error)
        except grpc.RpcError as error:
            logger.error("Round %d failed: %s", round_number, describe_rpc_error(error, settings))
        if not stop.is_set():
            logger.info("Next round in %g s", options.round_interval)
            stop.wait(options.round_interval)
    name = stop.received.name if stop.received else "stop signal"
    logger.info("Received %s; stopped during round %d", name, round_number)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0911 - one return per exit status
    # A parent that waits with StopSignals (scripts/demo.py) leaves these blocked.
    unblock_stop_signals()
    command = find_command(sys.argv[1:] if argv is None else argv)
    if command is not None:
        return run_command(command)
    options = parse_args(argv)
    configure_logging(options.verbose)
    # Loop mode runs for days in a container: it takes SIGTERM through StopSignals,
    # created before gRPC starts any thread.
    stop = StopSignals() if options.loop else None

    try:
        settings = load_settings()
        client = create_client(settings)
    except (SettingsError, AuthenticationError) as error:
        logger.error("%s", error)
        return EXIT_USAGE

    if stop is not None:
        try:
            return run_forever(client, settings, options, stop)
        finally:
            client.close()

    # SIGTERM stops a single run like Ctrl+C does.
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)

    try:
        status = run_demo(client, options)
    except DemoFailed as error:
        logger.error("%s", error)
        return EXIT_FAILED
    except grpc.RpcError as error:
        logger.error("%s", describe_rpc_error(error, settings))
        return EXIT_FAILED
    except KeyboardInterrupt:
        logger.warning(
            "Interrupted; orchestrations already scheduled keep running in the scheduler"
        )
        return EXIT_INTERRUPTED
    finally:
        client.close()
    if status != EXIT_OK:
        logger.error("Some orchestrations did not complete; see the lines above")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
