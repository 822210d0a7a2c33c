"""API Gateway's WebSocket API, locally: sockets in front of the Chalice app's handlers.

One ASGI app, served by uvicorn (``devstack.http_server``), answers both the WebSocket API and
its management API on one port. What it does as API Gateway does:

- ``$connect`` runs before the handshake is accepted; a non-2xx ``statusCode`` (or an error)
  refuses the handshake with that HTTP status and body.
- Each text message is routed on ``$request.body.action`` to a route the app registered, else
  to ``$default``; each runs as its own invocation, so messages may be handled concurrently.
  A failing handler sends ``{"message": "Internal server error", ...}`` to the client.
- ``$disconnect`` runs once the socket is closed, whoever closed it and why, exactly once.
- Connection ids are 16 characters of base64 (``Lp0Sxd5uIAMCJ7Q=``).
- Limits: 32 KB per frame and 128 KB per message (close code 1009), binary frames refused
  (close code 1003), an idle timeout (10 minutes without a data message either way) and a
  maximum connection duration (2 hours), both closing with 1001.
- The management API: ``POST|GET|DELETE /{stage}/@connections/{id}`` (chunked bodies too),
  with 410 ``GoneException`` for an unknown or closed connection, so the unchanged boto3
  ``apigatewaymanagementapi`` client works against it.

The frame limit is websockets' own: uvicorn's ``websockets-sansio`` protocol hands
``ws_max_size`` to websockets' ``ServerProtocol``, which takes a ``(message, frame)`` pair.

Handlers are called as Lambda calls them: the Chalice-wrapped entry point with the event dict
and a context, on a thread pool, since they do blocking I/O.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote

from .emulator import LambdaContext
from .http_server import DEFAULT_READ_TIMEOUT, HttpServer, ServedComponent

__all__ = ["FRAME_LIMIT", "MESSAGE_LIMIT", "WebSocketGateway", "new_connection_id"]

log = logging.getLogger("devstack.ws")

FRAME_LIMIT = 32 * 1024
MESSAGE_LIMIT = 128 * 1024
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
GOING_AWAY, UNSUPPORTED_DATA, NORMAL_CLOSURE = 1001, 1003, 1000

Headers = list[tuple[bytes, bytes]]


def new_connection_id() -> str:
    """An id shaped like API Gateway's: base64 of 11 random bytes, 16 characters ending in ``=``."""
    return base64.urlsafe_b64encode(os.urandom(11)).decode()


def _request_time(epoch: float) -> str:
    t = time.gmtime(epoch)
    return f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"


def _canonical(name: str) -> str:
    """``Sec-Websocket-Key`` for ``sec-websocket-key``: the HTTP parser lowercases header names,
    and API Gateway's events carry them capitalised."""
    return "-".join(part.capitalize() for part in name.split("-"))


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(eq=False)
class _Client:
    connection_id: str
    send: Any  # the ASGI send of its socket
    source_ip: str
    user_agent: str
    connected_at: float = field(default_factory=time.time)
    last_active_at: float = field(default_factory=time.time)
    opened: float = field(default_factory=time.monotonic)
    active: float = field(default_factory=time.monotonic)
    closing: bool = False  # a close was sent or received: nothing more goes out
    gone: asyncio.Event = field(default_factory=asyncio.Event)  # set once $disconnect has run

    def touch(self) -> None:
        self.last_active_at, self.active = time.time(), time.monotonic()


class _Answer:
    """A management API response."""

    def __init__(self, status: int, body: bytes = b"", error_type: str | None = None, close: bool = False) -> None:
        self.status = status
        self.body = body
        self.error_type = error_type
        self.close = close


def _error(status: int, error_type: str, message: str | None, close: bool = False) -> _Answer:
    return _Answer(status, json.dumps({"message": message}).encode(), error_type, close)


# API Gateway's 410 has the error type in a header and a body that is not JSON; boto3 still
# raises ``GoneException``.
_GONE = _Answer(410, b"", "GoneException")


class WebSocketGateway(ServedComponent):
    """Serves the app's WebSocket handlers and the management API on ``host:port``.

    ``port=0`` picks a free port; or pass an already bound ``sock``. ``start()`` returns once
    listening; ``stop()`` closes every socket with 1001 (each gets its ``$disconnect``) and joins
    its threads. ``run()`` serves in the calling thread instead, for a process of its own.
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, *, stage: str = "local",
                 sock: socket.socket | None = None, idle_timeout: float = 600, max_duration: float = 7200,
                 lambda_timeout: float = 30, lambda_memory_mb: int = 128, region: str = "us-east-1",
                 max_workers: int = 32, send_timeout: float = 5, read_timeout: float = DEFAULT_READ_TIMEOUT,
                 **server_options: Any) -> None:
        super().__init__(host, port, sock, max_workers)
        self.app = app
        self.stage = stage
        self.api_id = "local"
        self.idle_timeout = idle_timeout
        self.max_duration = max_duration
        self._lambda_timeout = lambda_timeout
        self._lambda_memory_mb = lambda_memory_mb
        self._region = region
        self._send_timeout = send_timeout
        self._read_timeout = read_timeout
        self._server_options = server_options
        self._open: dict[str, _Client] = {}
        self._clients: set[_Client] = set()  # every accepted socket until its $disconnect has run
        self._tasks: set[asyncio.Task[Any]] = set()
        self._saved_endpoint: tuple[Any, Any] | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    _name = "the gateway"
    _scheme = "ws"
    _thread_prefix = "devstack-ws-handler"

    @property
    def management_url(self) -> str:
        """The endpoint for boto3's ``apigatewaymanagementapi`` client."""
        return f"http://{self._host}:{self.port}/{self.stage}"

    @property
    def domain_name(self) -> str:
        return f"{self._host}:{self.port}"

    def _make_server(self, executor: ThreadPoolExecutor) -> HttpServer:
        options = {
            "ws": "websockets-sansio", "ws_max_size": (MESSAGE_LIMIT, FRAME_LIMIT),
            "ws_per_message_deflate": False, "ws_ping_interval": None, "ws_ping_timeout": None,
            **self._server_options,
        }
        return HttpServer(self._asgi, self._host, self._port, sock=self._sock, name="devstack-ws-gateway",
                          read_timeout=self._read_timeout, before_stop=self._close_all, **options)

    def _listening(self) -> None:
        self._configure_websocket_api()
        log.info("WebSocket gateway on %s (management API %s)", self.url, self.management_url)

    def _release(self) -> None:
        self._restore_websocket_api()

    def connection_ids(self) -> list[str]:
        """Ids of the open connections (those the management API would accept)."""
        return list(self._open)

    async def _close_all(self) -> None:
        """On stop: close every socket as API Gateway does (1001), and wait for each ``$disconnect``
        and for the handler calls still running."""
        clients = list(self._clients)
        for client in clients:
            await self._close(client, GOING_AWAY, "Going away")
        deadline = time.monotonic() + 10
        for client in clients:
            try:
                await asyncio.wait_for(client.gone.wait(), timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                log.warning("stopping: $disconnect of %s did not finish", client.connection_id)
        while self._tasks and time.monotonic() < deadline:
            await asyncio.wait(set(self._tasks), timeout=max(0.0, deadline - time.monotonic()))

    def _configure_websocket_api(self) -> None:
        """Point ``app.websocket_api`` (Chalice's own client) at this gateway, as Lambda points it
        at the API's domain; the app still sets ``app.websocket_api.session`` itself."""
        api = getattr(self.app, "websocket_api", None)
        if api is not None and self._saved_endpoint is None:
            self._saved_endpoint = (api._endpoint, api._client)
            api._endpoint = self.management_url
            api._client = None

    def _restore_websocket_api(self) -> None:
        api = getattr(self.app, "websocket_api", None)
        if api is not None and self._saved_endpoint is not None:
            api._endpoint, api._client = self._saved_endpoint
        self._saved_endpoint = None

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("gateway task failed", exc_info=task.exception())

    # -- invoking the app -----------------------------------------------------------------------
    async def _invoke(self, route_key: str, event: dict[str, Any]) -> Any:
        config = self.app.websocket_handlers.get(route_key)
        if config is None:
            return None
        handler = self.app.handler_map[config.name]
        context = LambdaContext(f"{self.app.app_name}-{self.stage}-{config.name}", self._lambda_memory_mb,
                                self._lambda_timeout, self._region)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, handler, event, context)

    def _context(self, client: _Client, route_key: str, event_type: str, **extra: Any) -> dict[str, Any]:
        now = time.time()
        request_id = new_connection_id()
        return {
            "routeKey": route_key,
            "eventType": event_type,
            "extendedRequestId": request_id,
            "requestTime": _request_time(now),
            "messageDirection": "IN",
            "stage": self.stage,
            "connectedAt": int(client.connected_at * 1000),
            "requestTimeEpoch": int(now * 1000),
            "identity": {"sourceIp": client.source_ip},
            "requestId": request_id,
            "domainName": self.domain_name,
            "connectionId": client.connection_id,
            "apiId": self.api_id,
            **extra,
        }

    def _connect_event(self, client: _Client, scope: dict[str, Any]) -> dict[str, Any]:
        multi_headers: dict[str, list[str]] = {}
        for name, value in scope["headers"]:
            multi_headers.setdefault(_canonical(name.decode("latin-1")), []).append(value.decode("latin-1"))
        multi_headers.update({"X-Forwarded-For": [client.source_ip], "X-Forwarded-Port": [str(self.port)],
                              "X-Forwarded-Proto": ["http"]})
        multi_query: dict[str, list[str]] = {}
        for name, value in parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True):
            multi_query.setdefault(name, []).append(value)
        context = self._context(client, "$connect", "CONNECT")
        context["identity"]["userAgent"] = client.user_agent
        return {
            "headers": {name: values[-1] for name, values in multi_headers.items()},
            "multiValueHeaders": multi_headers,
            "queryStringParameters": {name: values[-1] for name, values in multi_query.items()} or None,
            "multiValueQueryStringParameters": multi_query or None,
            "requestContext": context,
            "isBase64Encoded": False,
        }

    # -- the WebSocket API ----------------------------------------------------------------------
    async def _asgi(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _websocket(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        user_agent = next((v.decode("latin-1") for k, v in scope["headers"] if k.lower() == b"user-agent"), "")
        client = _Client(new_connection_id(), send, scope["client"][0] if scope.get("client") else "", user_agent)
        try:
            result = await self._invoke("$connect", self._connect_event(client, scope))
        except Exception:
            log.exception("$connect handler failed")
            await self._refuse(send, 500, json.dumps({"message": "Internal server error"}))
            return
        status, body = 200, ""
        if isinstance(result, dict):
            status = int(result.get("statusCode", 200))
            body = str(result.get("body") or "")
        if not 200 <= status < 300:
            await self._refuse(send, status, body)
            return
        # Open to the management API from the moment $connect has returned, as on API Gateway:
        # registered before the handshake's answer, so a client never learns of its socket first.
        self._open[client.connection_id] = client
        self._clients.add(client)
        watchdog = asyncio.create_task(self._watchdog(client))
        code, reason = 1006, ""
        try:
            try:
                await send({"type": "websocket.accept"})
            except OSError:  # uvicorn's ClientDisconnected: it left while $connect ran
                return
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    code, reason = int(message.get("code") or 1005), str(message.get("reason") or "")
                    break
                client.touch()
                text = message.get("text")
                if text is None:
                    await self._close(client, UNSUPPORTED_DATA, "Binary frames are not supported")
                else:
                    self._spawn(self._on_message(client, text))
        finally:
            watchdog.cancel()
            client.closing = True
            self._open.pop(client.connection_id, None)
            try:
                await self._disconnect(client, code, reason)
            finally:
                self._clients.discard(client)
                client.gone.set()

    @staticmethod
    async def _refuse(send: Any, status: int, body: str) -> None:
        content_type = b"application/json" if body.startswith(("{", "[")) else b"text/plain; charset=utf-8"
        await send({"type": "websocket.http.response.start", "status": status,
                    "headers": [(b"content-type", content_type)]})
        await send({"type": "websocket.http.response.body", "body": body.encode()})

    async def _close(self, client: _Client, code: int, reason: str) -> None:
        if client.closing:
            return
        client.closing = True
        self._open.pop(client.connection_id, None)
        try:
            await client.send({"type": "websocket.close", "code": code, "reason": reason})
        except OSError:  # uvicorn's ClientDisconnected: it is gone already
            pass

    async def _deliver(self, client: _Client, data: str | bytes) -> bool:
        """Sends one message; False if the socket is closed or closing."""
        if client.closing:
            return False
        message = {"type": "websocket.send", "text": data} if isinstance(data, str) else \
            {"type": "websocket.send", "bytes": data}
        try:
            await client.send(message)
        except OSError:
            return False
        return True

    async def _watchdog(self, client: _Client) -> None:
        while True:
            deadline = min(client.active + self.idle_timeout, client.opened + self.max_duration)
            delay = deadline - time.monotonic()
            if delay <= 0:
                await self._close(client, GOING_AWAY, "Going away")
                return
            await asyncio.sleep(delay)

    def _route(self, body: str) -> str:
        try:
            action = json.loads(body).get("action")
        except (ValueError, AttributeError):
            action = None
        if isinstance(action, str) and action not in ("$connect", "$disconnect") \
                and action in self.app.websocket_handlers:
            return action
        return "$default"

    async def _on_message(self, client: _Client, body: str) -> None:
        route_key = self._route(body)
        context = self._context(client, route_key, "MESSAGE", messageId=new_connection_id())
        event = {"requestContext": context, "body": body, "isBase64Encoded": False}
        if route_key not in self.app.websocket_handlers:
            await self._tell(client, {"message": "Forbidden", "connectionId": client.connection_id,
                                      "requestId": context["requestId"]})
            return
        try:
            await self._invoke(route_key, event)
        except Exception:
            log.exception("%s handler failed", route_key)
            await self._tell(client, {"message": "Internal server error", "connectionId": client.connection_id,
                                      "requestId": context["requestId"]})

    async def _tell(self, client: _Client, message: dict[str, Any]) -> None:
        await self._deliver(client, json.dumps(message))

    async def _disconnect(self, client: _Client, code: int, reason: str) -> None:
        """``$disconnect``, once the socket is closed."""
        context = self._context(client, "$disconnect", "DISCONNECT", disconnectStatusCode=code,
                                disconnectReason=reason)
        event = {"headers": {"Host": self.domain_name, "x-api-key": "", "X-Forwarded-For": "", "x-restapi": ""},
                 "multiValueHeaders": {"Host": [self.domain_name], "x-api-key": [""], "X-Forwarded-For": [""],
                                       "x-restapi": [""]},
                 "requestContext": context, "isBase64Encoded": False}
        try:
            await self._invoke("$disconnect", event)
        except Exception:
            log.exception("$disconnect handler failed")

    # -- the management API ---------------------------------------------------------------------
    async def _http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope["raw_path"].decode("latin-1")
        if "/@connections/" not in path:
            # Not the management API, and not a WebSocket handshake either.
            answer = _error(426, "UpgradeRequired", "Upgrade Required")
        else:
            answer = await self._management(scope, path, receive)
        headers: Headers = [(b"content-type", b"application/json"), (b"x-amzn-requestid", str(uuid.uuid4()).encode())]
        if answer.status != 204:
            headers.append((b"content-length", str(len(answer.body)).encode()))
        if answer.error_type:
            headers.append((b"x-amzn-errortype", answer.error_type.encode()))
        if answer.close:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})

    async def _read_body(self, scope: dict[str, Any], receive: Any) -> bytes | _Answer:
        """The request body, or the answer that refuses it: 413 past the message limit (without
        reading the rest), 408 when it does not arrive within the read timeout."""
        too_large = _error(413, "PayloadTooLargeException", "Message too long", close=True)
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is not None and int(length) > MESSAGE_LIMIT:
            return too_large
        body = bytearray()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._read_timeout
        more = True
        while more:
            try:
                message = await asyncio.wait_for(receive(), timeout=max(0.0, deadline - loop.time()))
            except TimeoutError:
                log.warning("answered 408 to a management API request: its body did not arrive within %g s",
                            self._read_timeout)
                return _error(408, "RequestTimeoutException", "Request Timeout", close=True)
            if message["type"] == "http.disconnect":
                return _Answer(400, close=True)  # nobody is left to read it
            body += message.get("body", b"")
            if len(body) > MESSAGE_LIMIT:
                return too_large
            more = message.get("more_body", False)
        return bytes(body)

    async def _management(self, scope: dict[str, Any], path: str, receive: Any) -> _Answer:
        parts = path.split("/")
        if len(parts) != 4 or parts[0] or parts[2] != "@connections" or not parts[3] or parts[1] != self.stage:
            return _error(403, "ForbiddenException", "Forbidden")
        body = await self._read_body(scope, receive)
        if isinstance(body, _Answer):
            return body
        client = self._open.get(unquote(parts[3]))
        if client is None or client.closing:
            return _GONE
        method = scope["method"]
        if method == "POST":
            client.touch()
            try:
                data: str | bytes = body.decode("utf-8")
            except UnicodeDecodeError:
                data = body
            try:
                delivered = await asyncio.wait_for(self._deliver(client, data), timeout=self._send_timeout)
            except TimeoutError:
                return _error(429, "LimitExceededException", None)
            return _Answer(200) if delivered else _GONE
        if method == "GET":
            info = {"connectedAt": _iso(client.connected_at), "lastActiveAt": _iso(client.last_active_at),
                    "identity": {"sourceIp": client.source_ip, "userAgent": client.user_agent}}
            return _Answer(200, json.dumps(info).encode())
        if method == "DELETE":
            await self._close(client, NORMAL_CLOSURE, "")
            return _Answer(204)
        return _error(403, "ForbiddenException", "Forbidden")
