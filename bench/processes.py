"""Start and stop the scheduler and worker processes that the benchmark measures."""

from __future__ import annotations

import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from sample.runtime import scheduler_answers

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
STOP_TIMEOUT = 15.0


class BenchmarkError(Exception):
    """The benchmark could not run; the message says what failed."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` until it holds; raise BenchmarkError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    pause = 0.01
    while not condition():
        if time.monotonic() > deadline:
            raise BenchmarkError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


class Child:
    """A child process whose output goes to a log file, so a full pipe never blocks it."""

    def __init__(self, name: str, command: list[str], log_path: Path, endpoint: str) -> None:
        self.name = name
        self.log_path = log_path
        env = dict(os.environ)
        env.pop("DURABLE_TASK_SCHEDULER_CONNECTION_STRING", None)
        env.update(ENDPOINT=endpoint, TASKHUB="default", PYTHONUNBUFFERED="1")
        with open(log_path, "w") as log:
            self.popen = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def check_running(self) -> None:
        if self.popen.poll() is not None:
            raise BenchmarkError(
                f"{self.name} exited with status {self.popen.returncode}; "
                f"its log {self.log_path} ends with:\n{self.output()[-2000:]}"
            )

    def peak_rss_bytes(self) -> int:
        """Return the peak resident set size so far (VmHWM in /proc), 0 where /proc lacks it."""
        try:
            status = Path(f"/proc/{self.popen.pid}/status").read_text()
        except OSError:
            return 0
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return 0

    def cpu_seconds(self) -> float:
        """Return the user plus system CPU time the process has used, from /proc."""
        try:
            stat = Path(f"/proc/{self.popen.pid}/stat").read_text()
        except OSError:
            return 0.0
        # Fields after the command name, which is in parentheses and may hold spaces.
        fields = stat.rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])  # utime and stime
        return ticks / os.sysconf("SC_CLK_TCK")

    def pause(self) -> None:
        """Freeze the process (SIGSTOP); work items sent to it wait until resume()."""
        self.popen.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.popen.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Stop with SIGTERM, as a user would; kill only if it does not stop in time."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGCONT)
            self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


def start_scheduler(log_dir: Path, name: str) -> tuple[Child, str]:
    """Start `python -m local_scheduler` on a free loopback port and wait until it answers."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    command = [PYTHON, "-m", "local_scheduler", "--port", str(port)]
    child = Child(f"scheduler {name}", command, log_dir / f"scheduler-{name}.log", endpoint)

    def ready() -> bool:
        child.check_running()
        return scheduler_answers(endpoint)

    try:
        wait_until(ready, 20, f"the local scheduler at {endpoint}")
    except BenchmarkError:
        child.stop()
        raise
    return child, endpoint


def start_sample_worker(endpoint: str, log_path: Path) -> Child:
    return Child("worker.py", [PYTHON, "worker.py"], log_path, endpoint)


def start_bench_worker(kind: str, endpoint: str, log_path: Path) -> Child:
    return Child(f"{kind} worker", [PYTHON, "-m", "bench.workers", kind], log_path, endpoint)


def cpu_model() -> str:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    for line in cpuinfo.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def describe_machine() -> dict[str, Any]:
    """Describe the machine and software that a result was measured on."""
    try:
        usable_cores = len(os.sched_getaffinity(0))
    except AttributeError:
        usable_cores = os.cpu_count() or 0
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cores": usable_cores,
        "memory_gib": round(_memory_bytes() / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "durabletask": metadata.version("durabletask"),
        "grpcio": metadata.version("grpcio"),
        "load_average_at_start": list(os.getloadavg()),
    }


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0
