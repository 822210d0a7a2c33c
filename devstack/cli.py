"""order-engine: run the local stack, submit an order and watch it, or fire a demo burst.

    order-engine run                                   # the whole stack on 127.0.0.1
    order-engine submit --from SOL --to USDC --amount 1.5 --watch
    order-engine submit --type limit --limit-price 160 --amount 1.5 --watch
    order-engine launch --symbol PEPE2 --liquidity 50 --open-in-slots 25
    order-engine submit --type sniper --to MINT --max-price 0.0001 --amount 0.5 --watch
    order-engine cancel ord_…
    order-engine demo --orders 20

A failure is one line on stderr saying what went wrong and which setting to change, never a
traceback. Exit status: 0 done (a watched order confirmed), 1 failed, 2 bad command line,
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

if TYPE_CHECKING:
    from rich.console import Console
    from websockets.sync.client import ClientConnection

DEFAULT_REST = "http://127.0.0.1:8000"
DEFAULT_WS = "ws://127.0.0.1:8001"
DEFAULT_KEY = "local-dev-key"
TERMINAL = {"confirmed", "failed", "expired", "cancelled"}
REST_TIMEOUT = 10.0  # seconds for one REST answer
OPEN_TIMEOUT = 10.0  # seconds for a WebSocket handshake
# Width of output that is not a terminal (a pipe, a file, CI logs): rich's default there is 80
# columns, which wraps long lines and squeezes tables. COLUMNS, when set, still wins.
NON_TTY_WIDTH = 400

REST_HINT = "point --rest or ORDER_ENGINE_REST at the stack's REST API (REST_PORT of `make run`, default 8000)"
WS_HINT = "point --ws or ORDER_ENGINE_WS at the stack's WebSocket gateway (WS_PORT of `make run`, default 8001)"
WS_URL_HINT = ("that is the wsUrl the REST API answered, made from the stack's WS_PUBLIC_URL: "
               "fix WS_PUBLIC_URL, or point --ws or ORDER_ENGINE_WS at the WebSocket gateway (WS_PORT)")
KEY_HINT = "set --api-key to one of the stack's keys (API_KEYS; local-dev-key by default)"


class CliError(Exception):
    """What the user sees: one line, and the exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _default_key() -> str:
    """The first key of API_KEYS, as the local stack reads it; local-dev-key without one."""
    from chalicelib.config import parse_api_keys

    return next(iter(parse_api_keys(os.environ.get("API_KEYS") or "")), DEFAULT_KEY)


def _console() -> Console:
    from rich.console import Console

    console = Console()
    if console.is_terminal or os.environ.get("COLUMNS"):
        return console
    return Console(width=NON_TTY_WIDTH, soft_wrap=True)


# -- network failures, in words ------------------------------------------------------------------
def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).hostname or url
    except ValueError:
        return url


def _unreachable(where: str, url: str, exc: BaseException, hint: str, timeout: float) -> CliError:
    """``where`` (e.g. "the REST API at http://…") could not be reached: why, and what to change."""
    import httpx

    for cause in _causes(exc):
        if isinstance(cause, socket.gaierror):
            return CliError(f"cannot reach {where}: the host {_host(url)} is unknown (DNS lookup failed); {hint}")
        if isinstance(cause, ConnectionRefusedError):
            return CliError(f"cannot reach {where}: connection refused, nothing listens there; "
                            f"start the stack with `make run`, or {hint}")
        if isinstance(cause, TimeoutError | httpx.TimeoutException):
            return CliError(f"{where} did not answer within {timeout:g} s; if the stack is not just busy, {hint}")
    reason = next((f"{c.strerror}" for c in _causes(exc) if isinstance(c, OSError) and c.strerror), None)
    return CliError(f"cannot reach {where}: {reason or exc or type(exc).__name__}; {hint}")


# -- REST ------------------------------------------------------------------------------------------
def _rest_call(rest: str, key: str, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """One call of the public API; any failure becomes a ``CliError`` naming what to change."""
    import httpx

    where = f"the REST API at {rest}"
    try:
        resp = httpx.request(method, f"{rest.rstrip('/')}{path}", json=body, headers={"x-api-key": key},
                             timeout=REST_TIMEOUT)
    except (httpx.UnsupportedProtocol, httpx.InvalidURL):
        raise CliError(f"{rest} is not an http:// or https:// URL; {REST_HINT}") from None
    except httpx.HTTPError as exc:
        raise _unreachable(where, rest, exc, REST_HINT, REST_TIMEOUT) from None
    try:
        data = resp.json()
    except ValueError:
        data = None
    error = data.get("error") if isinstance(data, dict) else None
    if resp.is_error:
        if isinstance(error, dict) and error.get("message"):
            field_ = f" (field {error['field']})" if error.get("field") else ""
            hint = f"; {KEY_HINT}" if resp.status_code == 401 else ""
            raise CliError(f"{where} refused the request: {resp.status_code} {error.get('code')}: "
                           f"{error['message']}{field_}{hint}")
        raise CliError(f"{where} answered {resp.status_code} {resp.reason_phrase} without the API's error shape; "
                       f"is it the order engine? {REST_HINT}")
    if not isinstance(data, dict):
        kind = resp.headers.get("content-type", "no content type").split(";")[0]
        raise CliError(f"{where} answered {resp.status_code} with {kind} instead of JSON; is it the order engine? "
                       f"{REST_HINT}")
    return data


# -- WebSocket -------------------------------------------------------------------------------------
def _ws_url(ws: str, key: str, **params: str) -> str:
    return f"{ws.rstrip('/')}/?{urlencode({'apiKey': key, **params})}"


def _connect(base: str, key: str, hint: str, **params: str) -> ClientConnection:
    """An open WebSocket to ``base`` (never shown with its key), or a ``CliError`` naming what to change."""
    from websockets.exceptions import InvalidStatus, InvalidURI, WebSocketException
    from websockets.sync.client import connect

    where = f"the WebSocket gateway at {base}"
    try:
        return connect(_ws_url(base, key, **params), open_timeout=OPEN_TIMEOUT)
    except InvalidURI:
        raise CliError(f"{base} is not a ws:// or wss:// URL; {hint}") from None
    except InvalidStatus as exc:
        code = exc.response.status_code
        if code in (401, 403):
            raise CliError(f"{where} refused the API key ({code}); {KEY_HINT}") from None
        raise CliError(f"{where} answered HTTP {code} instead of a WebSocket handshake; "
                       f"is it the order engine's gateway? {hint}") from None
    except (OSError, WebSocketException) as exc:
        if isinstance(exc, WebSocketException) and not any(isinstance(c, OSError) for c in _causes(exc)):
            raise CliError(f"{where} did not complete a WebSocket handshake ({exc}); {hint}") from None
        raise _unreachable(where, base, exc, hint, OPEN_TIMEOUT) from None


def _closed(exc: BaseException) -> str:
    """How a socket ended, from a ``ConnectionClosed``: its close code and reason, or a drop."""
    frame = getattr(exc, "rcvd", None)
    if frame is None:
        return "the connection dropped"
    reason = f" {frame.reason}" if frame.reason else ""
    return f"the gateway closed it (code {frame.code}{reason})"


def _receive(ws: ClientConnection, timeout: float) -> dict[str, Any] | None:
    """The next JSON object, ``None`` for anything else; ``TimeoutError``/``ConnectionClosed`` pass."""
    raw = ws.recv(timeout=timeout)
    try:
        msg = json.loads(raw)
    except ValueError:
        return None
    return msg if isinstance(msg, dict) else None


# -- submit --------------------------------------------------------------------------------------
def _describe(status: str, data: dict[str, Any]) -> str:
    if status == "routing":
        trigger = data.get("trigger") if isinstance(data.get("trigger"), dict) else {}
        if trigger.get("kind") == "pool_created":
            return (f"pool {str(trigger.get('pool'))[:12]}… opened on {trigger.get('venue')} at slot "
                    f"{trigger.get('openSlot')}; triggered at slot {trigger.get('slot')}")
        if "quotes" not in data:
            return ""
        return ", ".join(f"{q.get('venue')} {q.get('amountOut')} (impact {q.get('priceImpactBps')} bps)"
                         for q in data.get("quotes") or []) or "no quotes"
    if status == "building":
        return f"{data.get('venue')} min out {data.get('minAmountOut')} wrapSol={data.get('wrapSol')}"
    if status == "submitted":
        return f"signature {str(data.get('signature', ''))[:20]}…"
    if status == "confirmed":
        tx = str(data.get("txHash", ""))[:16]
        return f"{data.get('amountOut')} at {data.get('executedPrice')} on {data.get('venue')} tx {tx}…"
    if status == "failed":
        err = data.get("error") or {}
        return f"{err.get('code')}: {err.get('message')}"
    if status == "pending" and data.get("attempt"):
        return f"retry, attempt {data['attempt']}"
    if status == "waiting" and data.get("watchMint"):
        delay = f", {data['delaySlots']} slots after it opens" if data.get("delaySlots") else ""
        return f"watching {data['watchMint']}{delay}, max price {data.get('maxPrice')}, expires {data.get('expiresAt')}"
    if status == "waiting":
        slipped = "price slipped away; " if data.get("slipped") else ""
        return (f"{slipped}limit {data.get('limitPrice')}, best now {data.get('bestPrice')}, "
                f"expires {data.get('expiresAt')}")
    if status == "expired":
        return f"expired at {data.get('expiresAt')}"
    if status == "cancelled":
        return f"cancelled by {data.get('by')}"
    return ""


def _instant(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text))
    except ValueError:
        return None


class _Watch:
    """Prints an order's statuses once each, in seq order: first what the snapshot's history
    holds (a late subscriber still sees the routing quotes), then the live ones. A status seen
    again (the contract allows it after a fault) is dropped by its seq."""

    def __init__(self, console: Console, order_id: str, started: float) -> None:
        self.console = console
        self.order_id = order_id
        self.started = started
        self.created: datetime | None = None
        self.last_seq = 0
        self.status = "unknown"

    def _elapsed(self, at: Any) -> str:
        when = _instant(at)
        if self.created is not None and when is not None:
            return f"{(when - self.created).total_seconds():6.2f}s"
        return f"{time.monotonic() - self.started:6.2f}s"

    def show(self, seq: Any, status: Any, at: Any, data: Any) -> None:
        if not isinstance(seq, int) or seq <= self.last_seq:
            return
        self.last_seq, self.status = seq, str(status)
        colour = {"confirmed": "green", "failed": "red"}.get(self.status, "cyan")
        detail = _describe(self.status, data if isinstance(data, dict) else {})
        self.console.print(f"{self._elapsed(at)}  [{colour}]{self.status:<9}[/] seq {seq}  {detail}".rstrip(),
                           highlight=False)

    def take(self, msg: dict[str, Any]) -> None:
        if msg.get("orderId") not in (None, self.order_id):
            return
        if msg.get("type") == "order.snapshot":
            order = msg.get("order") if isinstance(msg.get("order"), dict) else {}
            self.created = _instant(order.get("createdAt"))
            history = [e for e in order.get("history") or [] if isinstance(e, dict)]
            for event in sorted(history, key=lambda e: e.get("seq") if isinstance(e.get("seq"), int) else 0):
                self.show(event.get("seq"), event.get("status"), event.get("at"), event.get("data"))
            self.show(msg.get("seq"), msg.get("status"), order.get("updatedAt"), {})  # history cut short
        elif msg.get("type") == "order.status":
            self.show(msg.get("seq"), msg.get("status"), msg.get("at"), msg.get("data"))
        elif msg.get("type") == "error":
            raise CliError(f"the WebSocket gateway answered {msg.get('code')}: {msg.get('message')}")

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


def cmd_submit(args: argparse.Namespace) -> int:
    from websockets.exceptions import ConnectionClosed

    console = _console()
    body: dict[str, Any] = {"type": args.type, "tokenIn": args.token_in, "tokenOut": args.token_out,
                            "amount": args.amount, "slippageBps": args.slippage_bps, **_limit_fields(args),
                            **_sniper_fields(args)}
    if args.client_order_id:
        body["clientOrderId"] = args.client_order_id
    started = time.monotonic()
    accepted = _rest_call(args.rest, args.api_key, "POST", "/api/orders/execute", body)
    order_id = accepted.get("orderId")
    if not isinstance(order_id, str):
        raise CliError(f"the REST API at {args.rest} accepted the order without an orderId; is it the order "
                       f"engine? {REST_HINT}")
    console.print(f"[bold]{order_id}[/] accepted ({accepted.get('status')})", highlight=False)
    if not args.watch:
        console.print_json(json.dumps(accepted))
        return 0
    if args.ws:
        base, hint = args.ws, WS_HINT
    elif isinstance(accepted.get("wsUrl"), str):
        base, hint = accepted["wsUrl"].split("?", 1)[0], WS_URL_HINT
    else:
        base, hint = DEFAULT_WS, WS_HINT
    watch = _Watch(console, order_id, started)
    later = f"{order_id} goes on in the engine: GET {args.rest.rstrip('/')}/api/orders/{order_id}"
    try:
        try:
            ws = _connect(base, args.api_key, hint, orderId=order_id)
        except CliError as exc:
            raise CliError(f"{exc.message}; {later}") from None
        with ws:
            while not watch.finished:
                try:
                    msg = _receive(ws, args.timeout)
                except TimeoutError:
                    raise CliError(f"no news of {order_id} for {args.timeout:g} s (last status {watch.status}); "
                                   f"{later}; --timeout waits longer") from None
                except ConnectionClosed as exc:
                    raise CliError(f"the WebSocket closed before {order_id} finished (last status "
                                   f"{watch.status}): {_closed(exc)}; {later}") from None
                if msg is not None:
                    watch.take(msg)
    except KeyboardInterrupt:
        raise CliError(f"interrupted; {later}", status=130) from None
    return 0 if watch.status == "confirmed" else 1


# -- limit orders and cancel ----------------------------------------------------------------------
def _limit_fields(args: argparse.Namespace) -> dict[str, Any]:
    """A limit order's fields from ``submit --type limit --limit-price P [--expires-at T]``."""
    if args.type == "sniper":
        if args.limit_price:
            raise CliError("--limit-price goes with --type limit; a sniper takes --max-price", status=2)
        return {"expiresAt": args.expires_at} if args.expires_at else {}
    if args.type != "limit":
        if args.limit_price or args.expires_at:
            raise CliError("--limit-price and --expires-at go with --type limit (--expires-at with sniper too)",
                           status=2)
        return {}
    if not args.limit_price:
        raise CliError("--type limit needs --limit-price (least tokenOut per tokenIn, e.g. 160)", status=2)
    fields = {"limitPrice": args.limit_price}
    if args.expires_at:
        fields["expiresAt"] = args.expires_at
    return fields


_SNIPER_FLAGS = ("max_price", "delay_slots", "min_liquidity", "mint_renounced", "freeze_renounced", "lp_burned")


def _sniper_fields(args: argparse.Namespace) -> dict[str, Any]:
    """A sniper order's fields from ``submit --type sniper --to MINT --max-price P [...]``."""
    given = [name for name in _SNIPER_FLAGS if getattr(args, name) is not None]
    if args.type != "sniper":
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise CliError(f"{flag} goes with --type sniper", status=2)
        return {}
    if not args.max_price:
        raise CliError("--type sniper needs --max-price (most SOL paid per token, e.g. 0.0001)", status=2)
    if args.token_out == "USDC":  # --to left at its default: no mint was given
        raise CliError("--type sniper needs --to MINT: the mint of a token whose pool has not opened "
                       "(`order-engine launch` makes one)", status=2)
    checks: dict[str, Any] = {name: getattr(args, attr) for name, attr in (
        ("mintRenounced", "mint_renounced"), ("freezeRenounced", "freeze_renounced"), ("lpBurned", "lp_burned"))
        if getattr(args, attr) is not None}
    if args.min_liquidity is not None:
        checks["minLiquidity"] = args.min_liquidity
    fields: dict[str, Any] = {"maxPrice": args.max_price}
    if checks:
        fields["checks"] = checks
    if args.delay_slots is not None:
        fields["delaySlots"] = args.delay_slots
    return fields


def cmd_launch(args: argparse.Namespace) -> int:
    """``order-engine launch``: POST /api/sim/launches; prints the new mint and how to snipe it."""
    body: dict[str, Any] = {"symbol": args.symbol, "decimals": args.decimals, "venue": args.venue,
                            "liquidity": args.liquidity, "openInSlots": args.open_in_slots, "price": args.price,
                            "mintRenounced": args.mint_renounced, "freezeRenounced": args.freeze_renounced,
                            "lpBurned": args.lp_burned}
    launched = _rest_call(args.rest, args.api_key, "POST", "/api/sim/launches", body)
    seconds = args.open_in_slots * 0.4
    try:  # a cap twice the launch price: the swap's fee and price impact put the first buy above it
        cap = format((Decimal(args.price) * 2).normalize(), "f")
    except ArithmeticError:
        cap = args.price
    print(f"{launched.get('symbol')} launched on {launched.get('venue')}: mint {launched.get('mint')}, "
          f"pool {launched.get('pool')}, opens at slot {launched.get('openSlot')} (in {seconds:g} s)")
    print(f"snipe it: order-engine submit --type sniper --to {launched.get('mint')} --amount 0.5 "
          f"--max-price {cap} --slippage-bps 500 --watch")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    """``order-engine cancel ID``: DELETE the order; prints it, or the API's error in one line."""
    order = _rest_call(args.rest, args.api_key, "DELETE", f"/api/orders/{args.order_id}")
    print(f"{order.get('orderId')} {order.get('status')}")
    return 0


# -- demo ---------------------------------------------------------------------------------------
@dataclass
class Row:
    order_id: str = ""
    pair: str = ""
    status: str = "sending"
    venue: str = ""
    price: str = ""
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def latency(self) -> str:
        end = self.finished or time.monotonic()
        return f"{end - self.started:5.2f}s"

    @property
    def done(self) -> bool:
        return self.status in TERMINAL or self.status == "rejected"


DEMO_PAIRS = [("SOL", "USDC", "1.5"), ("USDC", "SOL", "250"), ("SOL", "JUP", "3"), ("SOL", "BONK", "0.5"),
              ("USDC", "RAY", "100"), ("USDT", "USDC", "500")]


def _demo_take(msg: dict[str, Any], rows: dict[str, Row], by_order: dict[str, Row]) -> None:
    kind = msg.get("type")
    if kind == "order.accepted" and msg.get("clientOrderId") in rows:
        row = rows[msg["clientOrderId"]]
        row.order_id = str(msg.get("orderId", ""))
        by_order[row.order_id] = row
    elif kind in ("order.status", "order.snapshot") and msg.get("orderId") in by_order:
        row = by_order[msg["orderId"]]
        row.status = str(msg.get("status", row.status))
        data = msg.get("data") if isinstance(msg.get("data"), dict) else {}
        row.venue = data.get("venue") or row.venue
        row.price = data.get("executedPrice") or row.price
        if row.status in TERMINAL:
            row.finished = time.monotonic()
    elif kind == "error":
        pending = next((r for r in rows.values() if r.status == "sending"), None)
        if pending:
            pending.status = "rejected"
            pending.price = str(msg.get("code", ""))


class _Still:
    """``Live``'s interface, showing nothing while it lasts."""

    def __enter__(self) -> _Still:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, renderable: Any) -> None:
        return None


def cmd_demo(args: argparse.Namespace) -> int:
    """Fire N orders over one WebSocket (``execute``) and show them move in a live table."""
    from rich.live import Live
    from rich.table import Table
    from websockets.exceptions import ConnectionClosed

    console = _console()
    rows: dict[str, Row] = {}
    by_order: dict[str, Row] = {}

    def table() -> Table:
        t = Table(title=f"{args.orders} concurrent orders")
        for col in ("order", "pair", "venue", "status", "price", "latency"):
            t.add_column(col)
        for row in rows.values():
            colour = {"confirmed": "green", "failed": "red"}.get(row.status, "cyan")
            t.add_row(row.order_id[-10:], row.pair, row.venue, f"[{colour}]{row.status}[/]", row.price, row.latency)
        return t

    def unfinished() -> str:
        return f"{sum(not r.done for r in rows.values())} of {len(rows)} orders unfinished"

    base = args.ws or DEFAULT_WS
    problem: CliError | None = None
    # Not a terminal (a pipe, a log): no redrawing, the final table once at the end.
    display = Live(table(), console=console, refresh_per_second=8) if console.is_terminal else _Still()
    try:
        with _connect(base, args.api_key, WS_HINT) as ws, display as live:
            try:
                for i in range(args.orders):
                    token_in, token_out, amount = DEMO_PAIRS[i % len(DEMO_PAIRS)]
                    coid = f"demo-{uuid.uuid4().hex[:12]}"
                    rows[coid] = Row(pair=f"{amount} {token_in}→{token_out}")
                    ws.send(json.dumps({"action": "execute", "order": {
                        "type": "market", "tokenIn": token_in, "tokenOut": token_out, "amount": amount,
                        "slippageBps": 100, "clientOrderId": coid}}))
                deadline = time.monotonic() + args.timeout
                while not all(r.done for r in rows.values()):
                    live.update(table())
                    if time.monotonic() >= deadline:
                        problem = CliError(f"{unfinished()} after {args.timeout:g} s; they go on in the engine; "
                                           f"--timeout waits longer")
                        break
                    try:
                        msg = _receive(ws, 0.2)
                    except TimeoutError:
                        continue
                    if msg is not None:
                        _demo_take(msg, rows, by_order)
            except ConnectionClosed as exc:
                problem = CliError(f"the WebSocket closed with {unfinished()}: {_closed(exc)}")
            live.update(table())
    except KeyboardInterrupt:
        raise CliError("interrupted; the orders already sent go on in the engine", status=130) from None
    if not console.is_terminal:
        console.print(table())
    done = sum(r.status == "confirmed" for r in rows.values())
    console.print(f"{done}/{len(rows)} confirmed", highlight=False)
    if problem is not None:
        raise problem
    return 0 if done == len(rows) else 1


# -- run ----------------------------------------------------------------------------------------
_PORT_SETTINGS = (("REST_PORT", "--rest-port", "REST API"), ("WS_PORT", "--ws-port", "WebSocket gateway"),
                  ("AWS_PORT", "--aws-port", "DynamoDB emulator (and the rest of AWS)"),
                  ("SQS_PORT", "--sqs-port", "SQS emulator"))


def _ports(args: argparse.Namespace) -> dict[tuple[str, str, str], int]:
    """The stack's ports by (setting, flag, what): those this command serves on."""
    return {setting: getattr(args, setting[1][2:].replace("-", "_")) for setting in _PORT_SETTINGS
            if hasattr(args, setting[1][2:].replace("-", "_"))}


def _busy_port(host: str, ports: dict[tuple[str, str, str], int]) -> str | None:
    """Which of the stack's ports cannot be listened on now, in words, or ``None``."""
    from .http_server import bind

    for (setting, flag, what), port in ports.items():
        if port == 0:
            continue
        try:
            bind(host, port).close()
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            other = port + 100 if port + 100 <= 65535 else 0
            return (f"port {port} for the {what} is not free on {host} ({reason}): set {setting} (or {flag}) "
                    f"to another port, e.g. {setting}={other} make run")
    return None


def cmd_run(args: argparse.Namespace) -> int:
    """``run`` (the whole stack) and ``services`` (all but the REST API, for ``chalice local``)."""
    from pathlib import Path

    from .project import project_dir
    from .state import default_state_dir, services_state_dir
    from .supervise import Supervisor

    host = "127.0.0.1"
    ports = _ports(args)
    taken: dict[int, str] = {}
    for (setting, _flag, _what), port in ports.items():
        if port != 0 and port in taken:
            raise CliError(f"{taken[port]} and {setting} are both {port}: give them different ports", status=2)
        taken[port] = setting
    busy = _busy_port(host, ports)
    if busy:
        raise CliError(busy)
    services = args.command == "services"
    what = "services" if services else "stack"
    print(f"starting the local {what}: " + ", ".join(f"{w.split(' (')[0]} :{p}" for (_s, _f, w), p in ports.items())
          + "…", flush=True)
    project = project_dir(None)
    default_dir = services_state_dir if services else default_state_dir
    state_dir = None if args.no_state else (Path(args.state_dir) if args.state_dir else default_dir(project))
    supervisor = Supervisor(
        rest_port=getattr(args, "rest_port", 0), ws_port=args.ws_port, aws_port=args.aws_port,
        sqs_port=args.sqs_port, redis_port=args.redis_port, with_rest=not services,
        aws_endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
        redis_url=os.environ.get("REDIS_URL") or None,
        project_dir=project, state_dir=state_dir, fresh=args.fresh, host=host,
    )
    return supervisor.run_forever(ready_file=Path(args.ready_file) if args.ready_file else None)


# -- the command line -----------------------------------------------------------------------------
def _port(setting: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            port = int(text)
        except ValueError:
            port = -1
        if not 0 <= port <= 65535:
            raise argparse.ArgumentTypeError(f"{text!s} is not a port (0-65535; 0 picks a free one); check {setting}")
        return port

    parse.__name__ = "port"
    return parse


def _positive(kind: type[int] | type[float]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text} is not a positive number")
        return value

    parse.__name__ = kind.__name__
    return parse


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


RUN_DESCRIPTION = """\
Start the whole local stack on 127.0.0.1, one process per part (AWS emulator, Redis, WebSocket
gateway, pollers, REST API), print where everything is, and serve until Ctrl-C. A busy port is
reported at once. Tables, queues and orders are kept in .devstack/state across restarts: saved
every 2 s and on Ctrl-C, each DynamoDB write journaled in between (--fresh starts empty).

example:
  order-engine run
  REST_PORT=8100 WS_PORT=8101 order-engine run     # `make run` takes the same variables
  FRESH=1 make run                                 # forget the saved state
"""
SERVICES_DESCRIPTION = """\
Start everything but the REST API (AWS emulator on fixed ports, Redis, WebSocket gateway,
pollers), so that `chalice local --stage local` serves the routes, with Chalice's auto-reload,
against them. The pollers and WebSocket handlers do not reload: restart this on their changes.
The `local` stage of .chalice/config.json names the default ports and REDIS_PREFIX oe; chalice
local reads them from there, not from the shell. The state is kept outside the checkout
(~/.local/state/order-engine/...), since chalice local restarts on any file changing in it.

example:
  order-engine services          # then, in another terminal:
  .venv/bin/chalice local --stage local --port 8000
"""
CANCEL_DESCRIPTION = """\
Cancel an order still pending or waiting (DELETE /api/orders/ID): prints it, now cancelled.
An order that has left pending/waiting is not cancellable (409), and says so.

example:
  order-engine cancel ord_01m8a9z6efdpvhhc05g2gr8f0b
"""
SUBMIT_DESCRIPTION = """\
Submit one market, limit or sniper order (POST /api/orders/execute) and print the answer, or with
--watch follow it over the WebSocket until it ends: confirmed (exit status 0), failed, expired or
cancelled (1). A limit order waits until a full-size quote reaches its price; a sniper order
waits for the pool of its mint (--to) to open, then buys with SOL if its checks pass and the
price is at most --max-price. A late watch still shows every earlier step, from the order's history.

example:
  order-engine submit --from SOL --to USDC --amount 1.5 --watch
  order-engine submit --type limit --limit-price 160 --amount 1.5 --watch
  order-engine submit --type sniper --to 7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU --amount 0.5 \\
      --max-price 0.0001 --slippage-bps 500 --min-liquidity 20 --delay-slots 2 --watch
  ORDER_ENGINE_REST=http://127.0.0.1:8100 order-engine submit --amount 2 --slippage-bps 100
"""
LAUNCH_DESCRIPTION = """\
Launch a token on the simulated cluster (POST /api/sim/launches; local and dev stages): a new
mint and one pool paired with SOL on --venue, opening --open-in-slots slots (400 ms) from now.
Prints the mint, the pool and the slot it opens at, and the command that snipes it. Until the
pool opens it refuses every trade; sniper orders on the mint trigger when it opens.

example:
  order-engine launch --symbol PEPE2 --liquidity 50 --open-in-slots 25
  order-engine launch --symbol RUG --no-freeze-renounced --no-lp-burned --venue meteora
"""
DEMO_DESCRIPTION = """\
Fire N market orders over one WebSocket ({"action": "execute"}) and show them move in a live
table until every one has finished; exit status 0 when all are confirmed.

example:
  order-engine demo --orders 20
"""


def _client_flags(p: argparse.ArgumentParser, timeout_help: str | None) -> None:
    p.add_argument("--api-key", metavar="KEY", default=_default_key(),
                   help="the x-api-key to send (default: the first key of API_KEYS, else local-dev-key)")
    if timeout_help is not None:
        p.add_argument("--timeout", metavar="SECONDS", type=_positive(float), default=60.0, help=timeout_help)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="order-engine", description=__doc__, formatter_class=_Formatter,
                                     epilog="`order-engine COMMAND --help` shows a command's flags and an example.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{run,services,submit,launch,cancel,demo}")

    for command, help_text, description in (
            ("run", "start the whole local stack, one process per part", RUN_DESCRIPTION),
            ("services", "start everything but the REST API, for `chalice local --stage local`",
             SERVICES_DESCRIPTION)):
        run = sub.add_parser(command, help=help_text, description=description, formatter_class=_Formatter)
        if command == "run":
            run.add_argument("--rest-port", metavar="PORT", type=_port("REST_PORT"),
                             default=os.environ.get("REST_PORT", "8000"),
                             help="port of the REST API (env REST_PORT; default %(default)s; 0 picks a free one)")
        run.add_argument("--ws-port", metavar="PORT", type=_port("WS_PORT"), default=os.environ.get("WS_PORT", "8001"),
                         help="port of the WebSocket gateway (env WS_PORT; default %(default)s; 0 picks a free one)")
        run.add_argument("--aws-port", metavar="PORT", type=_port("AWS_PORT"),
                         default=os.environ.get("AWS_PORT", "8002"),
                         help="port of the AWS emulator for DynamoDB, its streams and every service but SQS "
                              "(env AWS_PORT; default %(default)s; 0 picks a free one)")
        run.add_argument("--sqs-port", metavar="PORT", type=_port("SQS_PORT"),
                         default=os.environ.get("SQS_PORT", "8003"),
                         help="port of the AWS emulator for SQS (env SQS_PORT; default %(default)s)")
        run.add_argument("--redis-port", metavar="PORT", type=_port("REDIS_PORT"),
                         default=os.environ.get("REDIS_PORT", "6379" if command == "services" else "0"),
                         help="port of the embedded Redis, used when nothing answers at REDIS_URL or "
                              "127.0.0.1:6379 (env REDIS_PORT; default %(default)s)")
        run.add_argument("--fresh", action="store_true", default=os.environ.get("FRESH", "") not in ("", "0"),
                         help="start empty: forget the saved tables, queues and Redis keys (env FRESH=1)")
        run.add_argument("--state-dir", metavar="DIR",
                         help="where the state is kept across restarts (default: .devstack/state in the "
                              "checkout for run; ~/.local/state/order-engine/<checkout> for services)")
        run.add_argument("--no-state", action="store_true", help="keep no state: start empty and save nothing")
        run.add_argument("--ready-file", metavar="FILE",
                         help="once ready, write the URLs and the process ids there as JSON (for scripts)")
        run.set_defaults(func=cmd_run)

    submit = sub.add_parser("submit", help="submit one market, limit or sniper order, and --watch it",
                            description=SUBMIT_DESCRIPTION, formatter_class=_Formatter)
    submit.add_argument("--rest", metavar="URL", default=os.environ.get("ORDER_ENGINE_REST", DEFAULT_REST),
                        help="the REST API's base URL (env ORDER_ENGINE_REST; default %(default)s)")
    _client_flags(submit, "seconds to wait for each next status with --watch (default %(default)g)")
    submit.add_argument("--ws", metavar="URL", default=os.environ.get("ORDER_ENGINE_WS"),
                        help="the WebSocket gateway's URL for --watch (env ORDER_ENGINE_WS; default: the wsUrl the "
                             "REST API answers)")
    submit.add_argument("--from", dest="token_in", metavar="TOKEN", default="SOL",
                        help="token to sell: a symbol (SOL, USDC, USDT, BONK, JUP, RAY) or a mint "
                             "(default %(default)s)")
    submit.add_argument("--to", dest="token_out", metavar="TOKEN", default="USDC",
                        help="token to buy, as --from; for --type sniper the mint to watch (default %(default)s)")
    submit.add_argument("--amount", metavar="DECIMAL", default="1",
                        help="how much of --from to sell, in token units such as 1.5 (default %(default)s)")
    submit.add_argument("--slippage-bps", metavar="BPS", type=int, default=50,
                        help="how far below the best quote the output may fall, in basis points "
                             "(default %(default)s = 0.5%%)")
    submit.add_argument("--client-order-id", metavar="ID",
                        help="idempotency key: submitting the same id and body again returns the same order")
    submit.add_argument("--watch", action="store_true",
                        help="follow the order's statuses over the WebSocket until it finishes")
    submit.add_argument("--type", choices=("market", "limit", "sniper"), default="market",
                        help="market: execute now; limit: wait until --limit-price is reached; sniper: buy --to "
                             "when its pool opens (default %(default)s)")
    submit.add_argument("--limit-price", metavar="DECIMAL",
                        help="limit orders: the least --to per --from accepted, e.g. 160 (USDC per SOL)")
    submit.add_argument("--expires-at", metavar="TIME",
                        help="limit and sniper orders: when to stop waiting, ISO 8601 such as 2026-12-01T00:00:00Z "
                             "(default 24 h; at most 30 days)")
    submit.add_argument("--max-price", metavar="DECIMAL",
                        help="sniper orders: the most SOL paid per whole token, e.g. 0.0001; held on chain")
    submit.add_argument("--delay-slots", metavar="N", type=int,
                        help="sniper orders: slots (400 ms) to wait after the pool opens, 0-150 (default 0)")
    submit.add_argument("--min-liquidity", metavar="SOL",
                        help="sniper orders: the least SOL the pool must hold, e.g. 20 (default: no minimum)")
    for flag, what in (("mint-renounced", "the token's mint authority renounced"),
                       ("freeze-renounced", "its freeze authority renounced"), ("lp-burned", "the pool's LP burned")):
        submit.add_argument(f"--{flag}", action=argparse.BooleanOptionalAction, default=None,
                            help=f"sniper orders: require {what} (the default); --no-{flag} buys without it")
    submit.set_defaults(func=cmd_submit)

    launch = sub.add_parser("launch", help="launch a token on the simulated cluster, to snipe it",
                            description=LAUNCH_DESCRIPTION, formatter_class=_Formatter)
    launch.add_argument("--rest", metavar="URL", default=os.environ.get("ORDER_ENGINE_REST", DEFAULT_REST),
                        help="the REST API's base URL (env ORDER_ENGINE_REST; default %(default)s)")
    _client_flags(launch, None)
    launch.add_argument("--symbol", metavar="SYMBOL", default="PEPE2",
                        help="the new token's symbol: capital letters and digits, 10 at most (default %(default)s)")
    launch.add_argument("--decimals", metavar="N", type=int, default=6,
                        help="the new token's decimals, 0-9 (default %(default)s)")
    launch.add_argument("--venue", choices=("raydium", "meteora"), default="raydium",
                        help="where its pool opens (default %(default)s)")
    launch.add_argument("--liquidity", metavar="SOL", default="50",
                        help="SOL paired into the new pool (default %(default)s)")
    launch.add_argument("--price", metavar="DECIMAL", default="0.00002",
                        help="SOL per whole token when the pool opens (default %(default)s)")
    launch.add_argument("--open-in-slots", metavar="N", type=int, default=25,
                        help="slots of 400 ms until the pool opens, 0-9000 (default %(default)s = 10 s)")
    for flag, what in (("mint-renounced", "the mint authority is renounced"),
                       ("freeze-renounced", "the freeze authority is renounced"),
                       ("lp-burned", "the pool's LP tokens are burned")):
        launch.add_argument(f"--{flag}", action=argparse.BooleanOptionalAction, default=True,
                            help=f"{what} (default yes); --no-{flag} for a token a sniper's checks refuse")
    launch.set_defaults(func=cmd_launch)

    cancel = sub.add_parser("cancel", help="cancel an order still pending or waiting",
                            description=CANCEL_DESCRIPTION, formatter_class=_Formatter)
    cancel.add_argument("order_id", metavar="ORDER_ID", help="the order's id (ord_…)")
    cancel.add_argument("--rest", metavar="URL", default=os.environ.get("ORDER_ENGINE_REST", DEFAULT_REST),
                        help="the REST API's base URL (env ORDER_ENGINE_REST; default %(default)s)")
    _client_flags(cancel, None)
    cancel.set_defaults(func=cmd_cancel)

    demo = sub.add_parser("demo", help="fire concurrent orders and watch them in a live table",
                          description=DEMO_DESCRIPTION, formatter_class=_Formatter)
    _client_flags(demo, "seconds to wait for every order to finish (default %(default)g)")
    demo.add_argument("--ws", metavar="URL", default=os.environ.get("ORDER_ENGINE_WS", DEFAULT_WS),
                      help="the WebSocket gateway's URL (env ORDER_ENGINE_WS; default %(default)s)")
    demo.add_argument("--orders", metavar="N", type=_positive(int), default=5,
                      help="how many orders to fire at once (default %(default)s)")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args))
    except CliError as exc:
        print(f"order-engine: {exc.message}", file=sys.stderr, flush=True)
        return exc.status
    except KeyboardInterrupt:
        print("order-engine: interrupted", file=sys.stderr, flush=True)
        return 130
    except BrokenPipeError:  # output piped into something that stopped reading (`| head`)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
