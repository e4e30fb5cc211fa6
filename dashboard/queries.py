"""Read orchestrations and entities through the SDK client's public API.

Nothing here touches a backend's internals, so the same code reads the local
scheduler, the emulator or a scheduler in Azure. Every call is read-only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields, is_dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from durabletask import history
from durabletask.client import (
    EntityQuery,
    OrchestrationQuery,
    OrchestrationState,
    OrchestrationStatus,
    TaskHubGrpcClient,
)
from durabletask.entities import EntityInstanceId, EntityMetadata
from durabletask.task import FailureDetails

PAGE_SIZE = 50

# Lowercase status names, as the filter and the pages show them.
STATUS_NAMES = {status.name.lower(): status for status in OrchestrationStatus}

T = TypeVar("T")


class InvalidFilter(ValueError):
    """A query parameter the dashboard cannot use; the message names it."""


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    number: int
    total: int
    size: int = PAGE_SIZE

    @property
    def count(self) -> int:
        return max(1, math.ceil(self.total / self.size))

    @property
    def first_index(self) -> int:
        """1-based position of the first item on this page, 0 when there are none."""
        return (self.number - 1) * self.size + 1 if self.items else 0

    @property
    def last_index(self) -> int:
        return (self.number - 1) * self.size + len(self.items)


def paginate(items: Sequence[T], number: int, size: int = PAGE_SIZE) -> Page[T]:
    """Cut one page out of `items`; a page past the end is empty, not an error."""
    if number < 1:
        raise InvalidFilter(f"Invalid page {number}: pages start at 1.")
    start = (number - 1) * size
    return Page(list(items[start : start + size]), number, len(items), size)


def parse_status(text: str) -> OrchestrationStatus | None:
    """Return the status named by `text` (any case), or None for an empty filter."""
    if not text:
        return None
    status = STATUS_NAMES.get(text.strip().lower())
    if status is None:
        allowed = ", ".join(STATUS_NAMES)
        raise InvalidFilter(f"Invalid status {text!r}; use one of: {allowed}.")
    return status


def parse_page_number(text: str) -> int:
    if not text:
        return 1
    try:
        number = int(text)
    except ValueError:
        raise InvalidFilter(f"Invalid page {text!r}: use a whole number such as 2.") from None
    if number < 1:
        raise InvalidFilter(f"Invalid page {number}: pages start at 1.")
    return number


def as_utc(moment: datetime) -> datetime:
    # OrchestrationState carries naive datetimes that are UTC (protobuf's ToDatetime()).
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def pretty_json(text: str | None) -> str | None:
    """Indent a serialized JSON value for reading; text that is not JSON is returned as is."""
    if text is None or text == "":
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return json.dumps(value, indent=2, ensure_ascii=False)


# ---------------------------------------------------------------- orchestrations


def list_orchestrations(
    client: TaskHubGrpcClient,
    status: OrchestrationStatus | None = None,
    id_prefix: str = "",
    page: int = 1,
) -> Page[OrchestrationState]:
    """Return one page of orchestrations, newest first, without inputs and outputs."""
    query = OrchestrationQuery(
        runtime_status=[status] if status else None,
        instance_id_prefix=id_prefix or None,
        fetch_inputs_and_outputs=False,
    )
    # NOTE: each call fetches the summary of every matching instance and pages here.
    # QueryInstances pages oldest first behind opaque continuation tokens, and
    # get_all_orchestration_states follows all of them, so newest-first paging needs
    # the whole list. A few thousand summaries are fine; hundreds of thousands are not.
    states = client.get_all_orchestration_states(query)
    # Some schedulers list entities among instances; their IDs start with '@'.
    orchestrations = [state for state in states if not state.instance_id.startswith("@")]
    orchestrations.sort(key=lambda state: (as_utc(state.created_at), state.instance_id))
    orchestrations.reverse()
    return paginate(orchestrations, page)


@dataclass(frozen=True)
class HistoryRow:
    """One history event, described for people."""

    number: int
    kind: str
    timestamp: datetime | None
    summary: str
    entity_id: str | None = None

    @property
    def entity_name(self) -> str:
        return EntityInstanceId.parse(self.entity_id).entity if self.entity_id else ""

    @property
    def entity_key(self) -> str:
        return EntityInstanceId.parse(self.entity_id).key if self.entity_id else ""


@dataclass(frozen=True)
class OrchestrationDetail:
    state: OrchestrationState
    input: str | None
    output: str | None
    custom_status: str | None
    failures: list[FailureDetails]
    history: list[HistoryRow]


def get_orchestration(client: TaskHubGrpcClient, instance_id: str) -> OrchestrationDetail | None:
    """Return one orchestration with its payloads and history, or None if it does not exist."""
    state = client.get_orchestration_state(instance_id, fetch_payloads=True)
    if state is None:
        return None
    events = client.get_orchestration_history(instance_id)
    failures: list[FailureDetails] = []
    failure = state.failure_details
    while failure is not None:
        failures.append(failure)
        failure = failure.inner_failure
    return OrchestrationDetail(
        state=state,
        input=pretty_json(state.serialized_input),
        output=pretty_json(state.serialized_output),
        custom_status=pretty_json(state.serialized_custom_status),
        failures=failures,
        history=[describe_event(number, event) for number, event in enumerate(events, 1)],
    )


def describe_event(number: int, event: history.HistoryEvent) -> HistoryRow:
    """Describe one event; entity signals and calls also name their target entity."""
    kind = _event_kind(event)
    timestamp = _recorded_time(event.timestamp)
    entity_id = None
    if isinstance(event, history.EntityOperationSignaledEvent):
        summary = f"signal '{event.operation}'{_with_input(event.input)}"
        entity_id = event.target_instance_id
    elif isinstance(event, history.EntityOperationCalledEvent):
        summary = f"call '{event.operation}'{_with_input(event.input)}"
        entity_id = event.target_instance_id
    elif isinstance(event, history.EntityOperationCompletedEvent):
        summary = f"call returned {event.output if event.output is not None else 'nothing'}"
    elif isinstance(event, history.EntityOperationFailedEvent):
        summary = f"call failed: {_failure(event.failure_details)}"
    elif isinstance(event, history.ExecutionStartedEvent):
        summary = f"'{event.name}'{_with_input(event.input)}"
    elif isinstance(event, history.ExecutionCompletedEvent):
        summary = f"result {event.result}" if event.result is not None else "no result"
        if event.failure_details is not None:
            summary = _failure(event.failure_details)
    else:
        summary = _generic_summary(event)
    return HistoryRow(number, kind, timestamp, summary, entity_id)


def _event_kind(event: history.HistoryEvent) -> str:
    # EntityOperationSignaledEvent -> "Entity operation signaled"
    name = type(event).__name__.removesuffix("Event")
    words: list[str] = []
    for character in name:
        if character.isupper() and words:
            words.append(" ")
        words.append(character.lower() if words else character)
    return "".join(words)


def _recorded_time(moment: datetime) -> datetime | None:
    # NOTE: the in-memory backend (durabletask 1.12.0) stamps only the
    # OrchestratorStarted events; every other event arrives with the protobuf default,
    # 1970-01-01. That default means "not recorded", so the page shows no time for it.
    utc = as_utc(moment)
    return None if utc.timestamp() == 0 else utc


def _with_input(serialized: str | None) -> str:
    return f" with input {serialized}" if serialized else ""


def _failure(details: FailureDetails | None) -> str:
    if details is None:
        return "failed"
    return f"{details.error_type}: {details.message}"


def _generic_summary(event: history.HistoryEvent) -> str:
    if not is_dataclass(event):
        return ""
    parts = []
    for field in fields(event):
        if field.name in ("event_id", "timestamp"):
            continue
        value: Any = getattr(event, field.name)
        if value is None or value in ("", []):
            continue
        parts.append(f"{field.name}={value}")
    return ", ".join(parts)


# ---------------------------------------------------------------- entities


@dataclass(frozen=True)
class EntityRow:
    entity_id: str
    name: str
    key: str
    state: str | None
    last_modified: datetime
    backlog: int


def list_entities(
    client: TaskHubGrpcClient, name: str = "", key_prefix: str = "", page: int = 1
) -> Page[EntityRow]:
    """Return one page of entities sorted by ID, with their state and backlog size.

    `name` matches the entity name exactly (names are lowercase); `key_prefix` matches
    the start of the key, case-sensitively.
    """
    name = name.strip().lower()
    if "@" in name or "@" in key_prefix:
        raise InvalidFilter("Invalid filter: entity names and keys never contain '@'.")
    prefix = f"@{name}@{key_prefix}" if name else "@"

    # include_transient=True requests every entity, also those without state. A
    # correct scheduler then lists entities that have only queued operations, and the
    # in-memory backend of durabletask 1.12.0, which reads the flag inverted, lists
    # every entity too. The default (False) would hide, on that backend, each entity
    # with queued operations: exactly the ones a person watching the backlog wants.
    # One query therefore covers both readings of the flag.
    query = EntityQuery(instance_id_starts_with=prefix, include_state=True, include_transient=True)
    rows = [_entity_row(metadata) for metadata in client.get_all_entities(query)]

    # An entity whose state was deleted and that has nothing queued no longer exists
    # for its user. That backend still lists it, but a correct one would not.
    visible = [row for row in rows if row.state is not None or row.backlog > 0]
    if not name and key_prefix:
        visible = [row for row in visible if row.key.startswith(key_prefix)]
    visible.sort(key=lambda row: row.entity_id)
    return paginate(visible, page)


def _entity_row(metadata: EntityMetadata) -> EntityRow:
    raw = metadata.get_state()
    return EntityRow(
        entity_id=str(metadata.id),
        name=metadata.id.entity,
        key=metadata.id.key,
        state=pretty_json(raw if isinstance(raw, str) else None),
        last_modified=as_utc(metadata.last_modified),
        backlog=metadata.backlog_queue_size,
    )
