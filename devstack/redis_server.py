"""Redis for the local stack: the one named by ``REDIS_URL`` when it answers, else an embedded one.

The embedded server is fakeredis's ``TcpFakeServer``: the Redis protocol over TCP, from a thread
(``start_redis``) or from a process of its own (``serve_redis``, under ``order-engine run``).
Its accepted sockets set ``TCP_NODELAY``: fakeredis writes each reply of a pipeline on its own,
and with Nagle's algorithm the second waited for the client's delayed ACK, 40 ms a pipeline.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["DEFAULT_REDIS_URL", "embedded_server", "redis_answers", "start_redis"]

log = logging.getLogger("devstack.redis")


def redis_answers(url: str, timeout: float = 0.5) -> bool:
    """True when a Redis server at ``url`` answers PING.

    A plain ``redis://host:port`` is asked over a bare socket: the supervisor asks before it starts
    any part, and importing the client library would delay them all."""
    from urllib.parse import urlparse

    parsed = urlparse(url)
    if parsed.scheme == "redis" and not parsed.username and not parsed.password and not parsed.query:
        try:
            with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379),
                                          timeout=timeout) as sock:
                sock.sendall(b"*1\r\n$4\r\nPING\r\n")
                reply = b""
                while not reply.endswith(b"\r\n"):
                    chunk = sock.recv(64)
                    if not chunk:
                        break
                    reply += chunk
                return reply.startswith(b"+PONG")
        except (OSError, ValueError):
            return False
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except Exception:
        return False
    finally:
        client.close()


DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def start_redis(url: str | None = None, host: str = "127.0.0.1", port: int = 0,
                try_default: bool = True) -> tuple[str, Callable[[], None]]:
    """Returns ``(url, stop)``. ``url`` is used when given and answering; with no ``url``, a Redis
    answering on the default port is used. Otherwise an embedded server is started on
    ``host:port`` (a free port by default) and ``stop`` shuts it down. A real server is much
    cheaper per command than the embedded one, which polls each client socket from Python."""
    if url:
        if redis_answers(url):
            return url, lambda: None
        log.warning("REDIS_URL %s does not answer; starting an embedded Redis", url)
    elif try_default and redis_answers(DEFAULT_REDIS_URL):
        return DEFAULT_REDIS_URL, lambda: None
    server = embedded_server(host, port)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name="devstack-redis", daemon=True)
    thread.start()
    bound_port = server.server_address[1]
    stopped = threading.Event()

    def stop() -> None:
        if stopped.is_set():
            return
        stopped.set()
        server.shutdown()  # also tells each client thread to finish
        server.server_close()  # joins the client threads
        thread.join(timeout=5)

    return f"redis://{host}:{bound_port}/0", stop


def embedded_server(host: str = "127.0.0.1", port: int = 0, sock: socket.socket | None = None) -> Any:
    """fakeredis's TCP server, listening on ``host:port`` or on ``sock`` (bound already), with
    ``TCP_NODELAY`` on every accepted socket."""
    from fakeredis import TcpFakeServer

    class NoDelayServer(TcpFakeServer):  # type: ignore[misc]
        def get_request(self) -> tuple[socket.socket, Any]:
            conn, address = super().get_request()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return conn, address

    if sock is None:
        return NoDelayServer((host, port))
    server = NoDelayServer(sock.getsockname()[:2], bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    server.server_address = sock.getsockname()
    server.server_activate()
    return server
