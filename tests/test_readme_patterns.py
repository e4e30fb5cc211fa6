"""The README's walk through the pattern sub-commands prints what it shows."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.processes import PYTHON, ROOT, process_env, start_worker
from tests.test_readme import readme_block

LOG_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ", re.MULTILINE)
APPLIED = re.compile(r"applied \d+\.\d s after")
EXIT_STATUS = re.compile(r"\s+# exit status (\d+)$")


def mask(text: str) -> str:
    return APPLIED.sub("applied <elapsed> s after", LOG_TIME.sub("<time> ", text))


def walkthrough() -> list[tuple[list[str], int, str]]:
    """Return (client arguments, exit status, output) for each `$ python client.py` step."""
    steps: list[tuple[list[str], int, str]] = []
    for line in readme_block("expected-patterns-output").splitlines(keepends=True):
        if not line.startswith("$ "):
            arguments, status, output = steps[-1]
            steps[-1] = (arguments, status, output + line)
            continue
        command = line[2:].rstrip("\n")
        status_match = EXIT_STATUS.search(command)
        status = int(status_match[1]) if status_match else 0
        words = shlex.split(EXIT_STATUS.sub("", command))
        assert words[:2] == ["python", "client.py"], line
        steps.append((words[2:], status, ""))
    return steps


def test_walkthrough_covers_every_sub_command() -> None:
    used = {arguments[0] for arguments, _, _ in walkthrough()}
    assert used == {"account", "transfer", "list", "delete", "delayed"}


@pytest.mark.e2e
def test_walkthrough_matches_real_run(private_endpoint: str, tmp_path: Path) -> None:
    # The README starts from a fresh task hub, so it needs a scheduler of its own.
    worker = start_worker(private_endpoint, tmp_path / "worker.log")
    try:
        for arguments, status, expected in walkthrough():
            result = subprocess.run(
                [PYTHON, "client.py", *arguments],
                cwd=ROOT,
                # argparse wraps its usage lines at the terminal width; the README shows 80.
                env=process_env(private_endpoint, {"COLUMNS": "80"}),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            step = " ".join(arguments)
            assert result.returncode == status, f"{step}: {result.stdout}{result.stderr}"
            assert mask(result.stdout + result.stderr) == mask(expected), step
    finally:
        worker.stop()
