"""Personal data opened at the edge: every token of a subject's key (infra/privacy) in a
JSON answer is replaced by its clear text, or "[erased]" once the key is gone.

Everything behind the API (the event store, snapshots, Kafka, the read models) holds only
tokens, so this is the one place clear text is made, for the caller of the moment. A JSON
answer is opened whole; one streamed in parts (CSV, JSON Lines) is opened by its route, row
by row, before it is encoded; one about the stored bytes themselves (an inclusion proof,
whose hash covers them) is marked `X-Personal-Data: sealed` and left as stored.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_JSON = (b"application/json", b"application/problem+json")
SEALED_HEADER = "x-personal-data"


class OpenPersonalData:
    def __init__(self, app: ASGIApp, open_json: Callable[[bytes], bytes]) -> None:
        self.app, self.open_json = app, open_json

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        await self.app(scope, receive, _Opening(send, self.open_json).send)


class _Opening:
    """Holds back a JSON answer's start until its body is known, to set its length."""

    def __init__(self, send: Send, open_json: Callable[[bytes], bytes]) -> None:
        self._send, self.open_json = send, open_json
        self._start: Message | None = None

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start" and _is_json(message) and _opens(message):
            self._start = message
            return
        if message["type"] == "http.response.body" and self._start is not None:
            start, self._start = self._start, None
            if message.get("more_body"):  # streamed: its route opens its rows
                await self._send(start)
                return await self._send(message)
            body = self.open_json(message.get("body", b""))
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            start["headers"] = [*headers, (b"content-length", str(len(body)).encode())]
            await self._send(start)
            return await self._send({**message, "body": body})
        await self._send(message)


def _opens(start: Message) -> bool:
    """An answer about the stored bytes themselves (a proof) says SEALED: kept as stored."""
    return (SEALED_HEADER.encode(), b"sealed") not in start.get("headers", [])


def _is_json(start: Message) -> bool:
    for name, value in start.get("headers", []):
        if name.lower() == b"content-type":
            return value.split(b";")[0].strip() in _JSON
    return False
