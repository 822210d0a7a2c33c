"""The app's REST routes on ``host:port``: uvicorn in front of Chalice's own local API Gateway.

Each request is handed to ``chalice.local.LocalGateway``, which does API Gateway's routing and
shapes the Lambda event; the blocking handler runs on a thread pool. Around it, what API Gateway
does before the app sees anything:

- a body over ``max_body_bytes`` (API Gateway: 10 MB) is refused with 413 without being read:
  at once when ``Content-Length`` says so, and as soon as a chunked body passes the limit;
- a body that does not arrive whole within ``read_timeout`` seconds is answered 408;
- an unknown path gets API Gateway's ``MISSING_AUTHENTICATION_TOKEN`` gateway response, which
  ``infra.gateway_responses`` makes a 404 in the contract's shape, as on AWS.

Unlike ``chalice local`` this sets no environment variables: the stack has set them already.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from pathlib import Path
from typing import Any

from chalice.config import Config
from chalice.local import LocalChalice, LocalGateway, LocalGatewayException, RouteMatcher

from infra.gateway_responses import render

from .http_server import DEFAULT_READ_TIMEOUT, HttpServer, ServedComponent
from .project import chalice_config

__all__ = ["API_GATEWAY_MAX_BODY", "ChaliceAsgi", "RestServer", "chalice_config"]

log = logging.getLogger("devstack.rest")

API_GATEWAY_MAX_BODY = 10 * 1024 * 1024
_SKIPPED_HEADERS = {"content-length", "transfer-encoding", "connection"}


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class ChaliceAsgi:
    """An ASGI app that serves a Chalice app's routes through ``LocalGateway``.

    The app must already answer ``current_request`` per thread (``chalice.local.LocalChalice``);
    ``RestServer`` arranges that.
    """

    def __init__(self, app: Any, config: Config, executor: ThreadPoolExecutor, *,
                 max_body_bytes: int = API_GATEWAY_MAX_BODY, read_timeout: float = DEFAULT_READ_TIMEOUT) -> None:
        self._gateway = LocalGateway(app, config)
        self._routes = RouteMatcher(list(app.routes))
        self._executor = executor
        self._max_body = max_body_bytes
        self._read_timeout = read_timeout

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        length = _header(scope, b"content-length")
        if length is not None and int(length) > self._max_body:  # h11 has refused a non-integer already
            await self._gateway_response(send, "REQUEST_TOO_LARGE", 413, self._too_large(), close=True)
            return
        body = bytearray()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._read_timeout
        more = True
        while more:
            try:
                message = await asyncio.wait_for(receive(), timeout=max(0.0, deadline - loop.time()))
            except TimeoutError:
                log.warning("answered 408 to %s: its body did not arrive within %g s", _client(scope),
                            self._read_timeout)
                status, payload = 408, json.dumps({"error": {
                    "code": "request_timeout", "message": f"the body did not arrive within {self._read_timeout:g} s",
                    "field": "body"}}).encode()
                await _respond(send, status, [(b"content-type", b"application/json")], payload, close=True)
                return
            if message["type"] == "http.disconnect":
                return  # the client left; nobody to answer
            body += message.get("body", b"")
            if len(body) > self._max_body:
                await self._gateway_response(send, "REQUEST_TOO_LARGE", 413, self._too_large(), close=True)
                return
            more = message.get("more_body", False)
        target = scope["raw_path"].decode("latin-1")
        if scope["query_string"]:
            target += "?" + scope["query_string"].decode("latin-1")
        try:
            self._routes.match_route(target)
        except ValueError:
            await self._gateway_response(send, "MISSING_AUTHENTICATION_TOKEN", 403, "Missing Authentication Token")
            return
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        try:
            response = await loop.run_in_executor(self._executor, self._gateway.handle_request, scope["method"],
                                                  target, headers, bytes(body) or None)
        except LocalGatewayException as exc:  # an authorizer's refusal, as API Gateway sends it
            await self._gateway_response(send, "", exc.CODE, HTTPStatus(exc.CODE).phrase)
            return
        except Exception:
            log.exception("%s %s failed", scope["method"], scope["path"])
            await self._gateway_response(send, "DEFAULT_5XX", 502, "Internal server error")
            return
        await _respond(send, *self._converted(response))

    def _too_large(self) -> str:
        return f"the body exceeds {self._max_body} bytes"

    async def _gateway_response(self, send: Any, response_type: str, status: int, message: str,
                                close: bool = False) -> None:
        status, payload = render(response_type, status, message)
        await _respond(send, status, [(b"content-type", b"application/json")], payload, close=close)

    @staticmethod
    def _converted(response: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """A Lambda proxy response as status, headers and body."""
        body: Any = response.get("body")
        if body is None:
            payload = b""
        elif response.get("isBase64Encoded"):
            payload = base64.b64decode(body)
        else:
            payload = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        headers: list[tuple[bytes, bytes]] = []
        seen_content_type = False
        single = response.get("headers") or {}
        multi = response.get("multiValueHeaders") or {}
        for name, value in [*single.items(), *((n, v) for n, vs in multi.items() for v in vs)]:
            lowered = name.lower()
            if lowered in _SKIPPED_HEADERS:
                continue
            seen_content_type = seen_content_type or lowered == "content-type"
            headers.append((name.encode("latin-1"), str(value).encode("latin-1")))
        if not seen_content_type:
            headers.append((b"content-type", b"application/json"))
        return int(response["statusCode"]), headers, payload


def _client(scope: dict[str, Any]) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "a client"


async def _respond(send: Any, status: int, headers: list[tuple[bytes, bytes]], payload: bytes,
                   close: bool = False) -> None:
    """One whole response; ``close`` ends the connection after it (the rest of the body is never read)."""
    headers = [*headers, (b"content-length", str(len(payload)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class RestServer(ServedComponent):
    """Serves ``app``'s routes on ``host:port`` (``port=0``: a free port) or on a bound ``sock``."""

    _name = "the REST server"
    _thread_prefix = "devstack-rest-handler"

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, *, stage: str = "local",
                 project_dir: str | Path | None = None, config: Config | None = None,
                 sock: socket.socket | None = None, max_workers: int = 32,
                 max_body_bytes: int = API_GATEWAY_MAX_BODY, read_timeout: float = DEFAULT_READ_TIMEOUT,
                 **server_options: Any) -> None:
        super().__init__(host, port, sock, max_workers)
        self.app = app
        self._config = config or chalice_config(app, stage, project_dir)
        self._max_body = max_body_bytes
        self._read_timeout = read_timeout
        self._server_options = server_options
        self._app_class: type | None = None

    def _make_server(self, executor: ThreadPoolExecutor) -> HttpServer:
        if not isinstance(self.app, LocalChalice):
            # What chalice.local.create_local_server does: one current_request per thread.
            self._app_class = self.app.__class__
            self.app.__class__ = type("LocalApp", (LocalChalice, self.app.__class__), {})
        asgi = ChaliceAsgi(self.app, self._config, executor, max_body_bytes=self._max_body,
                           read_timeout=self._read_timeout)
        return HttpServer(asgi, self._host, self._port, sock=self._sock, name="devstack-rest",
                          read_timeout=self._read_timeout, **self._server_options)

    def _listening(self) -> None:
        log.info("REST API on %s", self.url)

    def _release(self) -> None:
        if self._app_class is not None:
            self.app.__class__, self._app_class = self._app_class, None
