"""Every error leaves the API as RFC 9457 `application/problem+json`."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from functools import lru_cache
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from application.desk.errors import NotFound, NotYetSigned, ReadModelBehind, VersionConflict
from domain.shared_kernel.errors import DomainError, IllegalTransition, InvalidValue

log = logging.getLogger(__name__)
PROBLEM = "urn:itsm:problem:"

# Pydantic's wording, said in terms an API client can act on.
_MESSAGES = {
    "missing": "is required",
    "timezone_aware": "needs a timezone: add an offset such as Z or +02:00",
    "model_attributes_type": "must be a JSON object sent with Content-Type: application/json",
    "dict_type": "must be a JSON object",
    "extra_forbidden": "is not a known field",
}


class ProblemResponse(JSONResponse):
    media_type = "application/problem+json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def problem(
    request: Request,
    status: int,
    detail: str | None,
    *,
    kind: str | None = None,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    errors: list[dict[str, str]] | None = None,
    extensions: dict[str, Any] | None = None,
) -> ProblemResponse:
    body: dict[str, Any] = {
        **(extensions or {}),
        "type": f"{PROBLEM}{kind}" if kind else "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    if errors is not None:
        body["errors"] = errors
    return ProblemResponse(body, status_code=status, headers=headers)


def _field(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc]
    # Field names are unique across body, query and path here; the location adds nothing.
    if len(parts) > 1 and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts)


def _message(error: Mapping[str, Any]) -> str:
    return _MESSAGES.get(error["type"]) or str(error["msg"])


async def _validation(request: Request, exc: RequestValidationError) -> ProblemResponse:
    raw = list(exc.errors())
    broken = [e for e in raw if e["type"] == "json_invalid"]
    if broken:
        return _malformed_json(request, broken[0])
    errors = [{"field": _field(e["loc"]), "message": _message(e)} for e in raw]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return problem(request, 422, detail, kind="validation", title="Invalid request", errors=errors)


def _malformed_json(request: Request, error: Mapping[str, Any]) -> ProblemResponse:
    reason = (error.get("ctx") or {}).get("error", "JSON decode error")
    detail = f"The body is not valid JSON: {reason}."
    return problem(request, 400, detail, kind="malformed-json", title="Malformed JSON")


async def _http(request: Request, exc: HTTPException) -> ProblemResponse:
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).description
    headers = exc.headers
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
        detail = f"{request.method} is not allowed here; allowed: {headers['Allow']}."
    return problem(request, exc.status_code, detail, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of this path answers, from the OpenAPI document: Starlette's
    405 names only the first route's (GET /v1/incidents and POST /v1/incidents are two)."""
    methods: set[str] = set()
    for template, operations in request.app.openapi().get("paths", {}).items():
        if _template(template).match(request.url.path):
            methods |= {method.upper() for method in operations if method != "parameters"}
    return sorted(methods | ({"HEAD"} if "GET" in methods else set()))


@lru_cache(maxsize=256)
def _template(path: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$")


def _domain(
    status: int, kind: str, title: str
) -> Callable[[Request, Exception], Awaitable[ProblemResponse]]:
    async def handler(request: Request, exc: Exception) -> ProblemResponse:
        return problem(request, status, str(exc), kind=kind, title=title)

    return handler


def unexpected(request: Request) -> ProblemResponse:
    # The trace goes to the log, never to the client: it can reveal internals.
    return problem(
        request, 500, "An unexpected error occurred; it has been logged.", kind="internal"
    )


RETRY_AFTER_SECONDS = 5


def unavailable(
    request: Request,
    detail: str = "A database or the disk is not available "
    "right now; nothing was changed. Try again shortly.",
    extensions: dict[str, Any] | None = None,
) -> ProblemResponse:
    return problem(
        request,
        503,
        detail,
        kind="unavailable",
        title="Service unavailable",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        extensions=extensions,
    )


async def _behind(request: Request, error: Exception) -> ProblemResponse:
    return unavailable(request, f"{error}; nothing was changed. Try again shortly.")


def install(app: FastAPI) -> None:
    # FastAPI's decorator, not Starlette's add_exception_handler, whose type takes a
    # handler of any Exception for every class.
    app.exception_handler(RequestValidationError)(_validation)
    app.exception_handler(HTTPException)(_http)
    app.add_exception_handler(NotFound, _domain(404, "not-found", "Not found"))
    app.add_exception_handler(VersionConflict, _domain(409, "version-conflict", "Version conflict"))
    app.add_exception_handler(
        IllegalTransition, _domain(409, "illegal-transition", "Illegal transition")
    )
    app.add_exception_handler(InvalidValue, _domain(422, "invalid-value", "Invalid value"))
    app.add_exception_handler(ReadModelBehind, _behind)
    app.add_exception_handler(NotYetSigned, _domain(409, "not-yet-signed", "Not yet signed"))
    # Any other business-rule refusal: the request was understood but cannot be carried out.
    app.add_exception_handler(DomainError, _domain(422, "domain-rule", "Business rule violated"))


class FieldError(BaseModel):
    field: str
    message: str


class ProblemDetails(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None


def problem_schema(model: type[BaseModel] = ProblemDetails) -> dict[str, Any]:
    """The model's JSON schema with its definitions inlined, to sit in a response."""
    schema = model.model_json_schema()
    return _inline(schema, schema.pop("$defs", {}))


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if str(node.get("$ref", "")).startswith("#/$defs/"):
        return _inline(defs[node["$ref"].removeprefix("#/$defs/")], defs)
    return {key: _inline(value, defs) for key, value in node.items()}


def problem_responses(
    *statuses: int, model: type[BaseModel] = ProblemDetails
) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of a router whose errors are problem documents."""
    content = {"application/problem+json": {"schema": problem_schema(model)}}
    return {
        status: {"description": HTTPStatus(status).phrase, "content": content}
        for status in statuses
    }
