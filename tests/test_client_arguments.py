"""How client.py distinguishes a sub-command from the counter demo's entity key."""

from __future__ import annotations

import pytest

from sample.client_commands import find_command
from tests.processes import run_client


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ([], None),
        (["my-counter"], None),
        (["list"], ["list"]),
        (["-v", "list"], ["list", "-v"]),
        (
            ["--timeout", "5", "account", "alice", "balance"],
            ["account", "--timeout", "5", "alice", "balance"],
        ),
        (["--timeout=5", "delete", "account", "a"], ["delete", "--timeout=5", "account", "a"]),
        (["--", "list"], None),
        (["--count", "2", "list"], None),
        (["-v"], None),
    ],
)
def test_find_command(arguments: list[str], expected: list[str] | None) -> None:
    assert find_command(arguments) == expected


def test_option_before_sub_command_runs_it() -> None:
    result = run_client("http://127.0.0.1:1", "-v", "list", "--help", timeout=30)
    assert result.returncode == 0, result.stderr
    assert "usage: python client.py list" in result.stdout
