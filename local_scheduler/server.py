"""Serve the SDK's in-memory backend as a standalone gRPC scheduler.

    python -m local_scheduler [--host 127.0.0.1] [--port 8080] [--max-threads 64]
                              [--dashboard-port 8082 | --no-dashboard]
                              [--retention SECONDS]

Workers and clients connect to it as they would to the emulator, with
ENDPOINT=http://localhost:8080. Everything is kept in memory and lost when the
process stops.
"""

from __future__ import annotations

import argparse
import logging
from concurrent import futures
from dataclasses import dataclass

import grpc
from durabletask.internal import orchestrator_service_pb2_grpc as stubs

from local_scheduler.backend import (
    DEFAULT_RETENTION_SECONDS,
    LocalSchedulerBackend,
    long_call_limit,
)
from sample.shutdown import StopSignals

logger = logging.getLogger("local_scheduler")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_DASHBOARD_PORT = 8082

# Each worker's GetWorkItems stream and each client blocked in
# wait_for_orchestration_completion holds one server thread for as long as it
# lasts. The SDK's own start() uses 10 threads, so a dozen waiters starve
# everyone. 64 leaves room for several workers, a dashboard and dozens of
# concurrent waiters; an idle thread costs little memory. long_call_limit()
# keeps an eighth of them free for short calls.
DEFAULT_MAX_THREADS = 64


@dataclass
class RunningScheduler:
    server: grpc.Server
    backend: LocalSchedulerBackend
    address: str

    def stop(self, grace: float = 1.0) -> None:
        # The backend's stop() ends the GetWorkItems loops, so streams close
        # cleanly and workers start reconnecting instead of waiting on a dead socket.
        self.backend.stop()
        self.server.stop(grace).wait()


def host_port(host: str, port: int) -> str:
    """Join host and port, with brackets around an IPv6 address such as ::1."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def start_scheduler(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    max_threads: int = DEFAULT_MAX_THREADS,
    retention: float = DEFAULT_RETENTION_SECONDS,
) -> RunningScheduler:
    """Start the backend on host:port (port 0 picks a free one); raise OSError if it is taken."""
    backend = LocalSchedulerBackend(retention, long_call_limit(max_threads))
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="scheduler"),
        # gRPC turns SO_REUSEPORT on by default, so a second scheduler on the same port
        # would start without error and the kernel would split connections, and with
        # them the state, between the two.
        options=[("grpc.so_reuseport", 0)],
    )
    stubs.add_TaskHubSidecarServiceServicer_to_server(backend, server)  # type: ignore[no-untyped-call]
    try:
        bound_port = server.add_insecure_port(host_port(host, port))
    except RuntimeError as error:
        raise OSError(f"cannot listen on {host}:{port}: {error}") from error
    if bound_port == 0:
        raise OSError(f"cannot listen on {host}:{port}; is another scheduler running there?")
    server.start()
    return RunningScheduler(server, backend, host_port(host, bound_port))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m local_scheduler",
        description="Serve an in-memory Durable Task scheduler over gRPC (state is lost on exit).",
    )
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="gRPC port (default: %(default)s)"
    )
    parser.add_argument(
        "--max-threads",
        type=int,
        default=DEFAULT_MAX_THREADS,
        help="server threads; each worker stream and each waiting client holds one "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--retention",
        type=float,
        metavar="SECONDS",
        default=DEFAULT_RETENTION_SECONDS,
        help="purge completed, failed and terminated orchestrations this many seconds after "
        "they finish (default: %(default)g)",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log every request the backend handles"
    )
    parser.add_argument(
        "--dashboard-port",
        type=int,
        default=DEFAULT_DASHBOARD_PORT,
        help="HTTP port of the read-only web dashboard, on the same host (default: %(default)s)",
    )
    parser.add_argument(
        "--no-dashboard", action="store_true", help="do not start the web dashboard"
    )
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port {args.port} is out of range; use 0 to 65535")
    if not 0 <= args.dashboard_port <= 65535:
        parser.error(f"--dashboard-port {args.dashboard_port} is out of range; use 0 to 65535")
    if args.max_threads < 4:
        parser.error(f"--max-threads {args.max_threads} is too small; use at least 4")
    if not args.retention >= 0:  # also rejects NaN
        parser.error(f"--retention {args.retention} must be 0 or more seconds")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # The backend logs every signal and stream at INFO.
    logging.getLogger("durabletask").setLevel(logging.INFO if args.verbose else logging.WARNING)
    # Before gRPC starts its threads: see StopSignals for why.
    stop = StopSignals()

    try:
        scheduler = start_scheduler(args.host, args.port, args.max_threads, args.retention)
    except OSError as error:
        logger.error("%s", error)
        return 1

    logger.info(
        "Local scheduler listening on http://%s (%d server threads); press Ctrl+C to stop",
        scheduler.address,
        args.max_threads,
    )
    logger.info("State is kept in memory only and is lost when this process stops")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning(
            "Listening on %s without TLS or authentication: anyone who can reach it can use it",
            args.host,
        )

    dashboard = None
    if not args.no_dashboard:
        # Imported here so that --no-dashboard never loads Flask.
        from dashboard.server import start_for_local_scheduler

        dashboard = start_for_local_scheduler(scheduler.address, args.host, args.dashboard_port)

    stop.wait()
    logger.info("Received %s; stopping", stop.received.name if stop.received else "stop signal")
    if dashboard is not None:
        dashboard.stop()
    scheduler.stop()
    logger.info("Local scheduler stopped")
    return 0
