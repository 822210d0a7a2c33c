"""``order-engine``: run the local stack, submit an order and watch it, or fire a demo burst.

    order-engine run                                   # the whole stack on 127.0.0.1
    order-engine submit --from SOL --to USDC --amount 1.5 --watch
    order-engine submit --type limit --limit-price 160 --amount 1.5 --watch
    order-engine cancel ord_…
    order-engine demo --orders 20
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

DEFAULT_REST = "http://127.0.0.1:8000"
DEFAULT_WS = "ws://127.0.0.1:8001"
TERMINAL = {"confirmed", "failed", "expired", "cancelled"}


def _default_key() -> str:
    from .stack import first_api_key

    return first_api_key(os.environ.get("API_KEYS"))


# -- run ----------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    from .stack import DevStack

    stack = DevStack(
        rest_port=args.rest_port,
        ws_port=args.ws_port,
        aws_endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
        redis_url=os.environ.get("REDIS_URL") or None,
    )
    try:
        stack.run_forever()
    except Exception as exc:  # a busy port, an endpoint without DynamoDB: one clear line, not a traceback
        print(f"order-engine: the local stack could not start: {exc}", file=sys.stderr)
        return 1
    return 0


# -- submit -------------------------------------------------------------------------------------
def _post_order(rest: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
    import httpx

    resp = httpx.post(f"{rest}/api/orders/execute", json=body, headers={"x-api-key": key}, timeout=10)
    data: dict[str, Any] = resp.json()
    if resp.status_code >= 400:
        err = data.get("error", {})
        field = f" ({err['field']})" if err.get("field") else ""
        raise SystemExit(f"error {resp.status_code} {err.get('code')}: {err.get('message')}{field}")
    return data


def _ws_url(ws: str, key: str, **params: str) -> str:
    return f"{ws.rstrip('/')}/?{urlencode({'apiKey': key, **params})}"


def _describe(msg: dict[str, Any]) -> str:
    data = msg.get("data") or {}
    status = msg.get("status", "")
    if status == "routing":
        return ", ".join(f"{q['venue']} {q['amountOut']} (impact {q['priceImpactBps']} bps)"
                         for q in data.get("quotes", [])) or "no quotes"
    if status == "building":
        return f"{data.get('venue')} min out {data.get('minAmountOut')} wrapSol={data.get('wrapSol')}"
    if status == "submitted":
        return f"signature {data.get('signature', '')[:20]}…"
    if status == "confirmed":
        tx = data.get("txHash", "")[:16]
        return f"{data.get('amountOut')} at {data.get('executedPrice')} on {data.get('venue')} tx {tx}…"
    if status == "failed":
        err = data.get("error", {})
        return f"{err.get('code')}: {err.get('message')}"
    if status == "pending" and data.get("attempt"):
        return f"retry, attempt {data['attempt']}"
    return _describe_waiting(status, data)


def cmd_submit(args: argparse.Namespace) -> int:
    from rich.console import Console
    from websockets.sync.client import connect

    console = Console()
    body: dict[str, Any] = {"type": args.type, "tokenIn": args.token_in, "tokenOut": args.token_out,
                            "amount": args.amount, "slippageBps": args.slippage_bps, **_limit_fields(args)}
    if args.client_order_id:
        body["clientOrderId"] = args.client_order_id
    started = time.monotonic()
    accepted = _post_order(args.rest, args.api_key, body)
    order_id = accepted["orderId"]
    console.print(f"[bold]{order_id}[/] accepted ({accepted['status']})")
    if not args.watch:
        console.print_json(json.dumps(accepted))
        return 0
    with connect(_ws_url(args.ws, args.api_key, orderId=order_id), open_timeout=10) as ws:
        while True:
            msg = json.loads(ws.recv(timeout=args.timeout))
            elapsed = f"{time.monotonic() - started:6.2f}s"
            if msg["type"] == "order.snapshot":
                console.print(f"{elapsed}  [dim]snapshot[/] {msg['status']} (seq {msg['seq']})")
                status = msg["status"]
            elif msg["type"] == "order.status":
                status = msg["status"]
                colour = {"confirmed": "green", "failed": "red"}.get(status, "cyan")
                console.print(f"{elapsed}  [{colour}]{status:<9}[/] seq {msg['seq']}  {_describe(msg)}")
            elif msg["type"] == "error":
                console.print(f"[red]error[/] {msg.get('code')}: {msg.get('message')}")
                return 1
            else:
                continue
            if status in TERMINAL:
                return 0 if status == "confirmed" else 1


# -- limit orders and cancel ----------------------------------------------------------------------
def _limit_fields(args: argparse.Namespace) -> dict[str, Any]:
    """A limit order's fields from ``submit --type limit --limit-price P [--expires-at T]``."""
    if args.type != "limit":
        if args.limit_price or args.expires_at:
            raise SystemExit("--limit-price and --expires-at go with --type limit")
        return {}
    if not args.limit_price:
        raise SystemExit("--type limit needs --limit-price (least tokenOut per tokenIn, e.g. 160)")
    fields = {"limitPrice": args.limit_price}
    if args.expires_at:
        fields["expiresAt"] = args.expires_at
    return fields


def _describe_waiting(status: str, data: dict[str, Any]) -> str:
    if status == "waiting":
        slipped = "price slipped away; " if data.get("slipped") else ""
        return (f"{slipped}limit {data.get('limitPrice')}, best now {data.get('bestPrice')}, "
                f"expires {data.get('expiresAt')}")
    if status == "expired":
        return f"expired at {data.get('expiresAt')}"
    if status == "cancelled":
        return f"cancelled by {data.get('by')}"
    return ""


def cmd_cancel(args: argparse.Namespace) -> int:
    """``order-engine cancel ID``: DELETE the order; prints it, or the API's error."""
    import httpx

    resp = httpx.delete(f"{args.rest}/api/orders/{args.order_id}", headers={"x-api-key": args.api_key},
                        timeout=args.timeout)
    data: dict[str, Any] = resp.json()
    if resp.status_code >= 400:
        err = data.get("error", {})
        print(f"error {resp.status_code} {err.get('code')}: {err.get('message')}", file=sys.stderr)
        return 1
    print(f"{data['orderId']} {data['status']}")
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


DEMO_PAIRS = [("SOL", "USDC", "1.5"), ("USDC", "SOL", "250"), ("SOL", "JUP", "3"), ("SOL", "BONK", "0.5"),
              ("USDC", "RAY", "100"), ("USDT", "USDC", "500")]


def cmd_demo(args: argparse.Namespace) -> int:
    """Fire N orders over one WebSocket (``execute``) and show them move in a live table."""
    from rich.live import Live
    from rich.table import Table
    from websockets.sync.client import connect

    rows: dict[str, Row] = {}
    lock = threading.Lock()

    def table() -> Table:
        t = Table(title=f"{args.orders} concurrent orders")
        for col in ("order", "pair", "venue", "status", "price", "latency"):
            t.add_column(col)
        with lock:
            for row in rows.values():
                colour = {"confirmed": "green", "failed": "red"}.get(row.status, "cyan")
                t.add_row(row.order_id[-10:], row.pair, row.venue, f"[{colour}]{row.status}[/]", row.price,
                          row.latency)
        return t

    with connect(_ws_url(args.ws, args.api_key), open_timeout=10) as ws, Live(table(), refresh_per_second=8) as live:
        for i in range(args.orders):
            token_in, token_out, amount = DEMO_PAIRS[i % len(DEMO_PAIRS)]
            coid = f"demo-{uuid.uuid4().hex[:12]}"
            rows[coid] = Row(pair=f"{amount} {token_in}→{token_out}")
            ws.send(json.dumps({"action": "execute", "order": {"tokenIn": token_in, "tokenOut": token_out,
                                                               "amount": amount, "slippageBps": 100,
                                                               "clientOrderId": coid}}))
        by_order: dict[str, Row] = {}
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            live.update(table())
            if rows and all(r.status in TERMINAL or r.status == "rejected" for r in rows.values()):
                break
            try:
                msg = json.loads(ws.recv(timeout=0.2))
            except TimeoutError:
                continue
            with lock:
                if msg["type"] == "order.accepted":
                    row = rows[msg["clientOrderId"]]
                    row.order_id = msg["orderId"]
                    by_order[msg["orderId"]] = row
                elif msg["type"] == "order.status" and msg["orderId"] in by_order:
                    row = by_order[msg["orderId"]]
                    row.status = msg["status"]
                    data = msg.get("data") or {}
                    row.venue = data.get("venue") or row.venue
                    row.price = data.get("executedPrice") or row.price
                    if msg["status"] in TERMINAL:
                        row.finished = time.monotonic()
                elif msg["type"] == "error":
                    pending = next((r for r in rows.values() if r.status == "sending"), None)
                    if pending:
                        pending.status = "rejected"
                        pending.price = msg.get("code", "")
        live.update(table())
    done = sum(r.status == "confirmed" for r in rows.values())
    print(f"{done}/{len(rows)} confirmed")
    return 0 if done == len(rows) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="order-engine", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="start the whole local stack")
    run.add_argument("--rest-port", type=int, default=int(os.environ.get("REST_PORT", 8000)))
    run.add_argument("--ws-port", type=int, default=int(os.environ.get("WS_PORT", 8001)))
    run.set_defaults(func=cmd_run)

    for name, func, helptext in (("submit", cmd_submit, "submit one market or limit order"),
                                 ("cancel", cmd_cancel, "cancel an order still pending or waiting"),
                                 ("demo", cmd_demo, "fire concurrent orders and watch them")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--rest", default=os.environ.get("ORDER_ENGINE_REST", DEFAULT_REST))
        p.add_argument("--ws", default=os.environ.get("ORDER_ENGINE_WS", DEFAULT_WS))
        p.add_argument("--api-key", default=_default_key())
        p.add_argument("--timeout", type=float, default=60.0)
        p.set_defaults(func=func)
        if name == "submit":
            p.add_argument("--from", dest="token_in", default="SOL")
            p.add_argument("--to", dest="token_out", default="USDC")
            p.add_argument("--amount", default="1")
            p.add_argument("--slippage-bps", type=int, default=50)
            p.add_argument("--client-order-id")
            p.add_argument("--watch", action="store_true", help="stream the lifecycle over the WebSocket")
            p.add_argument("--type", choices=("market", "limit"), default="market")
            p.add_argument("--limit-price", help="limit orders: least tokenOut per tokenIn, e.g. 160")
            p.add_argument("--expires-at", help="limit orders: ISO time, e.g. 2026-12-01T00:00:00Z (default 24 h)")
        elif name == "cancel":
            p.add_argument("order_id", help="the order's id (ord_…)")
        else:
            p.add_argument("--orders", type=int, default=5)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
