"""Build the worker and client images from their Dockerfiles and run them for real.

No Docker engine is needed: buildah builds the images (`--isolation chroot`, no daemon)
and podman runs them, both as root, with the settings in tests/containers/containers.conf.
No registry is needed either:

- The base image is substituted, and only it: `--build-arg PYTHON_IMAGE=` points the
  unchanged Dockerfiles at localhost/python-base:bookworm, which
  tests/containers/make_base_image.sh builds with debootstrap. It has Debian bookworm's
  Python 3.11 where python:3.12-slim has 3.12; the sample supports both.
- The packages in requirements.txt are downloaded as wheels on the host, once per
  version of that file, and mounted into the build at /wheels, where the base image's
  pip.conf points pip.

The containers use the host's network, so they reach a local scheduler on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.processes import ROOT, Process, start_worker, wait_for

CONTAINERS_CONF = ROOT / "tests" / "containers" / "containers.conf"
MAKE_BASE_IMAGE = ROOT / "tests" / "containers" / "make_base_image.sh"
BASE_IMAGE = os.environ.get("PYTHON_BASE_IMAGE", "localhost/python-base:bookworm")
# Tags unique to this test run, so that two checkouts testing at once on one machine
# never run each other's images.
RUN_TAG = f"test-{os.getpid()}"
IMAGES = {
    "worker": f"localhost/durable-entities-worker:{RUN_TAG}",
    "client": f"localhost/durable-entities-client:{RUN_TAG}",
}
FINAL_VALUE = re.compile(r"^  [0-9a-f]{32}: Counter '(.+)' final value: (\d+)$", re.MULTILINE)

# Seconds within which a container must exit after SIGTERM.
STOP_DEADLINE = 5

pytestmark = pytest.mark.e2e


def container_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def run_tool(*command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=ROOT,
        env=container_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def skip_unless_tools_ready() -> None:
    if os.geteuid() != 0:
        pytest.skip("building and running images with buildah and podman needs root")
    missing = [tool for tool in ("buildah", "podman", "runc") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed; apt-get install buildah podman runc")
    if run_tool("podman", "image", "exists", BASE_IMAGE).returncode != 0:
        pytest.skip(f"base image {BASE_IMAGE} not found; build it with {MAKE_BASE_IMAGE}")


def wheel_directory() -> Path:
    """Return a directory of wheels for requirements.txt, downloading them on first use."""
    requirements = ROOT / "requirements.txt"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    wheels = cache / "durable-entities-sample" / f"wheels-{digest}"
    if wheels.is_dir():
        return wheels

    # Download next to the final place and rename, so an interrupted download is not reused.
    partial = wheels.with_name(f"{wheels.name}.partial-{os.getpid()}")
    partial.mkdir(parents=True)
    download = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q"]
    download += ["--only-binary=:all:", "-d", str(partial), "-r", str(requirements)]
    subprocess.run(download, check=True, timeout=600)
    partial.rename(wheels)
    return wheels


def build_image(service: str, wheels: Path) -> None:
    result = run_tool(
        "buildah",
        "build",
        "--isolation",
        "chroot",
        "--pull=never",
        "--layers",
        "--build-arg",
        f"PYTHON_IMAGE={BASE_IMAGE}",
        "--volume",
        f"{wheels}:/wheels:ro",
        "--file",
        f"Dockerfile.{service}",
        "--tag",
        IMAGES[service],
        ".",
        timeout=600,
    )
    assert result.returncode == 0, f"building Dockerfile.{service} failed:\n{result.stderr}"


@pytest.fixture(scope="module")
def images() -> Iterator[dict[str, str]]:
    skip_unless_tools_ready()
    wheels = wheel_directory()
    for service in IMAGES:
        build_image(service, wheels)
    yield IMAGES
    # Only the run's tags go; the layers stay cached for the next build.
    for image in IMAGES.values():
        run_tool("podman", "rmi", image, timeout=60)


def podman_run(
    name: str, image: str, endpoint: str, *command: str, env: dict[str, str]
) -> list[str]:
    arguments = ["podman", "run", "--name", name, "--pull", "never", "--network", "host"]
    for key, value in {"ENDPOINT": endpoint, "TASKHUB": "default", **env}.items():
        arguments += ["--env", f"{key}={value}"]
    return [*arguments, image, *command]


@pytest.fixture
def container_name() -> Iterator[Callable[[str], str]]:
    """A unique container name; the container is removed after the test, whatever happened."""
    names: list[str] = []

    def new_name(role: str) -> str:
        names.append(f"durable-entities-{role}-{uuid.uuid4().hex[:8]}")
        return names[-1]

    yield new_name
    for name in names:
        run_tool("podman", "rm", "--force", "--ignore", "--time", "0", name)


def stop_container(name: str, process: Process) -> int:
    """Send SIGTERM to the container and return its exit status, failing after the deadline."""
    result = run_tool("podman", "kill", "--signal", "TERM", name)
    assert result.returncode == 0, result.stderr
    try:
        return process.popen.wait(timeout=STOP_DEADLINE)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"container {name} did not stop within {STOP_DEADLINE} s of SIGTERM:\n"
            f"{process.output()}"
        ) from None


@pytest.mark.parametrize("service", ["worker", "client"])
def test_image_runs_as_non_root(images: dict[str, str], service: str) -> None:
    result = run_tool("podman", "image", "inspect", "--format", "{{.Config.User}}", images[service])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "10001"


def test_worker_and_one_round_client_containers(
    images: dict[str, str],
    private_endpoint: str,
    unique_key: str,
    container_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    worker_name = container_name("worker")
    worker = Process(
        podman_run(worker_name, images["worker"], private_endpoint, env={}),
        tmp_path / "worker-container.log",
        container_env(),
    )
    wait_for(
        lambda: "Worker started" in worker.output() or not worker.running(),
        60,
        "worker container logging 'Worker started'",
    )
    assert worker.running(), worker.output()

    # The image's command runs rounds until SIGTERM; this run replaces it with one round.
    client = run_tool(
        *podman_run(
            container_name("client"),
            images["client"],
            private_endpoint,
            "python",
            "client.py",
            unique_key,
            env={},
        ),
        timeout=120,
    )

    assert client.returncode == 0, client.stdout + client.stderr
    finals = FINAL_VALUE.findall(client.stdout)
    assert finals == [(f"{unique_key}-orch-{number}", "12") for number in range(1, 6)]
    assert f"Counter '{unique_key}' value: 75" in client.stdout

    status = stop_container(worker_name, worker)
    assert status == 0, worker.output()
    assert "Worker stopped" in worker.output()


def test_looping_client_container_stops_on_sigterm(
    images: dict[str, str],
    private_endpoint: str,
    container_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    worker = start_worker(private_endpoint, tmp_path / "worker.log")
    try:
        name = container_name("client")
        # The image's own command (--loop, default key): arguments after the image would
        # replace it. An hour between rounds, so exactly one round runs.
        command = podman_run(
            name, images["client"], private_endpoint, env={"ORCHESTRATION_INTERVAL": "3600"}
        )
        client = Process(command, tmp_path / "client-container.log", container_env())
        wait_for(
            lambda: "Next round in 3600 s" in client.output() or not client.running(),
            120,
            "looping client container finishing its first round",
        )
        assert client.running(), client.output()

        status = stop_container(name, client)
    finally:
        worker.stop()

    assert status == 0, client.output()
    assert "5 of 5 orchestrations completed" in client.output()
    assert "Received SIGTERM; stopped during round 1" in client.output()
