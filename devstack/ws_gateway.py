"""API Gateway's WebSocket API, locally: sockets in front of the Chalice app's handlers.

What it does as API Gateway does:

- ``$connect`` runs before the handshake is accepted; a non-2xx ``statusCode`` (or an error)
  refuses the handshake with that HTTP status.
- Each text message is routed on ``$request.body.action`` to a route the app registered, else
  to ``$default``; each runs as its own invocation, so messages may be handled concurrently.
  A failing handler sends ``{"message": "Internal server error", ...}`` to the client.
- ``$disconnect`` runs once the socket is closed, whoever closed it and why.
- Connection ids are 16 characters of base64 (``Lp0Sxd5uIAMCJ7Q=``).
- Limits: 32 KB per frame and 128 KB per message (close code 1009), binary frames refused
  (close code 1003), an idle timeout (10 minutes without a data message either way) and a
  maximum connection duration (2 hours), both closing with 1001.
- The management API on the same port: ``POST|GET|DELETE /{stage}/@connections/{id}``, with
  410 ``GoneException`` for an unknown or closed connection, so the unchanged boto3
  ``apigatewaymanagementapi`` client works against it.

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
import threading
import time
import uuid
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response
from websockets.protocol import State

from .emulator import LambdaContext

__all__ = ["FRAME_LIMIT", "MESSAGE_LIMIT", "WebSocketGateway", "new_connection_id"]

log = logging.getLogger("devstack.ws")
_server_log = logging.getLogger("devstack.ws.server")  # websockets' own: one INFO line per HTTP request
_server_log.setLevel(logging.WARNING)

FRAME_LIMIT = 32 * 1024
MESSAGE_LIMIT = 128 * 1024
_MAX_HTTP_HEAD = 16 * 1024
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def new_connection_id() -> str:
    """An id shaped like API Gateway's: base64 of 11 random bytes, 16 characters ending in ``=``."""
    return base64.urlsafe_b64encode(os.urandom(11)).decode()


def _request_time(epoch: float) -> str:
    t = time.gmtime(epoch)
    return f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _Client:
    connection_id: str
    ws: _GatewayConnection
    source_ip: str
    user_agent: str
    connected_at: float = field(default_factory=time.time)
    last_active_at: float = field(default_factory=time.time)
    opened: float = field(default_factory=time.monotonic)
    active: float = field(default_factory=time.monotonic)

    def touch(self) -> None:
        self.last_active_at, self.active = time.time(), time.monotonic()


class _GatewayConnection(ServerConnection):
    """A connection that answers management API requests itself and hands the rest to websockets.

    websockets parses only bodiless handshake requests, so requests for ``/@connections/`` are
    read here (head and body), answered, and closed.
    """

    gateway: WebSocketGateway  # set on the subclass each gateway makes

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client: _Client | None = None
        self._sniffed: bytearray | None = bytearray()
        self._answering = False
        self.gateway._transports.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.gateway._transports.discard(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._sniffed is None:
            super().data_received(data)
            return
        if self._answering:
            return
        self._sniffed += data
        end = self._sniffed.find(b"\r\n\r\n")
        if end < 0:
            if len(self._sniffed) > _MAX_HTTP_HEAD:
                self.transport.close()
            return
        lines = bytes(self._sniffed[:end]).decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        target = parts[1] if len(parts) == 3 else ""
        if "/@connections/" not in urlsplit(target).path:
            buffered, self._sniffed = bytes(self._sniffed), None
            super().data_received(buffered)
            return
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        try:
            length = int(headers.get("content-length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self._answering = True
            self._write_response(400, {}, b'{"message": "Bad Request"}')
            return
        if len(self._sniffed) < end + 4 + length:
            return
        body = bytes(self._sniffed[end + 4:end + 4 + length])
        self._answering = True
        self.gateway._spawn(self._answer(parts[0], target, body))

    def eof_received(self) -> bool | None:  # type: ignore[override]  # asyncio allows True: keep open
        if self._answering:
            return True  # keep the transport open until the management request is answered
        if self._sniffed is not None:  # an incomplete request: websockets reports it
            buffered, self._sniffed = bytes(self._sniffed), None
            if buffered:
                super().data_received(buffered)
        super().eof_received()
        return None

    async def _answer(self, method: str, target: str, body: bytes) -> None:
        try:
            status, headers, payload = await self.gateway._management(method, target, body)
        except Exception:
            log.exception("management API request failed: %s %s", method, target)
            status, headers, payload = 500, {}, b'{"message": "Internal server error"}'
        self._write_response(status, headers, payload)

    def _write_response(self, status: int, headers: dict[str, str], payload: bytes) -> None:
        if self.transport.is_closing():
            return
        lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
                 f"Date: {datetime.now(UTC).strftime('%a, %d %b %Y %H:%M:%S GMT')}",
                 "Content-Type: application/json",
                 f"Content-Length: {len(payload)}",
                 "Connection: close",
                 f"x-amzn-RequestId: {uuid.uuid4()}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)
        self.transport.close()


def _error(status: int, error_type: str, message: str | None) -> tuple[int, dict[str, str], bytes]:
    return status, {"x-amzn-ErrorType": error_type}, json.dumps({"message": message}).encode()


def _gone() -> tuple[int, dict[str, str], bytes]:
    # API Gateway's 410 has the error type in a header and a body that is not JSON; boto3 still
    # raises ``GoneException``.
    return 410, {"x-amzn-ErrorType": "GoneException"}, b""


class WebSocketGateway:
    """Serves the app's WebSocket handlers and the management API on ``host:port``.

    ``port=0`` picks a free port; or pass an already bound ``sock``. ``start()`` returns once
    listening; ``stop()`` closes every socket (each gets its ``$disconnect``) and joins its threads.
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, *, stage: str = "local",
                 sock: socket.socket | None = None, idle_timeout: float = 600, max_duration: float = 7200,
                 lambda_timeout: float = 30, lambda_memory_mb: int = 128, region: str = "us-east-1",
                 max_workers: int = 32, send_timeout: float = 5, close_timeout: float = 2) -> None:
        self.app = app
        self.stage = stage
        self.api_id = "local"
        self.idle_timeout = idle_timeout
        self.max_duration = max_duration
        self._host = host
        self._port = port
        self._sock = sock
        self._lambda_timeout = lambda_timeout
        self._lambda_memory_mb = lambda_memory_mb
        self._region = region
        self._max_workers = max_workers
        self._send_timeout = send_timeout
        self._close_timeout = close_timeout
        self._connection_class = type("GatewayConnection", (_GatewayConnection,), {"gateway": self})
        self._open: dict[str, _Client] = {}
        self._transports: set[_GatewayConnection] = set()  # every TCP connection, handshake done or not
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._saved_endpoint: tuple[Any, Any] | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"ws://{self._host}:{self._port}"

    @property
    def management_url(self) -> str:
        """The endpoint for boto3's ``apigatewaymanagementapi`` client."""
        return f"http://{self._host}:{self._port}/{self.stage}"

    @property
    def domain_name(self) -> str:
        return f"{self._host}:{self._port}"

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the gateway is already started")
        self._ready.clear()
        self._startup_error = None
        self._executor = ThreadPoolExecutor(max_workers=self._max_workers, thread_name_prefix="devstack-ws-handler")
        self._thread = threading.Thread(target=self._run, name="devstack-ws-gateway", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=15):
            self._startup_error = TimeoutError("the WebSocket gateway did not start")
        if self._startup_error is not None:
            error = self._startup_error
            self.stop()
            raise error
        log.info("WebSocket gateway on %s (management API %s)", self.url, self.management_url)

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stopping.set)
            except RuntimeError:  # the loop closed meanwhile
                pass
        thread.join(timeout=15)
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        self._loop = None
        self._restore_websocket_api()

    def __enter__(self) -> WebSocketGateway:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def connection_ids(self) -> list[str]:
        """Ids of the open connections (those the management API would accept)."""
        return list(self._open)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by start()
            if not self._ready.is_set():
                self._startup_error = exc
                self._ready.set()
            else:
                log.exception("the WebSocket gateway stopped with an error")

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        where: dict[str, Any] = {"sock": self._sock} if self._sock is not None else {"host": self._host,
                                                                                      "port": self._port}
        server: Server = await serve(
            self._handle, process_request=self._process_request, create_connection=self._connection_class,
            max_size=(MESSAGE_LIMIT, FRAME_LIMIT), compression=None, ping_interval=None, open_timeout=10,
            close_timeout=self._close_timeout, logger=_server_log, **where,
        )
        self._port = server.sockets[0].getsockname()[1]
        self._configure_websocket_api()
        self._ready.set()
        await self._stopping.wait()
        server.close(close_connections=True, code=CloseCode.GOING_AWAY, reason="Going away")
        try:
            await asyncio.wait_for(server.wait_closed(), timeout=2)
        except TimeoutError:
            # A client that opened a TCP connection and never finished its handshake would hold
            # the close until open_timeout: cut such connections off.
            for connection in list(self._transports):
                connection.transport.abort()
            for task in list(getattr(server, "handler_tasks", ())):
                task.cancel()
            await asyncio.wait_for(server.wait_closed(), timeout=2)
        # Every $disconnect, and the handler calls still running.
        deadline = time.monotonic() + 10
        while self._tasks and time.monotonic() < deadline:
            await asyncio.wait(set(self._tasks), timeout=max(0.0, deadline - time.monotonic()))

    def _configure_websocket_api(self) -> None:
        """Point ``app.websocket_api`` (Chalice's own client) at this gateway, as Lambda points it
        at the API's domain; the app still sets ``app.websocket_api.session`` itself."""
        api = getattr(self.app, "websocket_api", None)
        if api is not None:
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

    def _connect_event(self, client: _Client, request: Request) -> dict[str, Any]:
        multi_headers: dict[str, list[str]] = {}
        for name, value in request.headers.raw_items():
            multi_headers.setdefault(name, []).append(value)
        forwarded = {"X-Forwarded-For": [client.source_ip], "X-Forwarded-Port": [str(self._port)],
                     "X-Forwarded-Proto": ["http"]}
        multi_headers.update(forwarded)
        query = parse_qsl(urlsplit(request.path).query, keep_blank_values=True)
        multi_query: dict[str, list[str]] = {}
        for name, value in query:
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

    async def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        """``$connect``, before the handshake is accepted."""
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return None  # not a WebSocket handshake: websockets answers 426
        assert isinstance(ws, _GatewayConnection)
        client = _Client(new_connection_id(), ws, str(ws.remote_address[0]), request.headers.get("User-Agent", ""))
        try:
            result = await self._invoke("$connect", self._connect_event(client, request))
        except Exception:
            log.exception("$connect handler failed")
            return self._refuse(ws, 500, json.dumps({"message": "Internal server error"}))
        status, body = 200, ""
        if isinstance(result, dict):
            status = int(result.get("statusCode", 200))
            body = str(result.get("body") or "")
        if not 200 <= status < 300:
            return self._refuse(ws, status, body)
        ws.client = client
        self._spawn(self._after_close(client))
        return None

    @staticmethod
    def _refuse(ws: ServerConnection, status: int, body: str) -> Response:
        response = ws.respond(status, body)
        if body.startswith(("{", "[")):
            del response.headers["Content-Type"]
            response.headers["Content-Type"] = "application/json"
        return response

    async def _handle(self, connection: ServerConnection) -> None:
        assert isinstance(connection, _GatewayConnection)
        client = connection.client
        if client is None:
            return
        self._open[client.connection_id] = client
        watchdog = asyncio.create_task(self._watchdog(client))
        try:
            while True:
                try:
                    message = await connection.recv()
                except ConnectionClosed:
                    return
                client.touch()
                if isinstance(message, bytes):
                    await connection.close(CloseCode.UNSUPPORTED_DATA, "Binary frames are not supported")
                    return
                self._spawn(self._on_message(client, message))
        finally:
            watchdog.cancel()
            self._open.pop(client.connection_id, None)

    async def _watchdog(self, client: _Client) -> None:
        while True:
            deadline = min(client.active + self.idle_timeout, client.opened + self.max_duration)
            delay = deadline - time.monotonic()
            if delay <= 0:
                self._open.pop(client.connection_id, None)
                await client.ws.close(CloseCode.GOING_AWAY, "Going away")
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
        try:
            await client.ws.send(json.dumps(message))
        except ConnectionClosed:
            pass

    async def _after_close(self, client: _Client) -> None:
        """``$disconnect``, once the TCP connection is gone."""
        await client.ws.wait_closed()
        self._open.pop(client.connection_id, None)
        protocol = client.ws.protocol
        frame = None
        if protocol.close_rcvd_then_sent or protocol.close_sent is None:
            frame = protocol.close_rcvd
        else:
            frame = protocol.close_sent
        code = frame.code if frame is not None else CloseCode.ABNORMAL_CLOSURE
        reason = frame.reason if frame is not None else ""
        context = self._context(client, "$disconnect", "DISCONNECT", disconnectStatusCode=int(code),
                                disconnectReason=reason)
        event = {"headers": {"Host": self.domain_name, "x-api-key": "", "X-Forwarded-For": "", "x-restapi": ""},
                 "multiValueHeaders": {"Host": [self.domain_name], "x-api-key": [""], "X-Forwarded-For": [""],
                                       "x-restapi": [""]},
                 "requestContext": context, "isBase64Encoded": False}
        try:
            await self._invoke("$disconnect", event)
        except Exception:
            log.exception("$disconnect handler failed")

    # -- management API -------------------------------------------------------------------------
    async def _management(self, method: str, target: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(target).path.split("/")
        if len(parts) != 4 or parts[0] or parts[2] != "@connections" or not parts[3] or parts[1] != self.stage:
            return _error(403, "ForbiddenException", "Forbidden")
        client = self._open.get(unquote(parts[3]))
        if client is None or client.ws.state is not State.OPEN:
            return _gone()
        if method == "POST":
            if len(body) > MESSAGE_LIMIT:
                return _error(413, "PayloadTooLargeException", "Message too long")
            client.touch()
            try:
                data: str | bytes = body.decode("utf-8")
            except UnicodeDecodeError:
                data = body
            try:
                await asyncio.wait_for(client.ws.send(data), timeout=self._send_timeout)
            except ConnectionClosed:
                return _gone()
            except TimeoutError:
                return _error(429, "LimitExceededException", None)
            return 200, {}, b""
        if method == "GET":
            info = {"connectedAt": _iso(client.connected_at), "lastActiveAt": _iso(client.last_active_at),
                    "identity": {"sourceIp": client.source_ip, "userAgent": client.user_agent}}
            return 200, {}, json.dumps(info).encode()
        if method == "DELETE":
            self._open.pop(client.connection_id, None)
            self._spawn(client.ws.close(CloseCode.NORMAL_CLOSURE, ""))
            return 204, {}, b""
        return _error(403, "ForbiddenException", "Forbidden")
