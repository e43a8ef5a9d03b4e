"""The request-body bound inside Ray Serve's HTTP proxy, where bodies are actually buffered.

Ray Serve's proxy reads each request body from the client as fast as it arrives and queues the
messages, unbounded, until the replica fetches them (and the replica prefetches them all into
its own queue): a limit checked only in the FastAPI app comes after the proxy has buffered
everything. This middleware is the proxy's outermost ASGI app (Ray loads it through
`RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH=serve.proxy:middlewares`, set by the local run and
the chart on every Ray node). It counts body bytes as they arrive, whatever the transfer
encoding; past `THEO_MAX_UPLOAD_MB` plus the form's overhead it stops reading, tells the proxy
the client is gone (Serve cancels the replica's request) and answers 413 itself. A declared
`Content-Length` over the limit is answered before any byte is read.

Closing a socket with unread bytes resets it, and a client still sending could lose the 413:
after the answer, what the client still sends is read and dropped for at most `LINGER_S` or
`LINGER_BYTES` (the lingering close of nginx), then the connection closes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve.errors import FileTooLargeError
from serve.gateway.upload import declared_length, request_body_limit

logger = logging.getLogger(__name__)

CALLBACK_ENV = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"
CALLBACK = "serve.proxy:middlewares"
LINGER_S = 2.0
LINGER_BYTES = 64 << 20


class ProxyLimits(BaseSettings):
    """The settings the proxy needs, from the same `THEO_*` environment as the service."""

    model_config = SettingsConfigDict(env_prefix="THEO_", extra="ignore")

    max_upload_mb: float = Field(default=25.0, gt=0)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


class _Body:
    def __init__(self) -> None:
        self.received = 0
        self.exceeded = False
        self.started = False


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_upload_bytes: int | None = None) -> None:
        self.app = app
        if max_upload_bytes is None:
            try:
                max_upload_bytes = ProxyLimits().max_upload_bytes
            except ValidationError as exc:
                logger.error("THEO_MAX_UPLOAD_MB is invalid (%s); using the default", exc)
                max_upload_bytes = ProxyLimits.model_construct().max_upload_bytes
        self.max_upload_bytes = max_upload_bytes
        self.limit = request_body_limit(max_upload_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = declared_length(_header(scope, b"content-length"))
        if length is not None and length > self.limit:
            body_expected = _header(scope, b"expect") is None  # 100-continue: nothing sent yet
            await self._refuse(receive, send, linger=body_expected)
            return
        body = _Body()

        async def limited_receive() -> Message:
            if body.exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                body.received += len(message.get("body", b""))
                if body.received > self.limit:
                    body.exceeded = True  # stop reading; Serve cancels the replica's request
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if body.exceeded and not body.started:
                return  # the 413 below is the answer
            if message["type"] == "http.response.start":
                body.started = True
            await send(message)

        await self.app(scope, limited_receive, guarded_send)
        if body.exceeded and not body.started:
            logger.info("request body over %d bytes refused with 413", self.limit)
            await self._refuse(receive, send, linger=True)

    async def _refuse(self, receive: Receive, send: Send, *, linger: bool) -> None:
        payload = json.dumps(FileTooLargeError(self.max_upload_bytes).body()).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": payload, "more_body": True})
        if linger:
            await _drain(receive)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _drain(receive: Receive) -> None:
    """Read and drop what the client still sends, within `LINGER_S` and `LINGER_BYTES`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LINGER_S
    dropped = 0
    while dropped < LINGER_BYTES:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return
        try:
            message: dict[str, Any] = dict(await asyncio.wait_for(receive(), remaining))
        except TimeoutError:
            return
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
        dropped += len(message.get("body", b""))


def middlewares() -> list[Middleware]:
    """Ray Serve's proxy callback: the middlewares wrapped around its ASGI app."""
    return [Middleware(BodyLimitMiddleware)]
