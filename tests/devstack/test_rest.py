"""Chalice's REST routes served alone, concurrently, and stopped without leftovers."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from chalice import Chalice

from devstack.rest import RestServer

from .conftest import threads_since, wait_until_ended


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
