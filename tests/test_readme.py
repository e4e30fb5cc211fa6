"""The README's expected output and commands match what the code does."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.processes import PYTHON, ROOT, run_client, start_worker

README = ROOT / "README.md"
INSTANCE_ID = re.compile(r"\b[0-9a-f]{32}\b")
ELAPSED = re.compile(r"completed in \d+\.\d+ s")


def readme_block(marker: str) -> str:
    """Return the fenced block that follows `<!-- marker -->` in the README."""
    text = README.read_text()
    match = re.search(rf"<!-- {marker} -->\n```\w*\n(.*?)```", text, re.DOTALL)
    assert match is not None, f"README has no block after <!-- {marker} -->"
    return match[1]


def mask(text: str) -> str:
    return ELAPSED.sub("completed in <elapsed> s", INSTANCE_ID.sub("<instance-id>", text))


@pytest.mark.e2e
def test_expected_output_matches_real_run(private_endpoint: str, tmp_path: Path) -> None:
    # The README shows the default key on a fresh task hub, so this needs a scheduler
    # of its own: the default key would collide with other runs on a shared one.
    worker = start_worker(private_endpoint, tmp_path / "worker.log")
    try:
        result = run_client(private_endpoint)
    finally:
        worker.stop()

    assert result.returncode == 0, result.stderr
    assert mask(result.stdout) == mask(readme_block("expected-client-output"))


@pytest.mark.parametrize("option", ["--count", "--interval", "--timeout", "--loop", "--verbose"])
def test_client_options_documented(option: str) -> None:
    help_text = subprocess.run(
        [PYTHON, "client.py", "--help"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert option in help_text
    assert f"`{option}" in README.read_text()


@pytest.mark.parametrize(
    "variable",
    [
        "ENDPOINT",
        "TASKHUB",
        "AZURE_MANAGED_IDENTITY_CLIENT_ID",
        "DURABLE_TASK_SCHEDULER_CONNECTION_STRING",
        "ORCHESTRATION_INTERVAL",
        "DTS_TEST_ENDPOINT",
    ],
)
def test_settings_documented(variable: str) -> None:
    assert f"`{variable}`" in README.read_text()


@pytest.mark.parametrize("target", ["demo", "test", "scheduler", "worker", "client"])
def test_make_targets_in_readme_exist(target: str) -> None:
    result = subprocess.run(
        ["make", "-n", target], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert f"make {target}" in README.read_text()
