"""Helpers for the dashboard's tests; their fixtures are in tests/dashboard_fixtures.py."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from durabletask import task
from durabletask.client import TaskHubGrpcClient
from durabletask.entities import EntityContext

QUIET = logging.getLogger("durabletask.tests")
QUIET.setLevel(logging.WARNING)


def store(ctx: EntityContext, input: Any) -> Any:
    """An entity that keeps what `set` sends it; `delete` removes its state."""
    if ctx.operation == "set":
        ctx.set_state(input)
    elif ctx.operation == "delete":
        ctx.set_state(None)
    return input


def waiter(ctx: task.OrchestrationContext, _: Any) -> Generator[task.Task[Any], Any, str]:
    """An orchestration that stays running until it receives `go` or is terminated."""
    ctx.set_custom_status({"step": "waiting for go"})
    yield ctx.wait_for_external_event("go")
    return "done"


@dataclass
class Scheduler:
    endpoint: str
    client: TaskHubGrpcClient

    @property
    def address(self) -> str:
        return self.endpoint.removeprefix("http://")


@dataclass
class HttpResponse:
    status: int
    body: str
    headers: dict[str, str]


def http_get(url: str, headers: dict[str, str] | None = None) -> HttpResponse:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return HttpResponse(
                response.status, response.read().decode(), dict(response.headers.items())
            )
    except urllib.error.HTTPError as error:
        return HttpResponse(error.code, error.read().decode(), dict(error.headers.items()))


def stored_state(client: TaskHubGrpcClient, entity_id: Any) -> Any:
    """The entity's state as a Python value, or None while it has none."""
    metadata = client.get_entity(entity_id)
    if metadata is None or not metadata.get_state():
        return None
    return json.loads(metadata.get_state())
