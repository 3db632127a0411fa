"""The application factory: one FastAPI app over one Container."""

from __future__ import annotations

import gc
import logging
import re
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import problem_details as errors
from api.audit import audit_routes
from api.inbound import inbound_routes
from api.incident import incident_routes
from api.kpi import kpi_routes
from api.operations import health_routes, metrics_routes
from api.operations.http_metrics import Metrics
from api.sla import sla_routes
from infra.composition_root import Container, bootstrap

log = logging.getLogger(__name__)
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
        given = request.headers.get("x-request-id", "")
        request_id = given if _REQUEST_ID.match(given) else str(uuid.uuid4())
        request.state.request_id = request_id
        status, started, responded = 500, time.perf_counter(), False

        async def send_with_id(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as error:
            log.exception(
                "unhandled error in %s %s (request %s)", scope["method"], scope["path"], request_id
            )
            if responded:  # too late for a problem document; the client sees a cut stream
                raise
            answer = (
                errors.unavailable(request) if self.outage(error) else errors.unexpected(request)
            )
            await answer(scope, receive, send_with_id)
        finally:
            route = getattr(scope.get("route"), "path", "<unmatched>")
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - started)


def create_app(
    container: Container | None = None, *, close_on_shutdown: bool | None = None
) -> FastAPI:
    """Build the API. A container built here is also closed here; one passed in is
    closed only if `close_on_shutdown` says so (tests keep theirs to inspect it)."""
    owned = container is None
    container = container or bootstrap()
    close = owned if close_on_shutdown is None else close_on_shutdown

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Commands queue on the event store's single writer anyway; more threads than this
        # only contend for the GIL and stretch the latency tail.
        anyio.to_thread.current_default_thread_limiter().total_tokens = (
            container.settings.api_threads
        )
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(container.settings.api_switch_interval)
        # Embedded mode: this process also keeps the read models current.
        if container.feed is not None:
            container.feed.start(container.settings.poll_interval)
        # ... and records SLA warnings and breaches when they fall due (docs/sla.md).
        scheduler = (
            container.sla_scheduler().start()
            if container.feed is not None and container.settings.sla_scheduler_embedded
            else None
        )
        # Everything loaded so far lives as long as the process: out of the collector's
        # reach, a full collection no longer walks it, which was the latency tail's worst
        # pauses (about 30 ms each).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            app.state.readiness.close()
            gc.unfreeze()  # an app in a longer-lived process (tests) must not pin it all
            sys.setswitchinterval(switch_interval)
            if scheduler is not None:
                scheduler.stop()
            if close:
                container.close()
            elif container.feed is not None:
                container.feed.stop()

    app = FastAPI(
        title="ITSM service desk",
        version="1",
        lifespan=lifespan,
        default_response_class=OrjsonResponse,
        description="Incident management over an event-sourced service desk.",
    )
    app.state.container = container
    app.state.metrics = Metrics(container)
    app.state.readiness = container.readiness()
    errors.install(app)
    app.add_middleware(RequestContext, metrics=app.state.metrics, outage=container.database_away)
    app.include_router(health_routes.router)
    app.include_router(metrics_routes.router)
    app.include_router(incident_routes.router)
    app.include_router(sla_routes.router)
    app.include_router(inbound_routes.router)
    app.include_router(kpi_routes.router)
    app.include_router(audit_routes.router)
    return app
