"""``order-engine``: run the local stack, submit an order and watch it, or fire a demo burst.

    order-engine run                                   # the whole stack on 127.0.0.1
    order-engine services                              # all but REST, for `chalice local --stage local`
    order-engine submit --from SOL --to USDC --amount 1.5 --watch
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
TERMINAL = {"confirmed", "failed"}


def _default_key() -> str:
    from .stack import first_api_key

    return first_api_key(os.environ.get("API_KEYS"))


# -- run, services ------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .stack import _project_dir
    from .state import default_state_dir
    from .supervise import Supervisor

    services = args.command == "services"
    project = _project_dir(None)
    state_dir = None if args.no_state else (Path(args.state_dir) if args.state_dir else default_state_dir(project))
    supervisor = Supervisor(
        rest_port=getattr(args, "rest_port", 0), ws_port=args.ws_port, aws_port=args.aws_port,
        sqs_port=args.sqs_port,
        redis_port=args.redis_port, with_rest=not services,
        aws_endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
        redis_url=os.environ.get("REDIS_URL") or None,
        project_dir=project, state_dir=state_dir, fresh=args.fresh,
    )
    return supervisor.run_forever(ready_file=Path(args.ready_file) if args.ready_file else None)


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
    return ""


def cmd_submit(args: argparse.Namespace) -> int:
    from rich.console import Console
    from websockets.sync.client import connect

    console = Console()
    body: dict[str, Any] = {"type": "market", "tokenIn": args.token_in, "tokenOut": args.token_out,
                            "amount": args.amount, "slippageBps": args.slippage_bps}
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

    for command, helptext in (("run", "start the whole local stack, one process per part"),
                              ("services", "start everything but the REST API, for `chalice local --stage local`")):
        p = sub.add_parser(command, help=helptext)
        if command == "run":
            p.add_argument("--rest-port", type=int, default=int(os.environ.get("REST_PORT", 8000)),
                           help="the REST API's port (REST_PORT; 0: any free port)")
        p.add_argument("--ws-port", type=int, default=int(os.environ.get("WS_PORT", 8001)),
                       help="the WebSocket gateway's port (WS_PORT; 0: any free port)")
        p.add_argument("--aws-port", type=int, default=int(os.environ.get("AWS_PORT", 8002)),
                       help="the emulator's port for DynamoDB, its streams and every other service but SQS "
                            "(AWS_PORT; 0: any free port)")
        p.add_argument("--sqs-port", type=int, default=int(os.environ.get("SQS_PORT", 8003)),
                       help="the emulator's port for SQS (SQS_PORT; 0: any free port)")
        p.add_argument("--redis-port", type=int,
                       default=int(os.environ.get("REDIS_PORT", 6379 if command == "services" else 0)),
                       help="the embedded Redis's port, when no Redis answers at REDIS_URL or 127.0.0.1:6379 "
                            "(REDIS_PORT)")
        p.add_argument("--fresh", action="store_true", default=os.environ.get("FRESH", "") not in ("", "0"),
                       help="start empty: forget the saved tables, queues and Redis keys (FRESH=1)")
        p.add_argument("--state-dir", help="where the state is saved (default: .devstack/state in the checkout)")
        p.add_argument("--no-state", action="store_true", help="keep no state: start empty, save nothing")
        p.add_argument("--ready-file", help="write the URLs and process ids there as JSON once ready")
        p.set_defaults(func=cmd_run)

    for name, func, helptext in (("submit", cmd_submit, "submit one market order"),
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
        else:
            p.add_argument("--orders", type=int, default=5)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
