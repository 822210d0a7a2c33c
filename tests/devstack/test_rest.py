"""Chalice's REST routes served alone, concurrently, and stopped without leftovers."""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from chalice import Chalice

from devstack.http_server import bind
from devstack.rest import RestServer

from .conftest import threads_since, wait_until, wait_until_ended


def make_app() -> Chalice:
    app = Chalice(app_name="fake-rest", configure_logs=False, env={})
    barrier = threading.Barrier(4, timeout=10)

    @app.route("/together/{n}")
    def together(n: str) -> dict[str, Any]:
        barrier.wait()  # returns only once four requests are in at the same time
        return {"n": n, "seen": app.current_request.uri_params["n"]}

    @app.route("/echo", methods=["POST"])
    def echo() -> dict[str, Any]:
        return {"body": app.current_request.json_body}

    return app


def test_routes_are_served_concurrently_each_with_its_own_request() -> None:
    app = make_app()
    with RestServer(app, port=0) as server:
        with httpx.Client(base_url=server.url, timeout=15) as http:
            assert http.post("/echo", json={"a": 1}).json() == {"body": {"a": 1}}
        with ThreadPoolExecutor(max_workers=4) as pool:
            replies = list(pool.map(lambda n: httpx.get(f"{server.url}/together/{n}", timeout=15).json(), range(4)))
    assert sorted(r["n"] for r in replies) == ["0", "1", "2", "3"]
    assert all(r["seen"] == r["n"] for r in replies)
    assert type(app) is Chalice  # put back as it was


def test_stop_ends_kept_alive_connections_and_leaves_no_thread() -> None:
    before = set(threading.enumerate())
    server = RestServer(make_app(), port=0)
    server.start()
    with httpx.Client(base_url=server.url, timeout=5) as http:
        assert http.post("/echo", json=1).status_code == 200  # the connection stays open
        started = threads_since(before)
        assert started  # the server's own thread and its handler's
        server.stop()
        with pytest.raises(httpx.TransportError):
            http.post("/echo", json=2)
    wait_until_ended(started)


def hello_app() -> Chalice:
    app = Chalice(app_name="fake-rest", configure_logs=False, env={})

    @app.route("/hello")
    def hello() -> dict[str, Any]:
        return {"pid": os.getpid()}

    return app


def serve_hello(sock: socket.socket) -> None:
    RestServer(hello_app(), sock=sock).run()


def test_the_server_runs_in_a_process_of_its_own_on_a_socket_its_parent_bound() -> None:
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    process = multiprocessing.get_context("spawn").Process(target=serve_hello, args=(sock,), daemon=True)
    process.start()
    sock.close()  # the child has its own copy

    def answer() -> Any:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/hello", timeout=10).json()
        except httpx.TransportError:  # bound, not yet listening
            return None

    try:
        assert wait_until(answer, timeout=60) == {"pid": process.pid}
        os.kill(process.pid, signal.SIGTERM)  # what a supervisor sends
        process.join(timeout=60)
        assert not process.is_alive()
    finally:
        if process.is_alive():
            process.kill()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/hello", timeout=10)
