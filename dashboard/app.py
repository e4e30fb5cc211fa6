"""The dashboard's Flask application: three read-only views over one SDK client.

Each list page is served whole on the first request. The page's script then asks
for the same URL every few seconds with the `X-Dashboard-Fragment` header and
swaps in only the part below the filter form, so the filter the user typed and
the scroll position stay as they were.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
from durabletask.client import TaskHubGrpcClient
from flask import Flask, Response, abort, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from dashboard import queries

FRAGMENT_HEADER = "X-Dashboard-Fragment"
DEFAULT_REFRESH_SECONDS = 3.0
CONTEXT_KEY = "durable_dashboard"


@dataclass(frozen=True)
class DashboardContext:
    client: TaskHubGrpcClient
    endpoint: str
    refresh_seconds: float


def create_app(
    client: TaskHubGrpcClient, endpoint: str, refresh_seconds: float = DEFAULT_REFRESH_SECONDS
) -> Flask:
    """Build the application around a client; `endpoint` is only shown to the user."""
    app = Flask(__name__)
    app.extensions[CONTEXT_KEY] = DashboardContext(client, endpoint, refresh_seconds)
    app.jinja_env.filters["time"] = format_time
    app.add_url_rule("/", "index", lambda: redirect(url_for("orchestrations")))
    app.add_url_rule("/orchestrations", "orchestrations", orchestrations_view)
    app.add_url_rule("/orchestrations/<path:instance_id>", "orchestration", orchestration_view)
    app.add_url_rule("/entities", "entities", entities_view)
    app.add_url_rule("/healthz", "healthz", lambda: {"endpoint": endpoint})
    app.register_error_handler(queries.InvalidFilter, invalid_filter)
    app.register_error_handler(grpc.RpcError, scheduler_error)
    app.register_error_handler(404, not_found)
    app.after_request(add_security_headers)
    return app


def add_security_headers(response: Response) -> Response:
    # The templates escape every value already. The policy is a second line: even a
    # value that slipped through unescaped could run no inline script or handler.
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def context() -> DashboardContext:
    from flask import current_app

    value: DashboardContext = current_app.extensions[CONTEXT_KEY]
    return value


def format_time(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return queries.as_utc(moment).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def render(template: str, **values: object) -> str:
    """Render the whole page, or only its live part when the page's script asks."""
    fragment = request.headers.get(FRAGMENT_HEADER) == "1"
    ctx = context()
    return render_template(
        template,
        fragment=fragment,
        endpoint=ctx.endpoint,
        refresh_ms=int(ctx.refresh_seconds * 1000),
        fragment_header=FRAGMENT_HEADER,
        now=datetime.now(UTC),
        **values,
    )


def orchestrations_view() -> str:
    status_text = request.args.get("status", "")
    prefix = request.args.get("prefix", "")
    status = queries.parse_status(status_text)
    number = queries.parse_page_number(request.args.get("page", ""))
    page = queries.list_orchestrations(context().client, status, prefix, number)
    return render(
        "orchestrations.html",
        page=page,
        status=status.name.lower() if status else "",
        prefix=prefix,
        statuses=list(queries.STATUS_NAMES),
    )


def orchestration_view(instance_id: str) -> str:
    detail = queries.get_orchestration(context().client, instance_id)
    if detail is None:
        abort(404, description=f"Orchestration '{instance_id}' not found on this scheduler.")
    return render("orchestration.html", detail=detail)


def entities_view() -> str:
    name = request.args.get("name", "")
    key_prefix = request.args.get("key", "")
    number = queries.parse_page_number(request.args.get("page", ""))
    page = queries.list_entities(context().client, name, key_prefix, number)
    return render("entities.html", page=page, name=name, key_prefix=key_prefix)


def invalid_filter(error: queries.InvalidFilter) -> tuple[str, int] | Response:
    return _message("Invalid filter", str(error), 400)


def scheduler_error(error: grpc.RpcError) -> tuple[str, int] | Response:
    """Turn a failed gRPC call into a plain message; the scheduler being down is 503."""
    code = error.code() if isinstance(error, grpc.Call) else None
    details = error.details() if isinstance(error, grpc.Call) else str(error)
    endpoint = context().endpoint
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        message = (
            f"Cannot reach the scheduler at {endpoint}: {details}. "
            "Start it, or point the dashboard at another ENDPOINT."
        )
        return _message("Scheduler unreachable", message, 503)
    name = code.name if code is not None else "error"
    message = f"The scheduler at {endpoint} rejected the request ({name}): {details}"
    return _message("Scheduler error", message, 502)


def _message(title: str, message: str, status: int) -> tuple[str, int] | Response:
    # The page's script shows a fragment error as plain text in its banner.
    if request.headers.get(FRAGMENT_HEADER) == "1":
        return Response(message, status=status, mimetype="text/plain")
    return render("message.html", title=title, message=message), status


def not_found(error: HTTPException) -> tuple[str, int] | Response:
    return _message("Not found", error.description or "No such page.", 404)
