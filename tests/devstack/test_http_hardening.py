"""Malformed, oversized, stalled and abandoned requests, on the REST server and on the gateway's
management API: each is answered by a clear 4xx, or closed after a timeout, with one log line and
no traceback. Bodies past the limit are refused without being read."""

from __future__ import annotations

import logging
import socket
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import httpx
import pytest
from chalice import Chalice, Response

from devstack.rest import RestServer
from devstack.ws_gateway import MESSAGE_LIMIT, WebSocketGateway, new_connection_id

from .conftest import CREDENTIALS

REST_LIMIT = 16 * 1024
LOGGERS = ("uvicorn", "devstack")


def rest_app() -> Chalice:
    app = Chalice(app_name="fake-rest", configure_logs=False, env={})

    @app.route("/echo", methods=["POST"])
    def echo() -> dict[str, Any]:
        return {"bytes": len(app.current_request.raw_body or b"")}

    @app.route("/hello", methods=["GET", "HEAD"])
    def hello() -> dict[str, Any]:
        return {"hello": "world"}

    @app.route("/slow")
    def slow() -> dict[str, Any]:
        time.sleep(0.3)
        return {"slow": True}

    return app


def ws_app() -> Chalice:
    app = Chalice(app_name="fake-ws", configure_logs=False, env={})
    app.experimental_feature_flags.update(["WEBSOCKETS"])

    @app.on_ws_connect()
    def on_connect(event: Any) -> Response:
        return Response(body="", status_code=200)

    app.websocket_api.session = boto3.session.Session(**CREDENTIALS)
    return app


@dataclass
class Target:
    """A server under test and a route of it that reads a request body."""

    kind: str
    port: int
    path: str
    limit: int


Factory = Callable[..., Target]


@pytest.fixture(params=["rest", "gateway"])
def serve(request: pytest.FixtureRequest) -> Iterator[Factory]:
    """Starts the server of the parameter with the given read timeout."""
    started: list[Any] = []

    def start(read_timeout: float = 60) -> Target:
        if request.param == "rest":
            rest = RestServer(rest_app(), port=0, max_body_bytes=REST_LIMIT, read_timeout=read_timeout)
            rest.start()
            started.append(rest)
            return Target("rest", rest.port, "/echo", REST_LIMIT)
        gateway = WebSocketGateway(ws_app(), port=0, read_timeout=read_timeout)
        gateway.start()
        started.append(gateway)
        return Target("gateway", gateway.port, f"/local/@connections/{new_connection_id()}", MESSAGE_LIMIT)

    yield start
    for server in started:
        server.stop()


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=30)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (the test fails if it never does)."""
    chunks = []
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def status_of(response: bytes) -> int:
    assert response.startswith(b"HTTP/1.1 "), response[:80]
    return int(response.split(b" ", 2)[1])


def head(target: Target, *headers: str) -> bytes:
    lines = [f"POST {target.path} HTTP/1.1", "Host: 127.0.0.1", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def problems(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Warnings and errors from the servers' loggers."""
    return [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith(LOGGERS)]


def assert_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR], caplog.text


def test_a_content_length_that_is_not_a_number_is_400_with_one_log_line(
        serve: Factory, caplog: pytest.LogCaptureFixture) -> None:
    target = serve()
    with caplog.at_level(logging.WARNING), connect(target.port) as sock:
        sock.sendall(head(target, "Content-Length: abc") + b"x" * 10)
        response = read_until_closed(sock)
    assert status_of(response) == 400
    assert len(problems(caplog)) == 1
    assert_no_traceback(caplog)


@pytest.mark.parametrize("garbage", [b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
                                     b"HELLO\r\n\r\n", b"POST /x HTTP/1.1\r\n: no\r\n\r\n",
                                     b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"])
def test_garbage_is_answered_4xx_and_closed_with_one_log_line_at_most(serve: Factory, caplog: pytest.LogCaptureFixture,
                                                               garbage: bytes) -> None:
    target = serve()
    with caplog.at_level(logging.WARNING), connect(target.port) as sock:
        sock.sendall(garbage)
        response = read_until_closed(sock)
    assert response == b"" or 400 <= status_of(response) < 500
    assert len(problems(caplog)) <= 1
    assert_no_traceback(caplog)


def test_a_body_announced_past_the_limit_is_refused_at_once_without_being_read(serve: Factory) -> None:
    target = serve(read_timeout=600)  # a server waiting for the body would not answer within the test
    with connect(target.port) as sock:
        sock.sendall(head(target, f"Content-Length: {100 * 1024 * 1024}"))  # and not a byte of it
        response = read_until_closed(sock)
    assert status_of(response) == 413
    assert b"connection: close" in response.lower()


def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit(serve: Factory) -> None:
    target = serve(read_timeout=600)
    chunk = b"y" * 8192
    with connect(target.port) as sock:
        sock.sendall(head(target, "Transfer-Encoding: chunked"))
        for _ in range(target.limit // len(chunk) + 1):  # just past the limit, and the body goes on
            sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        response = read_until_closed(sock)
    assert status_of(response) == 413


def test_a_chunked_body_within_the_limit_is_read(serve: Factory) -> None:
    target = serve()

    def body() -> Iterator[bytes]:
        yield b'{"a":'
        yield b' 1}'

    response = httpx.post(f"http://127.0.0.1:{target.port}{target.path}", content=body(),
                          headers={"Content-Type": "application/json"}, timeout=30)
    if target.kind == "rest":
        assert response.status_code == 200 and response.json() == {"bytes": 8}
    else:  # read whole, then the connection it names is unknown
        assert response.status_code == 410


def test_a_short_body_is_answered_408_once_the_read_timeout_passes(serve: Factory,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    target = serve(read_timeout=0.5)
    with caplog.at_level(logging.WARNING), connect(target.port) as sock:
        sock.sendall(head(target, "Content-Length: 100") + b"only ten b")
        response = read_until_closed(sock)
    assert status_of(response) == 408
    assert len(problems(caplog)) == 1
    assert_no_traceback(caplog)


@pytest.mark.parametrize("sent", [b"", b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"GE"])
def test_a_request_head_never_finished_is_closed_after_the_read_timeout(serve: Factory, sent: bytes,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    target = serve(read_timeout=0.5)
    with caplog.at_level(logging.WARNING), connect(target.port) as sock:
        sock.sendall(sent)
        assert read_until_closed(sock) == b""
    assert len(problems(caplog)) == 1
    assert_no_traceback(caplog)


def test_150_half_open_requests_are_all_closed(serve: Factory, caplog: pytest.LogCaptureFixture) -> None:
    target = serve(read_timeout=0.5)
    with caplog.at_level(logging.WARNING):
        sockets = [connect(target.port) for _ in range(150)]
        try:
            for n, sock in enumerate(sockets):
                sock.sendall(head(target, "Content-Length: 50")[:40] if n % 2 else head(target, "Content-Length: 50"))
            closed = [read_until_closed(sock) for sock in sockets]
        finally:
            for sock in sockets:
                sock.close()
    assert all(response == b"" or status_of(response) == 408 for response in closed)
    assert len(problems(caplog)) == 150  # one line each
    assert_no_traceback(caplog)


def _reset(sock: socket.socket) -> None:
    """Close abruptly: the server sees a reset, not a polite end."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_clients_that_leave_early_leave_no_traceback(serve: Factory, caplog: pytest.LogCaptureFixture) -> None:
    target = serve()
    with caplog.at_level(logging.DEBUG, logger="devstack"), caplog.at_level(logging.INFO, logger="uvicorn"):
        for n in range(60):
            sock = connect(target.port)
            if n % 3 == 0:
                sock.sendall(head(target, "Content-Length: 50")[:30])  # mid-head
            elif n % 3 == 1:
                sock.sendall(head(target, "Content-Length: 50") + b"x" * 10)  # mid-body
            else:  # a whole request whose answer nobody reads
                path = "/slow" if target.kind == "rest" else target.path
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            _reset(sock)
        time.sleep(1)  # the slow handlers finish and answer into closed sockets
        # the server is still well
        response = httpx.post(f"http://127.0.0.1:{target.port}{target.path}", content=b"{}", timeout=30)
        assert response.status_code in (200, 410)
    assert_no_traceback(caplog)


def test_head_is_answered_without_a_body_and_the_connection_serves_on() -> None:
    with RestServer(rest_app(), port=0) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        head_response = http.head("/hello")
        assert head_response.status_code == 200
        assert head_response.content == b""
        assert int(head_response.headers["content-length"]) == len(b'{"hello":"world"}')
        # A body after the HEAD answer would be read as the start of the next answer.
        assert http.get("/hello").json() == {"hello": "world"}
        with connect(server.port) as sock:
            sock.sendall(b"HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                         b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            both = read_until_closed(sock)
    first, second = both.split(b"HTTP/1.1 ")[1:]
    assert first.startswith(b"200") and first.endswith(b"\r\n\r\n")  # headers only
    assert second.startswith(b"200") and second.endswith(b'{"hello":"world"}')


def test_an_unknown_path_is_a_404_in_the_contracts_shape() -> None:
    with RestServer(rest_app(), port=0) as server:
        response = httpx.delete(f"{server.url}/nowhere/at/all", timeout=30)
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "no route matches this path"}}
