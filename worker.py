"""Worker: runs the sample's entities and orchestrators.

It registers the function-based `counter` entity with `counter_workflow`, and
the class-based `account` entity with the `audit` entity and the
`transfer_funds` and `account_operation` orchestrators.

    python worker.py [--verbose]

It connects to the scheduler named by ENDPOINT and TASKHUB (see sample/settings.py)
and processes work items until Ctrl+C or SIGTERM. On either it finishes the work
items in hand, then exits with status 0.
"""

from __future__ import annotations

import argparse
import logging
import threading

from sample.accounts import Account, account_operation, audit, transfer_funds
from sample.counter import counter, counter_workflow
from sample.runtime import ConnectionLogFilter, configure_logging, create_worker, sdk_logger
from sample.settings import AuthenticationError, SettingsError, load_settings
from sample.shutdown import StopSignals

logger = logging.getLogger("worker")


class StopNoiseFilter(logging.Filter):
    """Drop the SDK's warning about its own work-item stream being cancelled during a stop.

    durabletask 1.12.0 logs "Error in work item stream: ... CANCELLED" at WARNING
    when stop() cancels the stream, which reads like a fault on every clean exit.
    """

    def __init__(self, stopping: threading.Event) -> None:
        super().__init__()
        self._stopping = stopping

    def filter(self, record: logging.LogRecord) -> bool:
        return not (self._stopping.is_set() and "CANCELLED" in record.getMessage())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run the Durable Entities sample worker until Ctrl+C or SIGTERM.",
        epilog="Connection settings come from ENDPOINT, TASKHUB, AZURE_MANAGED_IDENTITY_CLIENT_ID "
        "or DURABLE_TASK_SCHEDULER_CONNECTION_STRING.",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="also show the SDK's INFO logs"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.verbose)
    # Before the SDK starts any thread: see StopSignals for why.
    stop = StopSignals()

    try:
        settings = load_settings()
        worker = create_worker(settings)
    except (SettingsError, AuthenticationError) as error:
        logger.error("%s", error)
        return 2

    worker.add_entity(counter)
    # mypy cannot infer the output type through the SDK's `Generator | TOutput` alias.
    worker.add_orchestrator(counter_workflow)  # type: ignore[arg-type]
    # A DurableEntity subclass registers under its class name, lowercased: `account`.
    worker.add_entity(Account)
    worker.add_entity(audit)
    worker.add_orchestrator(transfer_funds)  # type: ignore[arg-type]
    worker.add_orchestrator(account_operation)  # type: ignore[arg-type]

    sdk_logger("worker").addFilter(StopNoiseFilter(stop.event))
    sdk_logger("worker").addFilter(
        ConnectionLogFilter(settings.endpoint, args.verbose, sdk_logger("worker"))
    )

    worker.start()
    logger.info("Worker started: %s; press Ctrl+C to stop", settings.describe())
    stop.wait()

    name = stop.received.name if stop.received else "stop signal"
    logger.info("Received %s; finishing the work items in hand", name)
    worker.stop()
    logger.info("Worker stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
