"""Bursts against a running local stack: concurrent POSTs each on a connection of its own, and
open WebSockets each receiving a push.

    python -m bench.burst --posts 1000 --sockets 1000        # against `make run` on 8000/8001
    python -m bench.burst --rest http://127.0.0.1:8000 --ws ws://127.0.0.1:8001 --api-key local-dev-key

Prints how each POST was answered (status or the connection error) and how many sockets were
opened and received their push. Each socket sends ``{"action": "ping"}`` and waits for the
``pong``, which the app pushes through the ``@connections`` management API.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["SocketBurst", "post_burst", "raise_open_files_limit", "socket_burst"]

ORDER = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "0.1", "slippageBps": 100}


def raise_open_files_limit(wanted: int) -> int:
    """Raise this process's soft limit on open files towards ``wanted`` (at most the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


async def _post(host: str, port: int, head: bytes, body: bytes, timeout: float) -> str:
    """One POST on a connection of its own; its status code, or the name of the error."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError) as exc:
        return f"connect:{type(exc).__name__}"
    try:
        writer.write(head + body)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout)
        await asyncio.wait_for(reader.read(), timeout)  # the rest, until the server closes
        parts = status_line.split()
        return parts[1].decode() if len(parts) >= 2 else "error:EmptyResponse"
    except (OSError, TimeoutError) as exc:
        return f"error:{type(exc).__name__}"
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


async def post_burst(rest_url: str, api_key: str, count: int, timeout: float = 120) -> list[str]:
    """``count`` POSTs of a market order, all at once, each on its own connection."""
    split = urlsplit(rest_url)
    host, port = split.hostname or "127.0.0.1", split.port or 80
    body = json.dumps(ORDER).encode()
    head = (f"POST /api/orders/execute HTTP/1.1\r\nHost: {host}:{port}\r\nx-api-key: {api_key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    return list(await asyncio.gather(*(_post(host, port, head, body, timeout) for _ in range(count))))


@dataclass
class SocketBurst:
    opened: int = 0
    received: int = 0
    errors: Counter[str] = field(default_factory=Counter)


async def socket_burst(ws_url: str, api_key: str, count: int, timeout: float = 120) -> SocketBurst:
    """``count`` WebSockets open at once; each sends a ping and waits for its pong (a push)."""
    from websockets.asyncio.client import connect

    result = SocketBurst()
    all_open = asyncio.Event()

    async def one() -> None:
        try:
            async with connect(f"{ws_url}/?apiKey={api_key}", open_timeout=timeout, close_timeout=5,
                               ping_interval=None) as ws:
                result.opened += 1
                if result.opened == count:
                    all_open.set()
                await asyncio.wait_for(all_open.wait(), timeout)  # every socket is open at once
                await ws.send(json.dumps({"action": "ping"}))
                while True:
                    message = json.loads(await asyncio.wait_for(ws.recv(), timeout))
                    if message.get("type") == "pong":
                        result.received += 1
                        return
        except Exception as exc:
            result.errors[type(exc).__name__] += 1
            all_open.set()  # one failed: do not hold the others for ever

    await asyncio.gather(*(one() for _ in range(count)))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.burst", description=__doc__.splitlines()[0])
    parser.add_argument("--rest", default="http://127.0.0.1:8000")
    parser.add_argument("--ws", default="ws://127.0.0.1:8001")
    parser.add_argument("--api-key", default="local-dev-key")
    parser.add_argument("--posts", type=int, default=1000)
    parser.add_argument("--sockets", type=int, default=1000)
    args = parser.parse_args(argv)
    limit = raise_open_files_limit(2 * max(args.posts, args.sockets) + 256)
    print(f"open files limit: {limit}")
    if args.posts:
        started = time.monotonic()
        outcomes = Counter(asyncio.run(post_burst(args.rest, args.api_key, args.posts)))
        errors = sum(n for k, n in outcomes.items() if not k.isdigit())
        print(f"{args.posts} concurrent POSTs in {time.monotonic() - started:.1f} s: {dict(outcomes)}; "
              f"connection errors {errors} of {args.posts}")
    if args.sockets:
        started = time.monotonic()
        burst = asyncio.run(socket_burst(args.ws, args.api_key, args.sockets))
        print(f"{args.sockets} WebSockets in {time.monotonic() - started:.1f} s: opened {burst.opened}, "
              f"received their push {burst.received}, errors {dict(burst.errors)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
