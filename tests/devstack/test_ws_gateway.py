"""The WebSocket gateway behaves as API Gateway's WebSocket API does, in front of a small Chalice app."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import boto3
import httpx
import pytest
from chalice import Chalice, Response
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from bench.burst import raise_open_files_limit
from devstack.ws_gateway import WebSocketGateway, new_connection_id

from .conftest import CREDENTIALS, threads_since, wait_until, wait_until_ended

CONNECTION_ID = re.compile(r"^[A-Za-z0-9_-]{15}=$")


@dataclass
class Recorder:
    events: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, event: Any) -> None:
        with self.lock:
            self.events.append(event.to_dict())

    def of(self, route: str) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.events if e["requestContext"]["routeKey"] == route]


def make_app(recorder: Recorder) -> Chalice:
    app = Chalice(app_name="fake-ws", configure_logs=False, env={})
    app.experimental_feature_flags.update(["WEBSOCKETS"])

    @app.on_ws_connect()
    def on_connect(event: Any) -> Response:
        recorder.add(event)
        token = (event.to_dict().get("queryStringParameters") or {}).get("token")
        if token in ("401", "403"):
            return Response(body=json.dumps({"error": "refused"}), status_code=int(token))
        if token == "boom":
            raise RuntimeError("boom")
        return Response(body="", status_code=200)

    @app.on_ws_message()
    def on_message(event: Any) -> None:
        recorder.add(event)
        if event.body == "boom":
            raise RuntimeError("boom")
        if event.body == "reply":
            app.websocket_api.send(event.connection_id, "reply from the app")

    @app.on_ws_disconnect()
    def on_disconnect(event: Any) -> None:
        recorder.add(event)

    # Chalice has no public decorator for a custom route key; this is what on_ws_message does.
    def echo(event: Any) -> None:
        recorder.add(event)

    app._create_registration_function("on_ws_message", name="echo", registration_kwargs={"route_key": "echo"})(echo)
    app.websocket_api.session = boto3.session.Session(**CREDENTIALS)
    return app


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def gateway(recorder: Recorder, request: pytest.FixtureRequest) -> Iterator[WebSocketGateway]:
    options = getattr(request, "param", {})
    gw = WebSocketGateway(make_app(recorder), port=0, **options)
    gw.start()
    yield gw
    gw.stop()


@pytest.fixture
def management(gateway: WebSocketGateway) -> Iterator[Any]:
    client = boto3.client("apigatewaymanagementapi", endpoint_url=gateway.management_url, **CREDENTIALS)
    yield client
    client.close()


def open_socket(gateway: WebSocketGateway, query: str = "token=ok") -> ClientConnection:
    return connect(f"{gateway.url}/?{query}", open_timeout=10, close_timeout=2)


def connection_id_of(gateway: WebSocketGateway, recorder: Recorder) -> str:
    """The id of the one connection opened by the test."""
    ids = wait_until(gateway.connection_ids)
    assert len(ids) == 1
    return str(ids[0])


def test_connection_ids_look_like_api_gateways() -> None:
    ids = {new_connection_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(CONNECTION_ID.match(i) for i in ids)


@pytest.mark.parametrize("status", [401, 403])
def test_connect_is_refused_at_the_handshake_with_the_status_connect_returned(
        gateway: WebSocketGateway, recorder: Recorder, status: int, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING), pytest.raises(InvalidStatus) as refused:
        open_socket(gateway, f"token={status}")
    assert not [r for r in caplog.records if r.name.startswith("uvicorn")]  # a refusal is no server error
    assert refused.value.response.status_code == status
    assert json.loads(bytes(refused.value.response.body)) == {"error": "refused"}
    assert len(recorder.of("$connect")) == 1
    assert gateway.connection_ids() == []
    assert recorder.of("$disconnect") == []


def test_connect_handler_error_refuses_with_500(gateway: WebSocketGateway) -> None:
    with pytest.raises(InvalidStatus) as refused:
        open_socket(gateway, "token=boom")
    assert refused.value.response.status_code == 500


def test_connect_event_is_shaped_like_api_gateways(gateway: WebSocketGateway, recorder: Recorder) -> None:
    with open_socket(gateway, "token=ok&orderId=ord_1&orderId=ord_2"):
        connection_id = connection_id_of(gateway, recorder)
    event = recorder.of("$connect")[0]
    context = event["requestContext"]
    assert context["eventType"] == "CONNECT"
    assert context["connectionId"] == connection_id
    assert CONNECTION_ID.match(connection_id)
    assert context["stage"] == "local"
    assert context["apiId"] == "local"
    assert context["domainName"] == f"127.0.0.1:{gateway.port}"
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["identity"]["userAgent"].startswith("Python/")
    assert isinstance(context["connectedAt"], int) and isinstance(context["requestTimeEpoch"], int)
    assert context["requestId"]
    assert event["queryStringParameters"] == {"token": "ok", "orderId": "ord_2"}
    assert event["multiValueQueryStringParameters"]["orderId"] == ["ord_1", "ord_2"]
    assert event["headers"]["Host"] == f"127.0.0.1:{gateway.port}"
    assert event["isBase64Encoded"] is False


def test_no_query_string_gives_null_parameters(gateway: WebSocketGateway, recorder: Recorder) -> None:
    with open_socket(gateway, ""):
        connection_id_of(gateway, recorder)
    assert recorder.of("$connect")[0]["queryStringParameters"] is None


def test_a_text_message_reaches_default_with_a_message_event(gateway: WebSocketGateway, recorder: Recorder) -> None:
    with open_socket(gateway) as ws:
        connection_id = connection_id_of(gateway, recorder)
        ws.send('{"action": "subscribe", "orderId": "ord_1"}')
        wait_until(lambda: recorder.of("$default"))
    event = recorder.of("$default")[0]
    assert event["body"] == '{"action": "subscribe", "orderId": "ord_1"}'
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["eventType"] == "MESSAGE"
    assert context["connectionId"] == connection_id
    assert context["messageId"] and context["messageDirection"] == "IN"
    assert context["connectedAt"] == recorder.of("$connect")[0]["requestContext"]["connectedAt"]


def test_route_selection_uses_the_body_action(gateway: WebSocketGateway, recorder: Recorder) -> None:
    with open_socket(gateway) as ws:
        connection_id_of(gateway, recorder)
        ws.send('{"action": "echo", "n": 1}')
        ws.send("not json")
        ws.send('{"action": "$disconnect"}')
        wait_until(lambda: len(recorder.of("$default")) == 2 and recorder.of("echo"))
    assert recorder.of("echo")[0]["body"] == '{"action": "echo", "n": 1}'
    assert {e["body"] for e in recorder.of("$default")} == {'{"action": "$disconnect"}', "not json"}


def test_a_failing_message_handler_sends_internal_server_error(gateway: WebSocketGateway, recorder: Recorder) -> None:
    with open_socket(gateway) as ws:
        connection_id = connection_id_of(gateway, recorder)
        ws.send("boom")
        reply = json.loads(ws.recv(timeout=10))
    assert reply["message"] == "Internal server error"
    assert reply["connectionId"] == connection_id


def test_chalice_websocket_api_sends_through_the_gateway(gateway: WebSocketGateway, recorder: Recorder) -> None:
    with open_socket(gateway) as ws:
        connection_id_of(gateway, recorder)
        ws.send("reply")
        assert ws.recv(timeout=10) == "reply from the app"


def test_post_to_connection_delivers_a_text_frame(gateway: WebSocketGateway, recorder: Recorder,
                                                  management: Any) -> None:
    with open_socket(gateway) as ws:
        connection_id = connection_id_of(gateway, recorder)
        management.post_to_connection(ConnectionId=connection_id, Data=b'{"type": "pong"}')
        assert ws.recv(timeout=10) == '{"type": "pong"}'


def test_posts_from_many_threads_all_arrive(gateway: WebSocketGateway, recorder: Recorder, management: Any) -> None:
    with open_socket(gateway) as ws:
        connection_id = connection_id_of(gateway, recorder)

        def post(n: int) -> None:
            management.post_to_connection(ConnectionId=connection_id, Data=str(n).encode())

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(post, range(80)))
        received = {ws.recv(timeout=10) for _ in range(80)}
    assert received == {str(n) for n in range(80)}


def test_get_connection_returns_its_info(gateway: WebSocketGateway, recorder: Recorder, management: Any) -> None:
    with open_socket(gateway):
        connection_id = connection_id_of(gateway, recorder)
        info = management.get_connection(ConnectionId=connection_id)
    assert info["Identity"] == {"SourceIp": "127.0.0.1", "UserAgent": info["Identity"]["UserAgent"]}
    assert info["Identity"]["UserAgent"].startswith("Python/")
    assert info["LastActiveAt"] >= info["ConnectedAt"]


def test_delete_connection_closes_the_socket_and_runs_disconnect(gateway: WebSocketGateway, recorder: Recorder,
                                                                 management: Any) -> None:
    with open_socket(gateway) as ws:
        connection_id = connection_id_of(gateway, recorder)
        management.delete_connection(ConnectionId=connection_id)
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        with pytest.raises(management.exceptions.GoneException):
            management.post_to_connection(ConnectionId=connection_id, Data=b"late")
    wait_until(lambda: recorder.of("$disconnect"))
    assert recorder.of("$disconnect")[0]["requestContext"]["connectionId"] == connection_id


def test_unknown_connection_is_gone(gateway: WebSocketGateway, management: Any) -> None:
    unknown = new_connection_id()
    with pytest.raises(management.exceptions.GoneException) as gone:
        management.post_to_connection(ConnectionId=unknown, Data=b"x")
    assert gone.value.response["ResponseMetadata"]["HTTPStatusCode"] == 410
    with pytest.raises(management.exceptions.GoneException):
        management.get_connection(ConnectionId=unknown)
    with pytest.raises(management.exceptions.GoneException):
        management.delete_connection(ConnectionId=unknown)


def test_closed_connection_is_gone(gateway: WebSocketGateway, recorder: Recorder, management: Any) -> None:
    with open_socket(gateway):
        connection_id = connection_id_of(gateway, recorder)
    wait_until(lambda: recorder.of("$disconnect"))
    with pytest.raises(management.exceptions.GoneException):
        management.post_to_connection(ConnectionId=connection_id, Data=b"x")


def test_management_api_answers_only_its_stage(gateway: WebSocketGateway) -> None:
    response = httpx.post(f"http://127.0.0.1:{gateway.port}/prod/@connections/{new_connection_id()}", content=b"x")
    assert response.status_code == 403
    assert response.headers["x-amzn-ErrorType"] == "ForbiddenException"


def test_disconnect_runs_when_the_client_closes(gateway: WebSocketGateway, recorder: Recorder) -> None:
    with open_socket(gateway) as ws:
        connection_id = connection_id_of(gateway, recorder)
        ws.close(1000, "bye")
    event = wait_until(lambda: recorder.of("$disconnect"))[0]
    context = event["requestContext"]
    assert context["eventType"] == "DISCONNECT"
    assert context["connectionId"] == connection_id
    assert context["disconnectStatusCode"] == 1000
    assert gateway.connection_ids() == []


def test_a_message_over_128_kb_closes_with_1009(gateway: WebSocketGateway, recorder: Recorder) -> None:
    with open_socket(gateway) as ws:
        connection_id_of(gateway, recorder)
        ws.send(["x" * 30_000] * 5)  # 150 KB in frames of 30 KB
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    assert recorder.of("$default") == []
    assert wait_until(lambda: recorder.of("$disconnect"))[0]["requestContext"]["disconnectStatusCode"] == 1009


def test_a_frame_over_32_kb_closes_with_1009(gateway: WebSocketGateway, recorder: Recorder) -> None:
    with open_socket(gateway) as ws:
        connection_id_of(gateway, recorder)
        ws.send("x" * 40_000)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def test_a_100_kb_message_in_small_frames_is_delivered(gateway: WebSocketGateway, recorder: Recorder) -> None:
    with open_socket(gateway) as ws:
        connection_id_of(gateway, recorder)
        ws.send(["y" * 25_000] * 4)
        wait_until(lambda: recorder.of("$default"))
    assert len(recorder.of("$default")[0]["body"]) == 100_000


def test_a_binary_frame_closes_with_1003(gateway: WebSocketGateway, recorder: Recorder) -> None:
    with open_socket(gateway) as ws:
        connection_id_of(gateway, recorder)
        ws.send(b"\x00\x01")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003


@pytest.mark.parametrize("gateway", [{"idle_timeout": 0.5}], indirect=True)
def test_an_idle_connection_is_closed_with_1001(gateway: WebSocketGateway, recorder: Recorder) -> None:
    with open_socket(gateway) as ws:
        connection_id_of(gateway, recorder)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert wait_until(lambda: recorder.of("$disconnect"))[0]["requestContext"]["disconnectStatusCode"] == 1001


@pytest.mark.parametrize("gateway", [{"idle_timeout": 60, "max_duration": 1.0}], indirect=True)
def test_a_busy_connection_is_still_closed_after_the_maximum_duration(gateway: WebSocketGateway,
                                                                      recorder: Recorder) -> None:
    with open_socket(gateway) as ws:
        connection_id_of(gateway, recorder)
        with pytest.raises(ConnectionClosed) as closed:
            for _ in range(200):
                ws.send('{"action": "ping"}')
                try:
                    ws.recv(timeout=0.05)
                except TimeoutError:
                    pass
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001


def test_stop_closes_every_socket_runs_disconnect_and_leaves_no_thread(recorder: Recorder) -> None:
    before = set(threading.enumerate())
    gateway = WebSocketGateway(make_app(recorder), port=0)
    gateway.start()
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(open_socket(gateway)) for _ in range(3)]
        wait_until(lambda: len(gateway.connection_ids()) == 3)
        started = threads_since(before)  # the gateway's, and the clients'
        gateway.stop()
        for ws in sockets:
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert len(recorder.of("$disconnect")) == 3  # each ran before stop() returned
    wait_until_ended(started)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{gateway.port}/local/@connections/x")


def test_stop_ends_a_client_stuck_before_its_handshake(recorder: Recorder) -> None:
    before = set(threading.enumerate())
    gateway = WebSocketGateway(make_app(recorder), port=0)
    gateway.start()
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=30) as stuck:  # never sends a request
        started = threads_since(before)
        gateway.stop()
        assert stuck.recv(1) == b""  # the gateway closed it rather than wait for it
    wait_until_ended(started)


def test_a_chunked_post_to_a_connection_is_delivered(gateway: WebSocketGateway, recorder: Recorder) -> None:
    def body() -> Iterator[bytes]:
        yield b'{"type": '
        yield b'"chunked"}'

    with open_socket(gateway) as ws:
        connection_id = connection_id_of(gateway, recorder)
        response = httpx.post(f"{gateway.management_url}/@connections/{connection_id}", content=body(), timeout=30)
        assert response.status_code == 200
        assert ws.recv(timeout=10) == '{"type": "chunked"}'


def test_a_post_over_128_kb_is_refused_413(gateway: WebSocketGateway, recorder: Recorder, management: Any) -> None:
    with open_socket(gateway):
        connection_id = connection_id_of(gateway, recorder)
        with pytest.raises(management.exceptions.PayloadTooLargeException):
            management.post_to_connection(ConnectionId=connection_id, Data=b"x" * (128 * 1024 + 1))


SOCKETS = 300  # a test's share of a 2-core machine; bench.burst measures 1,000


def test_hundreds_of_open_sockets_each_receive_their_own_push(gateway: WebSocketGateway, recorder: Recorder) -> None:
    raise_open_files_limit(4 * SOCKETS + 256)

    async def scenario() -> dict[int, str]:
        from websockets.asyncio.client import connect as connect_async

        sockets = [await connect_async(f"{gateway.url}/?n={n}", open_timeout=30, ping_interval=None)
                   for n in range(SOCKETS)]
        try:
            ids = {int(e["queryStringParameters"]["n"]): e["requestContext"]["connectionId"]
                   for e in recorder.of("$connect")}
            assert len(ids) == SOCKETS and set(gateway.connection_ids()) == set(ids.values())
            limits = httpx.Limits(max_connections=50)
            async with httpx.AsyncClient(base_url=gateway.management_url, limits=limits, timeout=60) as http:
                answers = await asyncio.gather(*(http.post(f"/@connections/{ids[n]}", content=f"push {n}".encode())
                                                 for n in range(SOCKETS)))
            assert {a.status_code for a in answers} == {200}
            received = await asyncio.gather(*(asyncio.wait_for(ws.recv(), 60) for ws in sockets))
            return dict(enumerate(received))
        finally:
            await asyncio.gather(*(ws.close() for ws in sockets))

    received = asyncio.run(scenario())
    assert received == {n: f"push {n}" for n in range(SOCKETS)}
    wait_until(lambda: len(recorder.of("$disconnect")) == SOCKETS, timeout=60)


@pytest.mark.parametrize("gateway", [{"read_timeout": 0.2, "keep_alive": 1}], indirect=True)
def test_an_open_socket_outlives_the_http_timeouts(gateway: WebSocketGateway, recorder: Recorder,
                                                   management: Any) -> None:
    with open_socket(gateway) as ws:
        connection_id = connection_id_of(gateway, recorder)
        with pytest.raises(TimeoutError):
            ws.recv(timeout=2)  # nothing arrives, and nothing closes it: only the idle timeout would
        management.post_to_connection(ConnectionId=connection_id, Data=b"still here")
        assert ws.recv(timeout=10) == "still here"
