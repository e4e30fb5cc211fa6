"""Logging set-up and construction of the SDK's worker and client from Settings."""

from __future__ import annotations

import logging
import sys

import grpc
from durabletask.azuremanaged.client import DurableTaskSchedulerClient
from durabletask.azuremanaged.worker import DurableTaskSchedulerWorker
from durabletask.internal import orchestrator_service_pb2_grpc as stubs
from durabletask.worker import ConcurrencyOptions
from google.protobuf import empty_pb2

from sample.settings import Settings, check_credential, create_credential

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Exit statuses of client.py and its sub-commands.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class LineStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler that writes each record with one write() call and takes no lock.

    The worker logs every entity operation from the SDK's executor threads, and
    handing the standard handler's lock from thread to thread cost more CPU time
    than the operations themselves. Draining 20,000 signals over 100 keys took
    about 160 us of worker CPU per signal with the lock and about 100 us without
    it (BENCHMARKS.md).
    Without the lock, lines cannot mix because each is a single write() of one
    string, which CPython's text streams complete while holding the GIL.
    NOTE: that holds on CPython with the GIL; a free-threaded build would need the
    standard, locked StreamHandler.
    """

    def createLock(self) -> None:
        self.lock = None

    def acquire(self) -> None:
        pass

    def release(self) -> None:
        pass

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + self.terminator)
        except Exception:
            self.handleError(record)


def configure_logging(verbose: bool) -> None:
    """Send the sample's logs to stderr; keep the SDK's at WARNING unless verbose."""
    # LOG_FORMAT shows no thread or process fields, so skip looking them up: the
    # worker logs every entity operation, and each record would pay for them.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = LineStreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
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
    # NOTE: the SDK's signal_entity and get_entity take no deadline, so an endpoint
    # that accepts the connection but never replies holds the first call for gRPC's
    # own connection timeout (about 20 s), whatever the client's --timeout is.
    return DurableTaskSchedulerClient(
        host_address=settings.endpoint,
        taskhub=settings.taskhub,
        token_credential=credential,
        secure_channel=settings.secure,
        logger=sdk_logger("client"),
    )


class ConnectionLogFilter(logging.Filter):
    """Turn the SDK worker's connection messages into one clear line per change.

    durabletask 1.12.0 logs every failed reconnection attempt, with the full gRPC
    error, and logs a successful one only at INFO. This filter, attached to the
    SDK's worker logger, logs "lost" once when the scheduler goes away and
    "connected again" once a Hello call succeeds, and hides the repeats. SDK
    records at INFO are hidden unless `verbose` is set.

    The SDK logs INFO records for every work item, and building them costs the
    worker CPU time on each operation. So the logger is at INFO only until a
    connection is made and while it is lost, and at WARNING in between.
    """

    LOST_MARKERS = (
        "Failed to create connection",
        "Connection failed",
        "is unavailable",
        "Connection timeout",
        "Work item stream closed",
    )
    CONNECTED_MARKER = "Created fresh connection"

    def __init__(self, endpoint: str, verbose: bool, sdk: logging.Logger) -> None:
        super().__init__()
        self._endpoint = endpoint
        self._verbose = verbose
        self._sdk = sdk
        sdk.setLevel(logging.INFO)
        # None until the first connection attempt ends one way or the other.
        self._connected: bool | None = None
        self._hidden = 0
        self._logger = logging.getLogger("worker")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(marker in message for marker in self.LOST_MARKERS):
            self._sdk.setLevel(logging.INFO)
            if self._connected:
                self._connected = False
                self._logger.warning(
                    "Lost the connection to the scheduler at %s; retrying until it is back (%s)",
                    self._endpoint,
                    message.splitlines()[0][:200],
                )
            else:
                self._hidden += 1
            return self._verbose
        if self.CONNECTED_MARKER in message and not self._verbose:
            self._sdk.setLevel(logging.WARNING)
        if self.CONNECTED_MARKER in message and self._connected is False:
            self._connected = True
            self._logger.info(
                "Connected to the scheduler at %s again after %d more failed attempts",
                self._endpoint,
                self._hidden,
            )
            self._hidden = 0
        elif self.CONNECTED_MARKER in message:
            self._connected = True
        return self._verbose or record.levelno >= logging.WARNING


def describe_rpc_error(error: grpc.RpcError, settings: Settings) -> str:
    """Return a message for a failed call that names the endpoint and what to do."""
    code = error.code()  # type: ignore[attr-defined]
    details = error.details()  # type: ignore[attr-defined]
    if code == grpc.StatusCode.UNAVAILABLE:
        return (
            f"Cannot reach the scheduler at {settings.endpoint} ({details}). "
            "Start it with `make scheduler`, or set ENDPOINT to a running scheduler."
        )
    return f"The scheduler at {settings.endpoint} returned {code.name}: {details}"


def scheduler_answers(endpoint: str, timeout: float = 0.5) -> bool:
    """Return True if a Durable Task gRPC service at a plaintext endpoint responds to Hello."""
    with grpc.insecure_channel(endpoint.removeprefix("http://")) as channel:
        try:
            stubs.TaskHubSidecarServiceStub(channel).Hello(empty_pb2.Empty(), timeout=timeout)  # type: ignore[no-untyped-call]
        except grpc.RpcError:
            return False
    return True
