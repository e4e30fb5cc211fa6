"""Logging set-up and construction of the SDK's worker and client from Settings."""

from __future__ import annotations

import logging
import sys

from durabletask.azuremanaged.client import DurableTaskSchedulerClient
from durabletask.azuremanaged.worker import DurableTaskSchedulerWorker
from durabletask.worker import ConcurrencyOptions

from sample.settings import Settings, check_credential, create_credential

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(verbose: bool) -> None:
    """Send the sample's logs to stderr; keep the SDK's at WARNING unless verbose."""
    # LOG_FORMAT shows no thread or process fields, so skip looking them up: the
    # worker logs every entity operation, and each record would pay for them.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format=LOG_FORMAT,
        stream=sys.stderr,
    )
    sdk_level = logging.INFO if verbose else logging.WARNING
    logging.getLogger("durabletask").setLevel(sdk_level)
    # grpc and azure-identity log each request at INFO; they are noise in a sample.
    logging.getLogger("azure").setLevel(logging.WARNING)


def sdk_logger(role: str) -> logging.Logger:
    # The SDK's default loggers carry a private stderr handler and ignore logging
    # configuration; a named logger of ours follows the levels set above.
    return logging.getLogger(f"durabletask.{role}")


def create_worker(
    settings: Settings, concurrency: ConcurrencyOptions | None = None
) -> DurableTaskSchedulerWorker:
    """Create a worker for the settings, failing early if the credential cannot get a token."""
    credential = create_credential(settings)
    check_credential(credential, settings)
    return DurableTaskSchedulerWorker(
        host_address=settings.endpoint,
        taskhub=settings.taskhub,
        token_credential=credential,
        secure_channel=settings.secure,
        concurrency_options=concurrency,
        logger=sdk_logger("worker"),
    )


def create_client(settings: Settings) -> DurableTaskSchedulerClient:
    """Create a client for the settings, failing early if the credential cannot get a token."""
    credential = create_credential(settings)
    check_credential(credential, settings)
    return DurableTaskSchedulerClient(
        host_address=settings.endpoint,
        taskhub=settings.taskhub,
        token_credential=credential,
        secure_channel=settings.secure,
        logger=sdk_logger("client"),
    )
