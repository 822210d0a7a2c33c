"""``order-engine``: every failure is one line naming the setting to change, never a traceback.

The client commands run in-process (``devstack.cli.main``) against what a user can meet: a port
nothing listens on, an unknown host, a server that never answers, a REST answer that is not the
API's, a fake WebSocket gateway that closes early, Ctrl-C while watching.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

from devstack import cli

ORDER_ID = "ord_01m8a8xm1wrc6dpqp3602b5afw"
CREATED = "2026-11-25T21:00:00.000Z"
QUOTES = [{"venue": "raydium", "amountOut": "152.580666", "fee": "0.0025", "priceImpactBps": 0},
          {"venue": "meteora", "amountOut": "146.591258", "fee": "0.0025", "priceImpactBps": 0}]
SLIPPAGE_MESSAGE = ("the swap on raydium returned less than the minimum (slippage exceeded); "
                    "custom program error 6001 in instruction 0")


# -- helpers ------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _no_client_settings_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ORDER_ENGINE_REST", "ORDER_ENGINE_WS", "API_KEYS", "REST_PORT", "WS_PORT", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def one_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("order-engine: "), err
    return lines[0]


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose connections are accepted by the kernel and never answered."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


@pytest.fixture
def unknown_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Names under .invalid fail their DNS lookup, whatever the machine's resolver does."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


class FakeRest:
    """A REST server answering every request with (status, content type, body)."""

    def __init__(self) -> None:
        self.answer: tuple[int, str, bytes] = (500, "text/plain", b"")
        self.requests: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                fake.requests.append({"path": self.path, "body": json.loads(self.rfile.read(length) or b"null")})
                status, kind, body = fake.answer
                self.send_response(status)
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer_json(self, status: int, body: Any) -> None:
        self.answer = (status, "application/json", json.dumps(body).encode())

    def accept(self, ws_url: str) -> None:
        self.answer_json(202, {"orderId": ORDER_ID, "status": "pending", "clientOrderId": None,
                               "wsUrl": f"{ws_url}/?orderId={ORDER_ID}"})


@pytest.fixture
def rest() -> Iterator[FakeRest]:
    fake = FakeRest()
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()
    thread.join(timeout=10)


class FakeGateway:
    """A WebSocket server running ``script(connection)`` for each connection."""

    def __init__(self) -> None:
        self.script: Callable[[ServerConnection], None] = lambda ws: None
        self.queries: list[dict[str, list[str]]] = []
        self.refuse: int | None = None  # answer the handshake with this HTTP status instead
        self.server = serve(self._handle, "127.0.0.1", 0, process_request=self._process_request)
        self.url = f"ws://127.0.0.1:{self.server.socket.getsockname()[1]}"

    def _process_request(self, connection: ServerConnection, request: Any) -> Any:
        return connection.respond(self.refuse, "refused\n") if self.refuse else None

    def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        self.queries.append(parse_qs(urlsplit(ws.request.path).query))
        try:
            self.script(ws)
        except ConnectionClosed:
            pass


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    fake = FakeGateway()
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.server.shutdown()
    thread.join(timeout=10)


def event(seq: int, status: str, data: dict[str, Any] | None = None, second: int = 0) -> dict[str, Any]:
    return {"seq": seq, "status": status, "at": f"2026-11-25T21:00:0{second}.000Z", "data": data or {}}


def snapshot(*history: dict[str, Any]) -> str:
    last = history[-1]
    return json.dumps({"type": "order.snapshot", "orderId": ORDER_ID, "status": last["status"], "seq": last["seq"],
                       "order": {"orderId": ORDER_ID, "status": last["status"], "createdAt": CREATED,
                                 "updatedAt": last["at"], "history": list(history)}})


def status(e: dict[str, Any]) -> str:
    return json.dumps({"type": "order.status", "orderId": ORDER_ID, **e})


def wait_for_close(ws: ServerConnection) -> None:
    while True:
        ws.recv(timeout=30)


@pytest.fixture
def ctrl_c_raises() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt in the main thread, as in a terminal, even when the tests
    were started where it is ignored (a shell's background job inherits SIGINT ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def interrupt(main_thread: int) -> Callable[[ServerConnection], None]:
    """Ctrl-C in the thread running the command, once it is watching."""
    def script(ws: ServerConnection) -> None:
        ws.send(snapshot(event(1, "pending")))
        signal.pthread_kill(main_thread, signal.SIGINT)
        wait_for_close(ws)

    return script


# -- the stack is unreachable -------------------------------------------------------------------
def test_submit_against_a_stopped_stack_says_so_and_names_the_settings(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "submit", "--rest", f"http://127.0.0.1:{free_port()}")
    line = one_line(err)
    assert code == 1 and out == ""
    assert "connection refused" in line and "make run" in line
    assert all(name in line for name in ("--rest", "ORDER_ENGINE_REST", "REST_PORT"))


def test_an_unknown_host_is_a_dns_failure(capsys: pytest.CaptureFixture[str], unknown_hosts: None) -> None:
    code, _, err = run_cli(capsys, "submit", "--rest", "http://order-engine.invalid:8000")
    line = one_line(err)
    assert code == 1 and "the host order-engine.invalid is unknown (DNS lookup failed)" in line and "--rest" in line
    code, _, err = run_cli(capsys, "demo", "--ws", "ws://order-engine.invalid:8001")
    line = one_line(err)
    assert code == 1 and "DNS lookup failed" in line and "--ws" in line and "WS_PORT" in line


def test_a_rest_api_that_never_answers_times_out(capsys: pytest.CaptureFixture[str], silent_port: int,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "REST_TIMEOUT", 0.5)
    code, _, err = run_cli(capsys, "submit", "--rest", f"http://127.0.0.1:{silent_port}")
    line = one_line(err)
    assert code == 1 and "did not answer within 0.5 s" in line and "ORDER_ENGINE_REST" in line


def test_a_gateway_that_never_completes_the_handshake_times_out(
    capsys: pytest.CaptureFixture[str], silent_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "OPEN_TIMEOUT", 0.5)
    code, _, err = run_cli(capsys, "demo", "--ws", f"ws://127.0.0.1:{silent_port}")
    line = one_line(err)
    assert code == 1 and "did not answer within 0.5 s" in line and "ORDER_ENGINE_WS" in line


def test_urls_of_the_wrong_kind_are_named(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "submit", "--rest", "127.0.0.1:8000")
    assert code == 1 and "127.0.0.1:8000 is not an http:// or https:// URL" in one_line(err)
    code, _, err = run_cli(capsys, "demo", "--ws", "http://127.0.0.1:8001")
    assert code == 1 and "http://127.0.0.1:8001 is not a ws:// or wss:// URL" in one_line(err)


# -- what the REST API answers ----------------------------------------------------------------------
def test_a_refusal_prints_the_apis_message_and_field(capsys: pytest.CaptureFixture[str], rest: FakeRest) -> None:
    rest.answer_json(400, {"error": {"code": "validation_error", "message": "SOL has 9 decimals; 1.0000000001 has more",
                                     "field": "amount"}})
    code, out, err = run_cli(capsys, "submit", "--rest", rest.url, "--amount", "1.0000000001")
    line = one_line(err)
    assert code == 1 and out == ""
    assert "400 validation_error: SOL has 9 decimals; 1.0000000001 has more (field amount)" in line


def test_a_refused_key_says_which_setting_holds_keys(capsys: pytest.CaptureFixture[str], rest: FakeRest) -> None:
    rest.answer_json(401, {"error": {"code": "unauthorized", "message": "missing or invalid API key",
                                     "field": "x-api-key"}})
    code, _, err = run_cli(capsys, "submit", "--rest", rest.url, "--api-key", "wrong")
    line = one_line(err)
    assert code == 1 and "missing or invalid API key" in line and "--api-key" in line and "API_KEYS" in line


@pytest.mark.parametrize(("answer", "expected"), [
    ((200, "text/html", b"<html>a dashboard</html>"), "answered 200 with text/html instead of JSON"),
    ((502, "text/plain", b"Bad Gateway"), "answered 502 Bad Gateway without the API's error shape"),
    ((404, "application/json", b'{"message": "Not Found"}'), "answered 404 Not Found without the API's error shape"),
    ((202, "application/json", b'{"status": "pending"}'), "accepted the order without an orderId"),
])
def test_an_answer_that_is_not_the_apis_points_at_the_rest_setting(
    capsys: pytest.CaptureFixture[str], rest: FakeRest, answer: tuple[int, str, bytes], expected: str
) -> None:
    rest.answer = answer
    code, _, err = run_cli(capsys, "submit", "--rest", rest.url)
    line = one_line(err)
    assert code == 1 and expected in line and "ORDER_ENGINE_REST" in line


# -- watching ----------------------------------------------------------------------------------
def test_a_wrong_ws_url_from_the_api_names_ws_public_url(capsys: pytest.CaptureFixture[str], rest: FakeRest) -> None:
    rest.accept(f"ws://127.0.0.1:{free_port()}")
    code, out, err = run_cli(capsys, "submit", "--rest", rest.url, "--watch")
    line = one_line(err)
    assert code == 1 and f"{ORDER_ID} accepted" in out
    assert "connection refused" in line and "WS_PUBLIC_URL" in line and "--ws" in line
    assert f"{ORDER_ID} goes on in the engine" in line  # the order was accepted all the same


def test_a_wrong_ws_flag_names_the_ws_settings(capsys: pytest.CaptureFixture[str], rest: FakeRest) -> None:
    rest.accept("ws://127.0.0.1:1")
    code, _, err = run_cli(capsys, "submit", "--rest", rest.url, "--watch", "--ws", f"ws://127.0.0.1:{free_port()}")
    line = one_line(err)
    assert code == 1 and all(name in line for name in ("--ws", "ORDER_ENGINE_WS", "WS_PORT"))
    assert "WS_PUBLIC_URL" not in line


@pytest.mark.parametrize(("refusal", "expected", "setting"), [
    (401, "refused the API key (401)", "--api-key"),
    (200, "answered HTTP 200 instead of a WebSocket handshake", "ORDER_ENGINE_WS"),  # e.g. the REST port
])
def test_a_gateway_refusing_the_handshake_names_the_setting(
    capsys: pytest.CaptureFixture[str], rest: FakeRest, gateway: FakeGateway, refusal: int, expected: str,
    setting: str,
) -> None:
    gateway.refuse = refusal
    rest.accept(gateway.url)
    code, _, err = run_cli(capsys, "submit", "--rest", rest.url, "--watch")
    line = one_line(err)
    assert code == 1 and expected in line and setting in line


def test_watch_follows_the_ws_url_the_api_answered_with_the_key(
    capsys: pytest.CaptureFixture[str], rest: FakeRest, gateway: FakeGateway
) -> None:
    def lifecycle(ws: ServerConnection) -> None:
        ws.send(snapshot(event(1, "pending")))
        ws.send(status(event(2, "routing", {"quotes": QUOTES}, 1)))
        ws.send(status(event(2, "routing", {"quotes": QUOTES}, 1)))  # a duplicate after a fault: dropped
        ws.send(status(event(3, "confirmed", {"txHash": "5v6DY1RexeG2oRhWeocn", "amountOut": "152.563618",
                                              "executedPrice": "152.563618", "venue": "raydium"}, 2)))
        wait_for_close(ws)

    gateway.script = lifecycle
    rest.accept(gateway.url)
    code, out, err = run_cli(capsys, "submit", "--rest", rest.url, "--watch", "--api-key", "k1")
    assert code == 0 and err == ""
    assert gateway.queries == [{"apiKey": ["k1"], "orderId": [ORDER_ID]}]
    assert rest.requests[0]["path"] == "/api/orders/execute"
    assert out.count("routing") == 1 and "raydium 152.580666 (impact 0 bps), meteora 146.591258" in out
    assert "152.563618 at 152.563618 on raydium" in out


def test_a_late_watch_still_shows_the_routing_quotes_from_the_history(
    capsys: pytest.CaptureFixture[str], rest: FakeRest, gateway: FakeGateway
) -> None:
    history = [event(1, "pending"), event(2, "routing", {"quotes": QUOTES}, 1),
               event(3, "building", {"venue": "raydium", "minAmountOut": "151.8", "wrapSol": True}, 2),
               event(4, "submitted", {"signature": "5v6DY1RexeG2oRhWeocnXYZ"}, 3)]

    def late(ws: ServerConnection) -> None:
        ws.send(snapshot(*history))  # subscribed once the order was already submitted
        ws.send(status(event(4, "submitted", {"signature": "5v6DY1RexeG2oRhWeocnXYZ"}, 3)))  # seen in the history
        ws.send(status(event(5, "failed", {"error": {"code": "slippage_exceeded", "message": SLIPPAGE_MESSAGE,
                                                     "attempt": 1, "retryable": False}}, 4)))
        wait_for_close(ws)

    gateway.script = late
    rest.accept(gateway.url)
    code, out, err = run_cli(capsys, "submit", "--rest", rest.url, "--watch")
    assert code == 1 and err == ""
    lines = [line.split()[1:3] for line in out.splitlines()[1:]]
    assert lines == [["pending", "seq"], ["routing", "seq"], ["building", "seq"], ["submitted", "seq"],
                     ["failed", "seq"]]
    routing = next(line for line in out.splitlines() if "routing" in line)
    assert routing.split()[0] == "1.00s"  # its time within the order, from the history
    assert "raydium 152.580666 (impact 0 bps), meteora 146.591258 (impact 0 bps)" in routing


def test_output_without_a_terminal_does_not_wrap(
    capsys: pytest.CaptureFixture[str], rest: FakeRest, gateway: FakeGateway
) -> None:
    def failing(ws: ServerConnection) -> None:
        ws.send(snapshot(event(1, "pending")))
        ws.send(status(event(2, "failed", {"error": {"code": "slippage_exceeded", "message": SLIPPAGE_MESSAGE}}, 1)))
        wait_for_close(ws)

    gateway.script = failing
    rest.accept(gateway.url)
    code, out, _ = run_cli(capsys, "submit", "--rest", rest.url, "--watch")
    [failed] = [line for line in out.splitlines() if "failed" in line]
    assert code == 1 and len(failed) > 120
    assert failed.endswith(f"slippage_exceeded: {SLIPPAGE_MESSAGE}")


def test_the_socket_closing_mid_watch_is_one_line(
    capsys: pytest.CaptureFixture[str], rest: FakeRest, gateway: FakeGateway
) -> None:
    def close_early(ws: ServerConnection) -> None:
        ws.send(snapshot(event(1, "pending")))
        ws.send(status(event(2, "routing", {"quotes": QUOTES}, 1)))
        ws.close(1001, "going away")

    gateway.script = close_early
    rest.accept(gateway.url)
    code, out, err = run_cli(capsys, "submit", "--rest", rest.url, "--watch")
    line = one_line(err)
    assert code == 1 and "routing" in out
    assert f"the WebSocket closed before {ORDER_ID} finished (last status routing)" in line
    assert "code 1001 going away" in line and f"/api/orders/{ORDER_ID}" in line


def test_no_news_within_the_timeout_is_one_line(
    capsys: pytest.CaptureFixture[str], rest: FakeRest, gateway: FakeGateway
) -> None:
    def quiet(ws: ServerConnection) -> None:
        ws.send(snapshot(event(1, "pending")))
        wait_for_close(ws)

    gateway.script = quiet
    rest.accept(gateway.url)
    code, _, err = run_cli(capsys, "submit", "--rest", rest.url, "--watch", "--timeout", "0.3")
    line = one_line(err)
    assert code == 1 and "no news of" in line and "last status pending" in line and "--timeout" in line


def test_ctrl_c_while_watching_exits_130_without_a_traceback(
    capsys: pytest.CaptureFixture[str], rest: FakeRest, gateway: FakeGateway, ctrl_c_raises: None
) -> None:
    gateway.script = interrupt(threading.get_ident())
    rest.accept(gateway.url)
    code, _, err = run_cli(capsys, "submit", "--rest", rest.url, "--watch")
    line = one_line(err)
    assert code == 130 and line.startswith("order-engine: interrupted;") and f"{ORDER_ID} goes on" in line


# -- demo ----------------------------------------------------------------------------------------
def accept_and_confirm(ws: ServerConnection) -> None:
    for n in range(1, 1_000):
        frame = json.loads(ws.recv(timeout=30))
        order_id = f"ord_demo{n:022d}"
        ws.send(json.dumps({"type": "order.accepted", "orderId": order_id,
                            "clientOrderId": frame["order"]["clientOrderId"]}))
        ws.send(json.dumps({"type": "order.status", "orderId": order_id, "status": "confirmed", "seq": 5,
                            "at": CREATED, "data": {"venue": "raydium", "executedPrice": "152.64626"}}))


def test_demo_without_a_terminal_prints_the_final_table_then_the_count(
    capsys: pytest.CaptureFixture[str], gateway: FakeGateway
) -> None:
    gateway.script = accept_and_confirm
    code, out, err = run_cli(capsys, "demo", "--ws", gateway.url, "--orders", "3")
    assert code == 0 and err == ""
    assert out.count("confirmed") == 4 and out.count("152.64626") == 3
    assert out.splitlines()[-1] == "3/3 confirmed"


def test_demo_socket_closing_is_one_line_after_the_table(
    capsys: pytest.CaptureFixture[str], gateway: FakeGateway
) -> None:
    def close_at_once(ws: ServerConnection) -> None:
        ws.recv(timeout=30)
        ws.close(1011, "internal error")

    gateway.script = close_at_once
    code, out, err = run_cli(capsys, "demo", "--ws", gateway.url, "--orders", "2")
    line = one_line(err)
    assert code == 1 and out.splitlines()[-1] == "0/2 confirmed"
    assert "the WebSocket closed with 2 of 2 orders unfinished" in line and "code 1011 internal error" in line


def test_ctrl_c_during_the_demo_exits_130_without_a_traceback(
    capsys: pytest.CaptureFixture[str], gateway: FakeGateway, ctrl_c_raises: None
) -> None:
    main_thread = threading.get_ident()

    def interrupt_after_the_orders(ws: ServerConnection) -> None:
        ws.recv(timeout=30)
        signal.pthread_kill(main_thread, signal.SIGINT)
        wait_for_close(ws)

    gateway.script = interrupt_after_the_orders
    code, _, err = run_cli(capsys, "demo", "--ws", gateway.url, "--orders", "1")
    assert code == 130 and one_line(err).startswith("order-engine: interrupted;")


# -- run ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("flag", "setting"), [("--rest-port", "REST_PORT"), ("--ws-port", "WS_PORT")])
def test_a_busy_port_names_its_variable(capsys: pytest.CaptureFixture[str], flag: str, setting: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        ports = {"--rest-port": "0", "--ws-port": "0", flag: str(port)}
        code, _, err = run_cli(capsys, "run", *(x for item in ports.items() for x in item))
    line = one_line(err)
    assert code == 1 and f"port {port}" in line and "Address already in use" in line
    assert f"set {setting} (or {flag}) to another port, e.g. {setting}={port + 100} make run" in line


def test_the_same_port_for_both_is_refused_before_starting(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "run", "--rest-port", "8123", "--ws-port", "8123")
    assert code == 2 and out == "" and "REST_PORT and WS_PORT are both 8123" in one_line(err)


def test_a_port_variable_that_is_not_a_port_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WS_PORT", "80o1")
    with pytest.raises(SystemExit) as exited:
        cli.main(["run"])
    _, err = capsys.readouterr()
    assert exited.value.code == 2 and "80o1 is not a port" in err and "WS_PORT" in err and "Traceback" not in err


# -- help ------------------------------------------------------------------------------------------
def test_every_flag_has_help_and_every_command_a_description_with_an_example() -> None:
    parser = cli.build_parser()
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(commands.choices) >= {"run", "submit", "demo"}
    for name, sub in commands.choices.items():
        assert sub.description and "example:" in sub.description and f"order-engine {name}" in sub.description
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings} has no help"


def test_a_malformed_api_keys_falls_back_to_the_local_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEYS", " , ")
    assert cli.build_parser().parse_args(["submit"]).api_key == "local-dev-key"
    monkeypatch.setenv("API_KEYS", "k1:alice,k2:bob")
    assert cli.build_parser().parse_args(["demo"]).api_key == "k1"


# -- sniper orders and launches -----------------------------------------------------------------------
MINT = "7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU"


def test_submit_type_sniper_sends_the_mint_the_cap_the_checks_and_the_delay(
        capsys: pytest.CaptureFixture[str], rest: FakeRest) -> None:
    rest.accept("ws://127.0.0.1:1")
    code, out, _ = run_cli(capsys, "submit", "--rest", rest.url, "--type", "sniper", "--to", MINT, "--amount", "0.5",
                           "--max-price", "0.0001", "--delay-slots", "2", "--min-liquidity", "20",
                           "--no-lp-burned", "--slippage-bps", "500", "--expires-at", "2030-01-01T00:00:00Z")
    assert code == 0 and ORDER_ID in out
    [request] = rest.requests
    assert request["body"] == {"type": "sniper", "tokenIn": "SOL", "tokenOut": MINT, "amount": "0.5",
                               "slippageBps": 500, "maxPrice": "0.0001", "delaySlots": 2,
                               "expiresAt": "2030-01-01T00:00:00Z",
                               "checks": {"lpBurned": False, "minLiquidity": "20"}}


@pytest.mark.parametrize(("argv", "words"), [
    (["--type", "sniper", "--to", MINT], "--type sniper needs --max-price"),
    (["--type", "sniper", "--max-price", "1"], "--type sniper needs --to MINT"),
    (["--max-price", "1"], "--max-price goes with --type sniper"),
    (["--type", "limit", "--limit-price", "1", "--no-lp-burned"], "--lp-burned goes with --type sniper"),
    (["--type", "sniper", "--to", MINT, "--max-price", "1", "--limit-price", "2"], "a sniper takes --max-price"),
])
def test_sniper_flags_out_of_place_are_a_usage_error(capsys: pytest.CaptureFixture[str], argv: list[str],
                                                     words: str) -> None:
    code, _, err = run_cli(capsys, "submit", "--rest", "http://127.0.0.1:1", *argv)
    assert code == 2 and words in one_line(err)


def test_launch_posts_the_terms_and_prints_the_mint_and_how_to_snipe_it(
        capsys: pytest.CaptureFixture[str], rest: FakeRest) -> None:
    rest.answer_json(201, {"mint": MINT, "pool": "Pool1111", "venue": "meteora", "openSlot": 280000125,
                           "symbol": "RUG", "decimals": 6})
    code, out, _ = run_cli(capsys, "launch", "--rest", rest.url, "--symbol", "RUG", "--venue", "meteora",
                           "--no-freeze-renounced", "--open-in-slots", "50", "--price", "0.00003")
    assert code == 0
    [request] = rest.requests
    assert request["path"] == "/api/sim/launches"
    assert request["body"] == {"symbol": "RUG", "decimals": 6, "venue": "meteora", "liquidity": "50",
                               "openInSlots": 50, "price": "0.00003", "mintRenounced": True,
                               "freezeRenounced": False, "lpBurned": True}
    first, second = out.strip().splitlines()
    assert MINT in first and "opens at slot 280000125 (in 20 s)" in first
    assert f"submit --type sniper --to {MINT}" in second and "--max-price 0.00006" in second  # twice the price


def test_a_refused_launch_is_one_line_naming_the_field(capsys: pytest.CaptureFixture[str], rest: FakeRest) -> None:
    rest.answer_json(404, {"error": {"code": "not_found", "message": "no route matches this path"}})
    code, out, err = run_cli(capsys, "launch", "--rest", rest.url)
    assert code == 1 and out == "" and "404 not_found: no route matches this path" in one_line(err)


def test_a_sniper_watch_says_what_it_watches_and_which_pool_opened() -> None:
    waiting = cli._describe("waiting", {"watchMint": MINT, "maxPrice": "0.0001", "delaySlots": 2,
                                        "expiresAt": "2030-01-01T00:00:00.000Z"})
    assert waiting == f"watching {MINT}, 2 slots after it opens, max price 0.0001, expires 2030-01-01T00:00:00.000Z"
    routing = cli._describe("routing", {"trigger": {"kind": "pool_created", "pool": "8LrzEPKzXKGzXTiJs9iQ",
                                                    "venue": "raydium", "openSlot": 10, "slot": 12}})
    assert routing == "pool 8LrzEPKzXKGz… opened on raydium at slot 10; triggered at slot 12"
