"""Worker: runs the `counter` entity and the `counter_workflow` orchestrator.

    python worker.py [--verbose]

It connects to the scheduler named by ENDPOINT and TASKHUB (see sample/settings.py)
and processes work items until Ctrl+C or SIGTERM. On either it finishes the work
items in hand, then exits with status 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from types import FrameType

from sample.counter import counter, counter_workflow
from sample.runtime import ConnectionLogFilter, configure_logging, create_worker, sdk_logger
from sample.settings import AuthenticationError, SettingsError, load_settings

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

    try:
        settings = load_settings()
        worker = create_worker(settings)
    except (SettingsError, AuthenticationError) as error:
        logger.error("%s", error)
        return 2

    worker.add_entity(counter)
    # mypy cannot infer the output type through the SDK's `Generator | TOutput` alias.
    worker.add_orchestrator(counter_workflow)  # type: ignore[arg-type]

    stop_requested = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        logger.info("Received %s; finishing the work items in hand", signal.Signals(signum).name)
        stop_requested.set()

    # Explicit handlers, because as PID 1 in a container SIGTERM has no default action.
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    sdk_logger("worker").addFilter(StopNoiseFilter(stop_requested))
    # INFO, so that the filter sees reconnections; it hides other INFO records unless --verbose.
    sdk_logger("worker").setLevel(logging.INFO)
    sdk_logger("worker").addFilter(ConnectionLogFilter(settings.endpoint, args.verbose))

    worker.start()
    logger.info("Worker started: %s; press Ctrl+C to stop", settings.describe())
    stop_requested.wait()

    worker.stop()
    logger.info("Worker stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
