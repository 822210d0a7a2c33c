"""One HTTP server component: an ASGI app served by uvicorn, in a thread or in the calling thread.

Both the REST API and the WebSocket gateway are such components. ``start()`` runs the server
on a thread of its own and returns once it is listening (tests, ``DevStack``); ``run()`` serves
in the calling thread until SIGINT/SIGTERM, for a process of its own. Either way the socket can
be bound beforehand (``sock=``), so that whoever binds it learns at once that a port is busy.

What uvicorn does here, and why each setting:

- ``backlog``: the listen queue (uvicorn's default, 2048; the kernel caps it at
  ``net.core.somaxconn``). A burst of 1,000 connections is queued, not reset.
- ``timeout_keep_alive``: an idle kept-alive connection is closed after this many seconds.
- A request head must arrive whole within ``read_timeout`` seconds of the connection opening
  (or of its first byte after the previous response), else the connection is closed with one
  log line: uvicorn's own keep-alive timer stops at the first byte, so a client that sends half
  a request would otherwise hold its connection for ever. The body's deadline is the app's.
- Malformed requests (``Content-Length: abc``, garbage, a head over 16 KB) are answered 400 and
  closed by uvicorn with one warning line, no traceback. ``HEAD`` responses carry no body.
- ``proxy_headers`` off: ``X-Forwarded-For`` from a local client is not trusted.
- uvicorn's log level is WARNING: no line per request or per WebSocket handshake (handshake
  lines would print API keys from query strings).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Self

import h11
from uvicorn import Config, Server
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["DEFAULT_READ_TIMEOUT", "HttpServer", "ServedComponent", "bind"]

log = logging.getLogger("devstack.http")


class _DenialIsNoError(logging.Filter):
    """uvicorn's sans-I/O WebSocket protocol logs "ASGI callable returned without completing
    handshake." at ERROR after an app refuses a handshake with a denial response (ASGI's
    ``websocket.http.response``), a case its wsproto protocol treats as complete. The gateway
    refuses a bad key that way, as API Gateway answers 401; that is no error of the server's."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing handshake."


logging.getLogger("uvicorn.error").addFilter(_DenialIsNoError())

DEFAULT_READ_TIMEOUT = 10.0
DEFAULT_KEEP_ALIVE = 30


def bind(host: str, port: int) -> socket.socket:
    """A bound TCP socket, so the port is known (and held) before the server on it starts."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port} ({exc.strerror}); choose another port") from exc
    return sock


class _DeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol, with a deadline for each request head (see the module's notes)."""

    read_timeout: float = DEFAULT_READ_TIMEOUT

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        self._head_deadline: asyncio.TimerHandle | None = None
        super().connection_made(transport)  # type: ignore[arg-type]
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:  # bytes of a request head, not yet the whole head
            if self._head_deadline is None:
                self._arm()
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if not self.transport.is_closing():
            self._head_deadline = self.loop.call_later(self.read_timeout, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
            log.warning("closing the connection from %s: no complete request within %g s", client,
                        self.read_timeout)
            self.transport.close()


class HttpServer:
    """Serves ``app`` (ASGI) with uvicorn on ``sock`` or on ``host:port`` (``port=0``: a free port).

    ``options`` go to ``uvicorn.Config`` (``ws=...``, ``ws_max_size=...``). ``before_stop`` is a
    coroutine function run on the server's loop when ``stop()`` is called, before uvicorn shuts
    down (the gateway closes its sockets there as API Gateway does).
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, *, sock: socket.socket | None = None,
                 name: str = "devstack-http", read_timeout: float = DEFAULT_READ_TIMEOUT,
                 keep_alive: int = DEFAULT_KEEP_ALIVE, graceful_timeout: int = 10, backlog: int = 2048,
                 before_stop: Any = None, **options: Any) -> None:
        self._app = app
        self._host = host
        self._port = sock.getsockname()[1] if sock is not None else port
        self._sock = sock
        self._name = name
        self._before_stop = before_stop
        protocol = type("DeadlineProtocol", (_DeadlineProtocol,), {"read_timeout": read_timeout})
        self._config_options: dict[str, Any] = {
            "http": protocol, "ws": "none", "lifespan": "off", "interface": "asgi3",
            "log_config": None, "log_level": logging.WARNING, "access_log": False,
            "proxy_headers": False, "server_header": False, "backlog": backlog,
            "timeout_keep_alive": keep_alive, "timeout_graceful_shutdown": graceful_timeout,
            **options,
        }
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def host(self) -> str:
        return self._host

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The server's event loop while it runs."""
        return self._loop

    def _prepare(self) -> socket.socket:
        if self._server is not None:
            raise RuntimeError(f"{self._name} is already started")
        sock = self._sock if self._sock is not None else bind(self._host, self._port)
        self._sock = sock
        self._port = sock.getsockname()[1]
        self._server = Server(Config(self._app, **self._config_options))
        self._error = None
        return sock

    async def _serve(self, sock: socket.socket) -> None:
        assert self._server is not None
        self._loop = asyncio.get_running_loop()
        await self._server.serve(sockets=[sock])

    def run(self) -> None:
        """Serve in this thread until SIGINT or SIGTERM (uvicorn handles both in the main thread)."""
        sock = self._prepare()
        try:
            asyncio.run(self._serve(sock))
        finally:
            self._finish()

    def start(self) -> None:
        """Serve on a thread of its own; returns once listening, or raises why it could not."""
        sock = self._prepare()
        server = self._server
        assert server is not None

        def serve() -> None:
            try:
                asyncio.run(self._serve(sock))
            except BaseException as exc:  # SystemExit included: uvicorn exits on a failed startup
                self._error = exc
                if server.started:
                    log.exception("%s stopped with an error", self._name)

        self._thread = threading.Thread(target=serve, name=self._name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)
        if not server.started:
            error = self._error or TimeoutError(f"{self._name} did not start")
            self.stop()
            raise RuntimeError(f"{self._name} could not start: {error}") from error

    def stop(self) -> None:
        """Runs ``before_stop``, then uvicorn's shutdown: stop accepting, close idle connections,
        let requests in flight finish (``graceful_timeout``), and join the thread."""
        server, thread, loop = self._server, self._thread, self._loop
        if server is None:
            return
        if self._before_stop is not None and loop is not None and thread is not None and thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(self._before_stop(), loop).result(timeout=30)
            except Exception:
                log.exception("%s: stopping its connections failed", self._name)
        server.should_exit = True
        if thread is not None:
            thread.join(timeout=60)
            if thread.is_alive():
                log.error("%s did not stop within 60 s", self._name)
        self._finish()

    def _finish(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()  # uvicorn closes it too; closing twice is harmless
        self._server = None
        self._thread = None
        self._loop = None


class ServedComponent:
    """A part of the stack served by one ``HttpServer``, with a pool of threads for its handlers.

    ``start()`` serves on a thread and returns once listening; ``run()`` serves in the calling
    thread until SIGINT/SIGTERM (a process of its own); ``stop()`` stops and joins. A subclass
    builds its server in ``_make_server`` and may act once the port is known (``_listening``) and
    undo that when it stops (``_release``).
    """

    _name = "the server"
    _scheme = "http"
    _thread_prefix = "devstack-handler"

    def __init__(self, host: str, port: int, sock: socket.socket | None, max_workers: int) -> None:
        self._host = host
        self._port = sock.getsockname()[1] if sock is not None else port
        self._sock = sock
        self._max_workers = max_workers
        self._server: HttpServer | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def port(self) -> int:
        return self._server.port if self._server is not None else self._port

    @property
    def url(self) -> str:
        return f"{self._scheme}://{self._host}:{self.port}"

    def _make_server(self, executor: ThreadPoolExecutor) -> HttpServer:
        raise NotImplementedError

    def _listening(self) -> None:
        """Called once the port is known: after ``start()`` listens, or before ``run()`` serves."""

    def _release(self) -> None:
        """Undo what ``_make_server`` and ``_listening`` did; called once the server has stopped."""

    def _prepare(self) -> HttpServer:
        if self._server is not None:
            raise RuntimeError(f"{self._name} is already started")
        self._executor = ThreadPoolExecutor(max_workers=self._max_workers, thread_name_prefix=self._thread_prefix)
        self._server = self._make_server(self._executor)
        return self._server

    def start(self) -> None:
        server = self._prepare()
        try:
            server.start()
        except BaseException:
            self._server = None
            self._cleanup()
            raise
        self._port = server.port
        self._listening()

    def run(self) -> None:
        """Serve in this thread until SIGINT or SIGTERM (a process of its own)."""
        server = self._prepare()
        self._listening()  # with the port given or bound beforehand
        try:
            server.run()
        finally:
            self._server = None
            self._cleanup()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.stop()
        self._sock = None  # closed with the server
        self._cleanup()

    def _cleanup(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        self._release()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
