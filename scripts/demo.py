"""One-command demo: scheduler (if needed), worker and client, then clean up.

    python scripts/demo.py [--keep-running] [--dashboard-port N | --no-dashboard]
                           [client arguments...]

If nothing answers at ENDPOINT and it names this machine, a local scheduler is
started on its port, with its web dashboard on port 8082 (--dashboard-port).
The worker's and scheduler's logs are shown with a prefix.
Everything this script started is stopped at the end, also after a failure or
Ctrl+C, and the exit status is the client's.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sample.runtime import scheduler_answers  # noqa: E402
from sample.settings import SettingsError, load_settings  # noqa: E402
from sample.shutdown import HANGUP_SIGNALS, StopSignals  # noqa: E402

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
STOP_TIMEOUT = 10.0
DEFAULT_DASHBOARD_PORT = 8082
# The local scheduler logs this line once its dashboard listens.
DASHBOARD_LINE = re.compile(r"Dashboard at (http://\S+)")
DASHBOARD_NOT_STARTED = "Dashboard not started"


def wait_until_answers(
    endpoint: str, process: subprocess.Popen[str], stop: StopSignals, timeout: float = 15.0
) -> None:
    deadline = time.monotonic() + timeout
    while not scheduler_answers(endpoint, timeout=0.5):
        if stop.is_set():
            return
        if process.poll() is not None:
            raise RuntimeError(
                f"the local scheduler exited with status {process.returncode}; see its log above"
            )
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the local scheduler did not answer at {endpoint} within {timeout:g} s"
            )
        time.sleep(0.1)


class DashboardWatch:
    """The dashboard URL that the local scheduler logs, once it has logged one or failed."""

    def __init__(self) -> None:
        self.url: str | None = None
        self.decided = threading.Event()

    def check(self, line: str) -> None:
        match = DASHBOARD_LINE.search(line)
        if match:
            self.url = match.group(1)
            self.decided.set()
        elif DASHBOARD_NOT_STARTED in line:
            self.decided.set()


def relay_output(
    stream: IO[str], prefix: str, on_line: Callable[[str], None] | None = None
) -> None:
    for line in stream:
        sys.stderr.write(f"{prefix} | {line}")
        sys.stderr.flush()
        if on_line is not None:
            on_line(line)


def start(
    command: list[str], prefix: str, on_line: Callable[[str], None] | None = None
) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # A separate process group keeps Ctrl+C in the terminal from reaching the
        # child directly: this script stops children itself, in order.
        start_new_session=True,
    )
    assert process.stdout is not None
    threading.Thread(
        target=relay_output, args=(process.stdout, prefix, on_line), daemon=True
    ).start()
    return process


def stop_process(process: subprocess.Popen[str], name: str) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            print(
                f"demo: {name} did not stop within {STOP_TIMEOUT:g} s; killing it", file=sys.stderr
            )
        process.kill()
        process.wait()


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """Split the demo's own options from the client arguments that follow them."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="after the client, keep the scheduler and worker running until Ctrl+C",
    )
    parser.add_argument(
        "--dashboard-port",
        type=int,
        default=DEFAULT_DASHBOARD_PORT,
        help="port of the dashboard of the local scheduler this script starts "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--no-dashboard",
        action="store_true",
        help="start the local scheduler without its dashboard",
    )
    return parser.parse_known_args(argv)


def scheduler_command(port: str, args: argparse.Namespace) -> list[str]:
    command = [sys.executable, "-m", "local_scheduler", "--port", port]
    if args.no_dashboard:
        return [*command, "--no-dashboard"]
    return [*command, "--dashboard-port", str(args.dashboard_port)]


def announce_dashboard(watch: DashboardWatch) -> None:
    # The scheduler logs the dashboard's address within a second of starting, long
    # before the client ends; the timeout only covers a slow relay thread.
    watch.decided.wait(timeout=5)
    if watch.url:
        print(f"demo: dashboard at {watch.url}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args, client_args = parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"demo: {error}", file=sys.stderr)
        return 2

    client: subprocess.Popen[bytes] | None = None

    def forward_stop(received: signal.Signals) -> None:
        # Ctrl+C in a terminal reaches the client, which shares this process group,
        # by itself; SIGTERM or SIGHUP sent to this script alone is passed on as SIGTERM.
        if received is not signal.SIGINT and client is not None and client.poll() is None:
            client.send_signal(signal.SIGTERM)

    # Before any thread starts: see StopSignals. Cleanup is bounded, so a second
    # Ctrl+C does not cut it short and leave children behind.
    # SIGHUP counts too: the children run in sessions of their own, so a closed
    # terminal would otherwise leave them running.
    stop = StopSignals(on_signal=forward_stop, exit_on_second=False, signals=HANGUP_SIGNALS)
    started: list[tuple[str, subprocess.Popen[str]]] = []
    status: int | None = None
    dashboard = DashboardWatch()
    try:
        if not settings.secure and not scheduler_answers(settings.endpoint):
            parts = urlsplit(settings.endpoint)
            if parts.hostname not in LOCAL_HOSTS:
                print(
                    f"demo: nothing answers at {settings.endpoint}, and it is not on this machine",
                    file=sys.stderr,
                )
                return 1
            port = str(parts.port or 80)
            print(f"demo: starting a local scheduler on port {port}", file=sys.stderr)
            scheduler = start(scheduler_command(port, args), "scheduler", dashboard.check)
            started.append(("scheduler", scheduler))
            wait_until_answers(settings.endpoint, scheduler, stop)

        started.append(("worker", start([sys.executable, "worker.py"], "worker")))
        if not stop.is_set():
            # The client inherits this process's blocked signals and unblocks them itself.
            client_process = subprocess.Popen([sys.executable, "client.py", *client_args], cwd=ROOT)
            client = client_process
            status = client_process.wait()
            if status < 0:
                # Killed by a signal: report it as a shell does, 128 + the signal number.
                status = 128 - status

        if args.keep_running and not stop.is_set():
            if started[0][0] == "scheduler" and not args.no_dashboard:
                announce_dashboard(dashboard)
            print("demo: still running; press Ctrl+C to stop", file=sys.stderr)
            stop.wait()
    except RuntimeError as error:
        print(f"demo: {error}", file=sys.stderr)
    finally:
        if stop.is_set():
            # After SIGHUP the terminal may be gone, and nothing may stop the cleanup.
            with contextlib.suppress(OSError):
                print("demo: interrupted", file=sys.stderr)
        for name, process in reversed(started):
            stop_process(process, name)
    if status is None:
        return 130 if stop.is_set() else 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
