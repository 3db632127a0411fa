"""The edge of the API: what every request must be before a route sees it (docs/http.md).

Plain ASGI, inside `RequestContext`, in this order and before any body is read:

- a path and query longer than `MAX_URL_BYTES`: 414;
- a query parameter holding a control character (PostgreSQL refuses NUL in text): 422;
- no key, or one the key store refuses (unknown, revoked, rotated, expired: the problem
  type says which), on any route but the public ones: 401, the body unread (roles are the
  routes' own: 403 there);
- a body larger than the limit (`Content-Length`, or counted as it arrives): 413. The body
  is read here, up to the limit, and handed on; /v1/inbound keeps its own limit.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import problem_details as errors
from application.access import Principal
from domain.shared_kernel.value_checks import text_problem
from infra.composition_root import Container

MAX_URL_BYTES = 8 * 1024
PUBLIC = frozenset({"/health", "/health/live", "/health/ready", "/openapi.json", "/docs", "/redoc"})
_PUBLIC_PREFIX = "/docs/assets/"  # the documentation pages' scripts (docs_routes decides)
_OWN_LIMIT = ("/v1/inbound",)


def is_public(scope: Scope) -> bool:
    """Whether the route needs no key here: health, and the documentation, whose routes
    decide themselves (ITSM_API_DOCS). Behind a prefix (root_path), the path after it."""
    path, root = scope["path"], scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path in PUBLIC or path.startswith(_PUBLIC_PREFIX)


def declare_refusals(schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document with the edge's refusals on every operation they can reach:
    414; 401 but on public paths; 400 (not JSON) and 413 where there is a body."""
    for path, item in schema.get("paths", {}).items():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            statuses = [414]
            statuses += [] if path in PUBLIC else [401]
            statuses += [400, 413] if "requestBody" in operation else []
            for status, response in errors.problem_responses(*statuses).items():
                operation["responses"].setdefault(str(status), response)
    return schema


def settings_body_limit(container: Container) -> int:
    """`ITSM_HTTP_MAX_BODY_BYTES`."""
    return container.settings.http_max_body_bytes


class Edge:
    def __init__(self, app: ASGIApp, container: Container, body_limit: int | None = None) -> None:
        self.app, self.container = app, container
        self.limit = body_limit or settings_body_limit(container)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope)
        refusal = self._url_refusal(request) or await self._key_refusal(request)
        if refusal is None and _has_body(scope) and not scope["path"].endswith(_OWN_LIMIT):
            refusal, receive = await self._bounded_body(request, receive)
        if refusal is not None:
            return await refusal(scope, receive, send)
        await self.app(scope, receive, send)

    def _url_refusal(self, request: Request) -> errors.ProblemResponse | None:
        scope = request.scope
        length = len(scope.get("raw_path") or scope["path"].encode()) + len(scope["query_string"])
        if length > MAX_URL_BYTES:
            detail = f"The path and query are {length} bytes long; at most {MAX_URL_BYTES}."
            return errors.problem(request, 414, detail, kind="uri-too-long")
        return _query_refusal(request)

    async def _key_refusal(self, request: Request) -> errors.ProblemResponse | None:
        if is_public(request.scope):
            return None
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        known = key and scheme.lower() == "bearer" and await self._holder(key.strip())
        if known:
            request.scope.setdefault("state", {})["principal"] = known  # the routes' caller
            return None
        kind, detail = await self._why_refused(key.strip())
        return errors.problem(
            request, 401, detail, kind=kind, headers={"WWW-Authenticate": "Bearer"}
        )

    async def _why_refused(self, key: str) -> tuple[str | None, str]:
        """The problem type and detail of the 401: missing, unknown, revoked, rotated or
        expired, as the key store tells."""
        refusal = await run_in_threadpool(self.container.keys.refusal, key or None)
        if refusal is not None:
            return refusal.kind, refusal.detail
        return "unknown-key", "The API key is unknown; send Authorization: Bearer <key>."

    async def _holder(self, key: str) -> Principal | None:
        keys = self.container.keys
        return keys.cached(key) or await run_in_threadpool(keys.authenticate, key)

    async def _bounded_body(
        self, request: Request, receive: Receive
    ) -> tuple[errors.ProblemResponse | None, Receive]:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            return self._too_large(request), receive
        body = await _read(receive, self.limit)
        if body is None:
            return self._too_large(request), receive
        return None, _replay(body, receive)

    def _too_large(self, request: Request) -> errors.ProblemResponse:
        detail = f"The body is larger than {self.limit} bytes."
        return errors.problem(
            request, 413, detail, kind="too-large", title="Content too large", headers=_CLOSE
        )


_CLOSE = {"Connection": "close"}


def _has_body(scope: Scope) -> bool:
    return scope["method"] in ("POST", "PUT", "PATCH", "DELETE")


def _query_refusal(request: Request) -> errors.ProblemResponse | None:
    query = request.scope["query_string"].decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True, errors="replace"):
        found = text_problem(name) or text_problem(value)
        if found is not None:
            field = name if text_problem(name) is None else "(a parameter name)"
            error = {"field": field, "message": found}
            return errors.problem(
                request,
                422,
                f"{field}: {found}",
                kind="validation",
                title="Invalid request",
                errors=[error],
            )
    return None


async def _read(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None once it grows past `limit`."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return bytes(body)
        body += message.get("body", b"")
        if len(body) > limit:
            return None
        if not message.get("more_body", False):
            return bytes(body)


def _replay(body: bytes, then: Receive) -> Receive:
    """The body read, in one message; then the client's own messages (its disconnect)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return await then()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive
