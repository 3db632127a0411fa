"""The OpenAPI document, Swagger UI and ReDoc, with no CDN: the pages' scripts, style sheet
and icon come from the `fastapi-offline` package and are served here.

Who may read them is `ITSM_API_DOCS`: `public` (anyone), `authenticated` (any valid API
key, whatever its role) or `off` (404). The page assets are the public Swagger UI and ReDoc
bundles, nothing of this API: they are served unless the documentation is `off`.

The app is built without FastAPI's own `/openapi.json`, `/docs` and `/redoc` (each `None`),
so that these routes answer them.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from api.deps import BearerDep, require
from application.access import Role

OPENAPI_URL = "/openapi.json"
ASSETS_URL = "/docs/assets"
# The files of the package that the pages load; nothing else of its folder is served.
ASSETS = frozenset({"swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png"})
_ASSETS = StaticFiles(directory=Path(str(files("fastapi_offline") / "static")))
# Their names carry no version: a browser asks again after an hour (a 304 if unchanged).
_ASSET_CACHE = "public, max-age=3600"
_any_key = require(*Role)  # every role is listed: any valid key passes


def _mode(request: Request) -> str:
    mode: str = request.app.state.container.settings.api_docs
    return mode


async def docs_reader(request: Request, credentials: BearerDep) -> None:
    """404 while the documentation is off; a valid key while it is `authenticated`."""
    mode = _mode(request)
    if mode == "off":
        raise HTTPException(404, _OFF)
    if mode == "authenticated":
        await _any_key(request, credentials)


async def assets_reader(request: Request) -> None:
    if _mode(request) == "off":
        raise HTTPException(404, _OFF)


_OFF = "This API does not serve its documentation here."


router = APIRouter(include_in_schema=False)
DocsReader = Annotated[None, Depends(docs_reader)]
AssetsReader = Annotated[None, Depends(assets_reader)]


@router.get(OPENAPI_URL)
async def openapi_document(request: Request, _: DocsReader) -> JSONResponse:
    return JSONResponse(_with_root_path(request, request.app.openapi()))


@router.get("/docs")
async def swagger_ui(request: Request, _: DocsReader) -> HTMLResponse:
    root = _root(request)
    return get_swagger_ui_html(
        openapi_url=root + OPENAPI_URL,
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
        swagger_ui_parameters=request.app.swagger_ui_parameters,
    )


@router.get("/redoc")
async def redoc(request: Request, _: DocsReader) -> HTMLResponse:
    root = _root(request)
    return get_redoc_html(
        openapi_url=root + OPENAPI_URL,
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
        with_google_fonts=False,
    )


@router.get(ASSETS_URL + "/{name}")
async def asset(request: Request, name: str, _: AssetsReader) -> Response:
    if name not in ASSETS:  # only the listed files: no other name reaches the file system
        raise HTTPException(404, f"There is no documentation asset {name!r}.")
    response = await _ASSETS.get_response(name, request.scope)  # with its ETag; 304
    response.headers["Cache-Control"] = _ASSET_CACHE
    return response


def _root(request: Request) -> str:
    """The prefix a reverse proxy mounts the API under (ASGI root_path), if any."""
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")


def _with_root_path(request: Request, schema: dict[str, Any]) -> dict[str, Any]:
    """As FastAPI's own /openapi.json: behind a prefix, the document names it as a server."""
    root = _root(request)
    if not root or not request.app.root_path_in_servers:
        return schema
    servers = schema.get("servers", [])
    if root in {server.get("url") for server in servers}:
        return schema
    return {**schema, "servers": [{"url": root}, *servers]}
