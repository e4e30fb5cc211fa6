"""Serve the dashboard, on its own or inside the local scheduler's process.

    python -m dashboard [--host 127.0.0.1] [--port 8082] [--refresh SECONDS]

On its own it reads the scheduler named by ENDPOINT and TASKHUB (or
DURABLE_TASK_SCHEDULER_CONNECTION_STRING), with the same credentials as the
worker and the client, so it works against the local scheduler, the emulator or
a task hub in Azure.
"""

from __future__ import annotations

import argparse
import logging
import socket
import threading
from dataclasses import dataclass

from durabletask.client import TaskHubGrpcClient
from werkzeug.serving import BaseWSGIServer, make_server

from dashboard.app import DEFAULT_REFRESH_SECONDS, create_app

logger = logging.getLogger("dashboard")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8082
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass
class RunningDashboard:
    server: BaseWSGIServer
    thread: threading.Thread
    client: TaskHubGrpcClient

    @property
    def url(self) -> str:
        host = self.server.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.server.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join()
        self.server.server_close()
        self.client.close()


def start_dashboard(
    client: TaskHubGrpcClient,
    endpoint: str,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    refresh_seconds: float = DEFAULT_REFRESH_SECONDS,
) -> RunningDashboard:
    """Serve the dashboard for `client` on a background thread; raise OSError if the port is taken.

    The dashboard owns `client` from here on and closes it in stop(). Port 0 picks a
    free port.
    """
    app = create_app(client, endpoint, refresh_seconds)
    # werkzeug logs every request at INFO, and every open page asks every few seconds.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # werkzeug's make_server calls sys.exit() when it cannot bind, which would end the
    # scheduler this may run in. Binding here first turns that into an OSError.
    with _listening_socket(host, port) as listener:
        # werkzeug's threaded server: one thread per request, which suits a page or two
        # refreshing every few seconds on a developer's machine.
        server = make_server(host, port, app, threaded=True, fd=listener.fileno())
    thread = threading.Thread(target=server.serve_forever, name="dashboard", daemon=True)
    thread.start()
    return RunningDashboard(server, thread, client)


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(64)
    except OSError:
        listener.close()
        raise
    return listener


def start_for_local_scheduler(grpc_address: str, host: str, port: int) -> RunningDashboard | None:
    """Start the dashboard for a scheduler in this process; log and return None if it cannot."""
    client = TaskHubGrpcClient(
        host_address=grpc_address, logger=logging.getLogger("durabletask.dashboard-client")
    )
    try:
        dashboard = start_dashboard(client, f"http://{grpc_address}", host, port)
    except OSError as error:
        client.close()
        logger.warning(
            "Dashboard not started: cannot listen on %s:%d (%s). The scheduler runs without it; "
            "pick another port with --dashboard-port, or turn it off with --no-dashboard",
            host,
            port,
            error.strerror or error,
        )
        return None
    logger.info("Dashboard at %s (read-only)", dashboard.url)
    return dashboard


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m dashboard",
        description="Serve a read-only web dashboard of the orchestrations and entities in the "
        "scheduler named by ENDPOINT and TASKHUB.",
    )
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="HTTP port (default: %(default)s)"
    )
    parser.add_argument(
        "--refresh",
        type=float,
        default=DEFAULT_REFRESH_SECONDS,
        help="seconds between the page's automatic refreshes (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port {args.port} is out of range; use 0 to 65535")
    if not 0.2 <= args.refresh <= 3600:
        parser.error(f"--refresh {args.refresh:g} is out of range; use 0.2 to 3600 seconds")
    return args


def main(argv: list[str] | None = None) -> int:
    from sample.runtime import configure_logging, create_client
    from sample.settings import AuthenticationError, SettingsError, load_settings
    from sample.shutdown import StopSignals

    args = parse_args(argv)
    configure_logging(verbose=False)
    # Before gRPC or the HTTP server start any thread: see StopSignals for why.
    stop = StopSignals()

    try:
        settings = load_settings()
        client = create_client(settings)
    except (SettingsError, AuthenticationError) as error:
        logger.error("%s", error)
        return 2

    try:
        dashboard = start_dashboard(client, settings.endpoint, args.host, args.port, args.refresh)
    except OSError as error:
        client.close()
        logger.error(
            "Cannot listen on %s:%d: %s; pick another port with --port",
            args.host,
            args.port,
            error.strerror or error,
        )
        return 1

    logger.info("Dashboard at %s for %s; press Ctrl+C to stop", dashboard.url, settings.describe())
    if args.host not in LOOPBACK_HOSTS:
        logger.warning(
            "Listening on %s without authentication: anyone who can reach it can read every "
            "orchestration and entity",
            args.host,
        )
    stop.wait()
    logger.info("Received %s; stopping", stop.received.name if stop.received else "stop signal")
    dashboard.stop()
    logger.info("Dashboard stopped")
    return 0
