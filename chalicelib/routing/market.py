"""A seeded market: a Raydium and a Meteora pool for every pair of listed tokens.

Both venues start a few percent apart (2–5 %, as quotes on chain do for volatile pairs) and
then move the way real pools move: by trades. ``step`` plays small arbitrage-like flow that
random-walks each pool and pulls it back towards its starting price; it runs lazily, once per
``step_seconds`` of the market's clock. Orders' own swaps move the pools too.

Everything random comes from generators seeded by ``MarketSettings.seed``, so with a
``FakeClock`` a test sees exact, repeatable amounts. Latency and failure injection (quote
timeouts, RPC errors) are settings; a quote never changes a pool, a swap does.
"""

from __future__ import annotations

import hashlib
import random
import threading
from dataclasses import dataclass
from decimal import Decimal
from itertools import combinations

from ..domain import (
    TOKENS,
    Fill,
    NoRouteError,
    Quote,
    QuoteTimeoutError,
    RpcError,
    SlippageExceededError,
    Token,
    ValidationError,
)
from ..domain.base58 import b58encode
from ..domain.clock import Clock
from .meteora import DlmmParameters, DlmmPool
from .pools import Pool, SwapResult
from .raydium import RaydiumPool

__all__ = ["MarketSettings", "SimulatedMarket", "SimulatedVenue"]

# Reference USD prices and quote preference (a pool's token_y is the more "quote-like" token).
REFERENCE_USD: dict[str, Decimal] = {
    "SOL": Decimal("150"), "USDC": Decimal("1"), "USDT": Decimal("0.9998"),
    "BONK": Decimal("0.000022"), "JUP": Decimal("0.85"), "RAY": Decimal("2.4"),
}
QUOTE_RANK = ["USDC", "USDT", "SOL", "JUP", "RAY", "BONK"]
STABLES = {"USDC", "USDT"}
# Pool depth per side, in USD.
DEPTH_USD: dict[frozenset[str], Decimal] = {
    frozenset({"SOL", "USDC"}): Decimal(15_000_000),
    frozenset({"SOL", "USDT"}): Decimal(5_000_000),
    frozenset({"USDC", "USDT"}): Decimal(10_000_000),
}
DEFAULT_DEPTH_USD = Decimal(1_500_000)
BINS_EACH_SIDE = 70
VENUES = ("raydium", "meteora")


@dataclass(frozen=True)
class MarketSettings:
    seed: int = 7
    quote_latency_ms: tuple[int, int] = (0, 0)
    quote_timeout_rate: float = 0.0
    rpc_error_rate: float = 0.0
    quote_ttl_seconds: float = 10.0
    drift_bps: int = 2  # largest flow per step, as a share of the pool's starting depth
    step_seconds: float = 1.0


class SimulatedVenue:
    """One venue of the market; implements the ``Venue`` protocol."""

    def __init__(self, name: str, market: SimulatedMarket) -> None:
        self.name = name
        self._market = market
        self.pools: dict[frozenset[str], Pool] = {}

    def pool_for(self, token_in: Token, token_out: Token) -> Pool:
        pool = self.pools.get(frozenset({token_in.mint, token_out.mint}))
        if pool is None or token_in == token_out:
            raise NoRouteError(f"{self.name} has no {token_in.symbol}/{token_out.symbol} pool")
        return pool

    def quote(self, token_in: Token, token_out: Token, amount_in: int) -> Quote:
        if amount_in <= 0:
            raise ValidationError("amount must be positive", field="amount")
        pool = self.pool_for(token_in, token_out)
        delay = self._market.network_delay(self.name)  # the request's way there
        with self._market.lock:
            now = self._market.advance()
            result = pool.simulate(token_in, amount_in, now)
        quote = Quote(
            venue=self.name, pool_id=pool.pool_id, token_in=token_in, token_out=token_out,
            amount_in=amount_in, amount_out=result.amount_out, fee=result.fee,
            price_impact_bps=result.price_impact_bps,
            expires_at=self._market.clock.now() + self._market.settings.quote_ttl_seconds,
        )
        self._market.clock.sleep(delay)  # and the answer's way back
        return quote

    def simulate_swap(self, quote: Quote, min_amount_out: int) -> SwapResult:
        """What ``swap`` would do now, without doing it; ``SlippageExceededError`` below the minimum."""
        pool = self.pool_for(quote.token_in, quote.token_out)
        with self._market.lock:
            result = pool.simulate(quote.token_in, quote.amount_in, self._market.advance())
        if result.amount_out < min_amount_out:
            raise SlippageExceededError(
                f"{self.name} would pay {result.amount_out} < minimum {min_amount_out} "
                f"{quote.token_out.symbol} base units")
        return result

    def swap(self, quote: Quote, min_amount_out: int) -> Fill:
        pool = self.pool_for(quote.token_in, quote.token_out)
        with self._market.lock:  # re-entrant: the check and the commit see the same pool state
            result = self.simulate_swap(quote, min_amount_out)
            pool.commit(result, self._market.advance())
        return Fill(self.name, pool.pool_id, quote.amount_in, result.amount_out, result.fee)


class SimulatedMarket:
    def __init__(self, settings: MarketSettings | None = None, clock: Clock | None = None) -> None:
        from ..domain.clock import SystemClock

        self.settings = settings or MarketSettings()
        self.clock: Clock = clock or SystemClock()
        self.lock = threading.RLock()
        self._layout_rng = random.Random(self.settings.seed)
        self._flow_rng = random.Random(self.settings.seed * 7919 + 1)
        self._fault_rng = random.Random(self.settings.seed * 104_729 + 2)
        self._fault_lock = threading.Lock()
        self._last_step = self.clock.now()
        self._start = self._last_step
        self.venues: dict[str, SimulatedVenue] = {name: SimulatedVenue(name, self) for name in VENUES}
        self._targets: dict[str, Decimal] = {}  # pool id -> starting spot price (y per x)
        self._depth_x: dict[str, int] = {}
        self._build()

    # -- construction ----------------------------------------------------------------------------
    def _pool_id(self, venue: str, x: Token, y: Token) -> str:
        digest = hashlib.sha256(f"{venue}:{x.mint}:{y.mint}:{self.settings.seed}".encode()).digest()
        return b58encode(digest)

    def _build(self) -> None:
        now = self.clock.now() - self._start
        symbols = sorted(REFERENCE_USD, key=QUOTE_RANK.index)
        for a, b in combinations(symbols, 2):
            y, x = TOKENS[a], TOKENS[b]  # a ranks as the more quote-like token
            ref = REFERENCE_USD[x.symbol] / REFERENCE_USD[y.symbol] * Decimal(10) ** (y.decimals - x.decimals)
            stable = {x.symbol, y.symbol} <= STABLES
            spread = Decimal(str(round(self._layout_rng.uniform(0.0005, 0.002) if stable
                                       else self._layout_rng.uniform(0.02, 0.05), 6)))
            sign = 1 if self._layout_rng.random() < 0.5 else -1
            depth_usd = DEPTH_USD.get(frozenset({x.symbol, y.symbol}), DEFAULT_DEPTH_USD)
            depth_x = int(depth_usd / REFERENCE_USD[x.symbol] * Decimal(10) ** x.decimals)
            key = frozenset({x.mint, y.mint})
            # Raydium
            r_price = ref * (1 + sign * spread / 2)
            r_id = self._pool_id("raydium", x, y)
            self.venues["raydium"].pools[key] = RaydiumPool(r_id, x, y, depth_x, int(depth_x * r_price))
            self._targets[r_id], self._depth_x[r_id] = r_price, depth_x
            # Meteora
            m_price = ref * (1 - sign * spread / 2)
            m_id = self._pool_id("meteora", x, y)
            params = DlmmParameters(bin_step=1, base_factor=10_000) if stable else DlmmParameters()
            per_bin = depth_x // BINS_EACH_SIDE
            pool = DlmmPool.seeded(m_id, x, y, m_price, per_bin, BINS_EACH_SIDE, params, now)
            self.venues["meteora"].pools[key] = pool
            self._targets[m_id], self._depth_x[m_id] = pool.bin_price(pool.active_id), depth_x

    # -- queries ---------------------------------------------------------------------------------
    def venue(self, name: str) -> SimulatedVenue:
        try:
            return self.venues[name]
        except KeyError:
            raise NoRouteError(f"unknown venue {name!r}") from None

    def pairs(self) -> list[tuple[Token, Token]]:
        pools = self.venues[VENUES[0]].pools.values()
        return [(p.token_x, p.token_y) for p in pools]

    def has_pair(self, token_in: Token, token_out: Token) -> bool:
        key = frozenset({token_in.mint, token_out.mint})
        return token_in != token_out and any(key in v.pools for v in self.venues.values())

    # -- time, flow, faults ----------------------------------------------------------------------
    def advance(self) -> float:
        """Play the flow due since the last call; returns seconds since the market opened."""
        with self.lock:
            now = self.clock.now()
            due = int((now - self._last_step) / self.settings.step_seconds) if self.settings.step_seconds > 0 else 0
            if due > 0:
                for _ in range(min(due, 30)):
                    self.step()
                self._last_step += due * self.settings.step_seconds
            return now - self._start

    def step(self) -> None:
        """One round of flow: every pool trades a little, biased back towards its start price."""
        if self.settings.drift_bps <= 0:
            return
        with self.lock:
            now = self.clock.now() - self._start
            for venue in self.venues.values():
                for pool in venue.pools.values():
                    target = self._targets[pool.pool_id]
                    spot: Decimal = pool.spot_price(pool.token_x)
                    deviation_bps = float((spot - target) / target * 10_000)
                    # More likely to trade towards the target the further the pool has wandered.
                    towards = self._flow_rng.random() < 0.5 + min(0.4, abs(deviation_bps) / 500)
                    sell_x = (deviation_bps > 0) == towards
                    share = self._flow_rng.random() * self.settings.drift_bps / 10_000
                    size_x = int(self._depth_x[pool.pool_id] * share)
                    if size_x <= 0:
                        continue
                    token_in = pool.token_x if sell_x else pool.token_y
                    size = size_x if sell_x else int(size_x * spot)
                    try:
                        pool.commit(pool.simulate(token_in, max(size, 1), now), now)
                    except Exception:  # flow that cannot trade simply does not happen
                        continue

    def network_delay(self, venue: str) -> float:
        """Sleep half the configured quote latency and return the other half (the way back);
        inject timeouts and RPC errors at their rates."""
        s = self.settings
        with self._fault_lock:
            low, high = s.quote_latency_ms
            delay = self._fault_rng.uniform(low, high) / 1000 if high > 0 else 0.0
            roll_timeout = self._fault_rng.random()
            roll_rpc = self._fault_rng.random()
        if delay:
            self.clock.sleep(delay / 2)
        if roll_timeout < s.quote_timeout_rate:
            raise QuoteTimeoutError(f"{venue} did not answer the quote request in time")
        if roll_rpc < s.rpc_error_rate:
            raise RpcError(f"{venue} RPC node returned 503 Service Unavailable")
        return delay / 2
