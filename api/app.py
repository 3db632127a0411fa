"""The application factory: one FastAPI app over one Container."""

from __future__ import annotations

import gc
import logging
import re
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio.to_thread
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import problem_details as errors
from api.access import key_routes
from api.audit import access_routes, audit_events, audit_routes
from api.edge import Edge, declare_refusals
from api.improvement import (
    improvement_reads,
    improvement_report,
    improvement_routes,
    improvement_verification,
)
from api.inbound import inbound_routes
from api.incident import incident_routes
from api.kpi import kpi_routes
from api.operations import docs_routes, health_routes, metrics_routes
from api.operations.http_metrics import Metrics
from api.personal_data import OpenPersonalData
from api.privacy import privacy_routes
from api.sla import sla_routes
from application.improvement.review_reminders import ReviewReminders
from application.sla.breach_scheduler import SlaScheduler
from infra.composition_root import Container, bootstrap

log = logging.getLogger(__name__)
Scheduler = SlaScheduler | ReviewReminders  # what embedded mode runs beside the API
# A caller's request id lands in the audit trail as the causation id, so only sane ones.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class OrjsonResponse(JSONResponse):
    """FastAPI's ORJSONResponse is deprecated (0.165); this is the same thing, kept here."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


class RequestContext:
    """Request id in and out, latency per route template, and a 500 problem for crashes.

    Written as plain ASGI so that it also sees responses of errors raised inside routes.
    """

    def __init__(
        self, app: ASGIApp, metrics: Metrics, outage: Callable[[BaseException], bool]
    ) -> None:
        self.app, self.metrics, self.outage = app, metrics, outage

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope)
        request.state.request_id = request_id = _request_id(request)
        response, started = _OutgoingResponse(send, request_id), time.perf_counter()
        try:
            await self.app(scope, receive, response.send)
        except Exception as error:
            log.exception(
                "unhandled error in %s %s (request %s)", scope["method"], scope["path"], request_id
            )
            if response.started:  # too late for a problem document; the client sees a cut stream
                raise
            await self._problem(request, error)(scope, receive, response.send)
        finally:
            route = getattr(scope.get("route"), "path", "<unmatched>")
            elapsed = time.perf_counter() - started
            self.metrics.observe(scope["method"], route, response.status, elapsed)

    def _problem(self, request: Request, error: Exception) -> errors.ProblemResponse:
        return errors.unavailable(request) if self.outage(error) else errors.unexpected(request)


class _OutgoingResponse:
    """The response on its way out: its status, with the request id added to its headers."""

    def __init__(self, send: Send, request_id: str) -> None:
        self._send, self._header = send, (b"x-request-id", request_id.encode())
        self.status, self.started = 500, False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status, self.started = message["status"], True
            message.setdefault("headers", [])
            message["headers"] = [*message["headers"], self._header]
        await self._send(message)


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id", "")
    return given if _REQUEST_ID.match(given) else str(uuid.uuid4())


def create_app(
    container: Container | None = None,
    *,
    close_on_shutdown: bool | None = None,
    max_body_bytes: int | None = None,
) -> FastAPI:
    """Build the API. A container built here is also closed here; one passed in is
    closed only if `close_on_shutdown` says so (tests keep theirs to inspect it).
    `max_body_bytes`: the largest request body (default: the settings', docs/http.md)."""
    owned = container is None
    container = container or bootstrap()
    close = owned if close_on_shutdown is None else close_on_shutdown
    app = FastAPI(
        title="ITSM service desk",
        version="1",
        lifespan=_lifespan(container, close),
        default_response_class=OrjsonResponse,
        description="Incident management over an event-sourced service desk. "
        "The rules of the edge (400 or 422, limits, paging, CSV): docs/http.md.",
        # api/operations/docs_routes.py serves these, offline, as ITSM_API_DOCS says.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    _attach(app, container, max_body_bytes)
    app.openapi = _document(app)  # type: ignore[method-assign]
    return app


def _document(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """FastAPI's OpenAPI document, with the edge's refusals declared (api/edge.py)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = declare_refusals(FastAPI.openapi(app))
        return app.openapi_schema

    return openapi


def _attach(app: FastAPI, container: Container, max_body_bytes: int | None) -> None:
    app.state.container = container
    app.state.metrics = Metrics(container)
    app.state.readiness = container.readiness()
    errors.install(app)
    key_routes.install(app)  # its own 409 type for a key name already taken
    # Inside RequestContext: its refusals get request ids and metrics too.
    app.add_middleware(OpenPersonalData, open_json=container.vault.reveal_json)
    app.add_middleware(Edge, container=container, body_limit=max_body_bytes)
    app.add_middleware(RequestContext, metrics=app.state.metrics, outage=container.database_away)
    app.include_router(health_routes.router)
    app.include_router(metrics_routes.router)
    app.include_router(incident_routes.router)
    app.include_router(improvement_reads.router)
    app.include_router(improvement_routes.router)
    app.include_router(improvement_verification.router)
    app.include_router(improvement_report.router)
    app.include_router(sla_routes.router)
    app.include_router(inbound_routes.router)
    app.include_router(kpi_routes.router)
    app.include_router(audit_routes.router)
    app.include_router(audit_events.router)
    app.include_router(access_routes.router)
    app.include_router(privacy_routes.router)
    app.include_router(key_routes.router)
    app.include_router(docs_routes.router)


def _lifespan(
    container: Container, close: bool
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        switch_interval = _tune_threads(container)
        schedulers = _start_background_work(container)
        _freeze_what_is_loaded()
        try:
            yield
        finally:
            app.state.readiness.close()
            gc.unfreeze()  # an app in a longer-lived process (tests) must not pin it all
            sys.setswitchinterval(switch_interval)
            _stop_background_work(container, schedulers, close)

    return lifespan


def _tune_threads(container: Container) -> float:
    """Commands queue on the event store's single writer anyway: more threads than
    `api_threads` only contend for the GIL and stretch the latency tail. Returns the
    switch interval to restore."""
    limiter = anyio.to_thread.current_default_thread_limiter()
    limiter.total_tokens = container.settings.api_threads
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(container.settings.api_switch_interval)
    return switch_interval


def _start_background_work(container: Container) -> list[Scheduler]:
    """Embedded mode: this process also keeps the read models current, records SLA
    warnings and breaches when they fall due (docs/sla.md) and review reminders when an
    improvement's review date passes unverified (docs/improvements.md). Returns the
    schedulers it started."""
    if container.feed is None:
        return []
    container.feed.start(container.settings.poll_interval)
    schedulers: list[Scheduler] = []
    if container.settings.sla_scheduler_embedded:
        schedulers.append(container.sla_scheduler().start())
    if container.settings.review_reminders_embedded:
        schedulers.append(container.review_reminders().start())
    return schedulers


def _freeze_what_is_loaded() -> None:
    """Everything loaded so far lives as long as the process: out of the collector's reach,
    full collections no longer walk it, and their pauses leave the latency tail."""
    gc.collect()
    gc.freeze()


def _stop_background_work(container: Container, schedulers: list[Scheduler], close: bool) -> None:
    for scheduler in schedulers:
        scheduler.stop()
    if close:
        container.close()
    elif container.feed is not None:
        container.feed.stop()
