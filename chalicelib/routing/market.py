"""A seeded market: a Raydium and a Meteora pool for every pair of listed tokens, on the one
timeline of the simulated cluster.

Both venues start a few percent apart (2–5 %, as quotes on chain do for volatile pairs) and
then move the way real pools move: by trades. Market flow (the random walk) runs in ticks of
``tick_ms``: tick ``k`` trades a little in every pool, biased back towards its starting price,
with randomness drawn from (seed, k, pool) alone, so whichever process applies a tick applies
the same one. Transactions sent to the chain land on the same timeline (see ``attach``).

Every pool's state lives behind the ``SimState`` port, shared by every process. A change is one
optimistic transaction: ``advance`` applies everything due by now (ticks and landings, in time
order) and moves the cluster's clock forward in the same write, so a tick or a landing
happens once, whoever does it. Reads (quotes, statuses) first advance when something is due.

Time is counted from the cluster's genesis, created once (SET NX) by whichever process comes
first: block height = ``GENESIS_HEIGHT`` + elapsed ms // ``slot_ms``. With the same seed and an
injected clock, every amount is repeatable. Latency and failure injection (quote timeouts, RPC
errors) are settings, drawn in each process; a quote never changes a pool, a swap does.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import combinations
from typing import Protocol

from ..domain import (
    TOKENS,
    DomainError,
    Fill,
    NoRouteError,
    PoolChange,
    PoolLaunch,
    Quote,
    QuoteTimeoutError,
    RpcError,
    SlippageExceededError,
    Token,
    UnknownTokenError,
    ValidationError,
    to_decimal_string,
)
from ..domain import get_token as listed_token
from ..domain.base58 import b58encode
from ..domain.clock import Clock
from ..logs import logger as log
from .launches import LAUNCH_TTL_SECONDS, LAUNCHES_KEY, SOL, Launch, LaunchTerms, launch_key
from .meteora import DlmmParameters, DlmmPool, Volatility
from .pools import Pool, SwapResult
from .raydium import RaydiumPool
from .state import InMemorySimState, SimState, StateTxn

__all__ = [
    "CLOCK_KEY",
    "GENESIS_HEIGHT",
    "ClusterClock",
    "MarketSettings",
    "PoolBook",
    "PoolSnapshot",
    "PoolSpec",
    "Scheduled",
    "SimulatedMarket",
    "SimulatedVenue",
    "TimelineParticipant",
    "pool_key",
]


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

GENESIS_HEIGHT = 280_000_000
CLOCK_KEY = "sim:clock"
AUTO_LAUNCH_KEY = "sim:autolaunch"  # the last of the market's own launches, by its index
AUTO_SYMBOLS = ("MOON", "PEPE", "WIF", "FROG", "GIGA", "SNEK", "CHAD", "ROCKET", "DEGEN", "HODL")
# The market's own launches stay this many launches long (half an hour at one a minute); older ones
# are delisted, so that a stack left running does not pile up pools it quotes and lists forever.
AUTO_LAUNCHES_KEPT = 30
_FORGET_AFTER_MS = 10_000  # a launch younger than this may be one this process is still recording
CLOCK_TTL_SECONDS = 30 * 86_400  # refreshed by every write, like the pools
POOL_TTL_SECONDS = 30 * 86_400


def pool_key(pool_id: str) -> str:
    return f"sim:pool:{pool_id}"


@dataclass(frozen=True)
class MarketSettings:
    seed: int = 7
    quote_latency_ms: tuple[int, int] = (0, 0)
    quote_timeout_rate: float = 0.0
    rpc_error_rate: float = 0.0
    quote_ttl_seconds: float = 10.0
    drift_bps: int = 2  # largest flow per tick, as a share of the pool's starting depth; 0: no ticks
    tick_ms: int = 1_000
    slot_ms: int = 400
    max_catch_up_ticks: int = 30  # after a quiet spell, older ticks are skipped, not replayed


@dataclass(frozen=True)
class PoolSpec:
    """What never changes about a pool: where it is, what it trades, where it started."""

    venue: str
    pool_id: str
    token_x: Token
    token_y: Token
    target: Decimal  # starting spot price, token_y base units per token_x base unit
    depth_x: int
    params: DlmmParameters | None = None  # Meteora only
    open_ms: int = 0  # since genesis: a launched pool refuses every trade before

    def token(self, mint: str) -> Token:
        if mint == self.token_x.mint:
            return self.token_x
        if mint == self.token_y.mint:
            return self.token_y
        raise NoRouteError(f"{self.venue} pool {self.pool_id} does not trade {mint}")


@dataclass
class ClusterClock:
    """The cluster's shared clock: genesis (epoch ms), how far it has settled (ms since
    genesis), the last market tick applied, and how many swaps transactions have landed."""

    genesis_ms: int
    processed_ms: int = 0
    tick: int = 0
    swaps: int = 0

    def dump(self) -> str:
        return json.dumps({"g": self.genesis_ms, "ms": self.processed_ms, "t": self.tick, "n": self.swaps},
                          separators=(",", ":"))

    @classmethod
    def load(cls, raw: str) -> ClusterClock:
        d = json.loads(raw)
        return cls(int(d["g"]), int(d["ms"]), int(d["t"]), int(d["n"]))


@dataclass(frozen=True)
class Scheduled:
    """Something due on the timeline at ``at_ms``: ``land`` applies it to the pools it names."""

    at_ms: int
    key: str  # orders events due at the same ms
    pool_ids: tuple[str, ...]
    land: Callable[[PoolBook], list[PoolChange]]


class TimelineParticipant(Protocol):
    """Work scheduled on the market's timeline (the chain's transactions): members of the
    sorted set ``queue_key``, scored by the ms since genesis at which they are due."""

    queue_key: str

    def scheduled(self, txn: StateTxn, due: list[tuple[str, int]]) -> list[Scheduled]: ...


class PoolBook:
    """The pools one transaction attempt reads and changes (written at the end).

    A pool is written only together with the cluster's clock (``flush``), in a transaction that
    watched the clock first: the clock alone orders every change of every pool, so the pools
    themselves need no WATCH (one round trip less per change).
    """

    def __init__(self, market: SimulatedMarket, txn: StateTxn) -> None:
        self._market = market
        self._txn = txn
        self._pools: dict[str, Pool] = {}
        self._dirty: set[str] = set()

    def load(self, pool_ids: Sequence[str]) -> None:
        missing = [p for p in dict.fromkeys(pool_ids) if p not in self._pools]
        if missing:
            keys = [pool_key(p) for p in missing]
            for pool_id, raw in zip(missing, self._txn.get(*keys), strict=True):
                self._pools[pool_id] = self._market.decode(pool_id, raw)

    def pool(self, pool_id: str) -> Pool:
        self.load([pool_id])
        return self._pools[pool_id]

    def touch(self, pool_id: str) -> None:
        self._dirty.add(pool_id)

    def savepoint(self, pool_ids: Sequence[str]) -> dict[str, str]:
        self.load(pool_ids)
        return {p: self._market.encode(self._pools[p]) for p in pool_ids}

    def rollback(self, saved: dict[str, str]) -> None:
        for pool_id, raw in saved.items():
            self._pools[pool_id] = self._market.decode(pool_id, raw)

    def flush(self, clock: ClusterClock) -> None:
        """Write the pools changed, and the clock (watched by the caller) with them."""
        for pool_id in sorted(self._dirty):
            self._txn.set(pool_key(pool_id), self._market.encode(self._pools[pool_id]), POOL_TTL_SECONDS)
        self._txn.set(CLOCK_KEY, clock.dump(), CLOCK_TTL_SECONDS)


def _tick_seed(seed: int, tick: int, pool_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{tick}:{pool_id}".encode()).digest()[:8], "big")


class SimulatedVenue:
    """One venue of the market; implements the ``Venue`` protocol."""

    def __init__(self, name: str, market: SimulatedMarket) -> None:
        self.name = name
        self._market = market
        self.pool_ids: dict[frozenset[str], str] = {}

    def spec_for(self, token_in: Token, token_out: Token) -> PoolSpec:
        key = frozenset({token_in.mint, token_out.mint})
        pool_id = self.pool_ids.get(key)
        if pool_id is None and token_in != token_out and self._market.refresh_launches():
            pool_id = self.pool_ids.get(key)
        if pool_id is None or token_in == token_out:
            raise NoRouteError(f"{self.name} has no {token_in.symbol}/{token_out.symbol} pool")
        return self._market.specs[pool_id]

    def quote(self, token_in: Token, token_out: Token, amount_in: int) -> Quote:
        if amount_in <= 0:
            raise ValidationError("amount must be positive", field="amount")
        spec = self.spec_for(token_in, token_out)
        self._market.require_open(spec, self._market.elapsed_ms())
        delay = self._market.network_delay(self.name)  # the request's way there
        result = self._market.simulate(spec.pool_id, token_in, amount_in)
        quote = Quote(
            venue=self.name, pool_id=spec.pool_id, token_in=token_in, token_out=token_out,
            amount_in=amount_in, amount_out=result.amount_out, fee=result.fee,
            price_impact_bps=result.price_impact_bps,
            expires_at=self._market.clock.now() + self._market.settings.quote_ttl_seconds,
        )
        self._market.clock.sleep(delay)  # and the answer's way back
        return quote

    def swap(self, quote: Quote, min_amount_out: int) -> Fill:
        """A trade straight into the pool, now, outside any transaction of the chain."""
        self.spec_for(quote.token_in, quote.token_out)
        return self._market.swap_now(quote, min_amount_out)

    def snapshot(self, token_a: Token, token_b: Token) -> PoolSnapshot:
        """The pair's pool as it is now, read once (one request, with the venue's latency)."""
        spec = self.spec_for(token_a, token_b)
        delay = self._market.network_delay(self.name)
        [raw] = self._market.read([pool_key(spec.pool_id)], settled=False)
        snapshot = PoolSnapshot(self.name, spec, self._market.decode(spec.pool_id, raw), self._market.elapsed_ms(),
                                self._market.clock.now() + self._market.settings.quote_ttl_seconds)
        self._market.clock.sleep(delay)
        return snapshot


class PoolSnapshot:
    """One pool as read once (implements ``VenueSnapshot``): quotes against it change nothing."""

    def __init__(self, venue: str, spec: PoolSpec, pool: Pool, at_ms: int, expires_at: float) -> None:
        self.venue = venue
        self.spec = spec
        self._pool = pool
        self._at = at_ms / 1000
        self._expires_at = expires_at

    def marginal_price(self, token_in: Token, token_out: Token) -> Decimal:
        spec_in, spec_out = self.spec.token(token_in.mint), self.spec.token(token_out.mint)
        base: Decimal = self._pool.spot_price(spec_in)
        return base.scaleb(spec_in.decimals - spec_out.decimals)

    def quote(self, token_in: Token, token_out: Token, amount_in: int) -> Quote:
        if amount_in <= 0:
            raise ValidationError("amount must be positive", field="amount")
        self.spec.token(token_out.mint)
        result = self._pool.simulate(self.spec.token(token_in.mint), amount_in, self._at)
        return Quote(venue=self.venue, pool_id=self.spec.pool_id, token_in=token_in, token_out=token_out,
                     amount_in=amount_in, amount_out=result.amount_out, fee=result.fee,
                     price_impact_bps=result.price_impact_bps, expires_at=self._expires_at)


class SimulatedMarket:
    def __init__(self, settings: MarketSettings | None = None, clock: Clock | None = None, *,
                 state: SimState | None = None,
                 on_change: Callable[[Sequence[PoolChange]], None] | None = None,
                 on_launch: Callable[[PoolLaunch], None] | None = None) -> None:
        from ..domain.clock import SystemClock

        self.settings = settings or MarketSettings()
        self.clock: Clock = clock or SystemClock()
        self.state: SimState = state or InMemorySimState()
        self._on_change = on_change
        self._on_launch = on_launch
        self._layout_rng = random.Random(self.settings.seed)
        self._fault_rng = random.Random(self.settings.seed * 104_729 + 2)
        self._fault_lock = threading.Lock()
        self._advance_lock = threading.Lock()  # threads of one process take turns; processes race
        self._participants: list[TimelineParticipant] = []
        self._genesis_ms: int | None = None
        self.venues: dict[str, SimulatedVenue] = {name: SimulatedVenue(name, self) for name in VENUES}
        self.specs: dict[str, PoolSpec] = {}
        self.listed: list[str] = []  # the seeded pools of the listed tokens, which market flow moves
        self.launches: dict[str, Launch] = {}  # mint -> launch, as far as this process has seen
        self._launch_lock = threading.Lock()
        self._initial: dict[str, str] = {}  # pool id -> its encoded starting state
        self._build()
        self.listed = list(self.specs)

    # -- construction ----------------------------------------------------------------------------
    def _pool_id(self, venue: str, x: Token, y: Token) -> str:
        digest = hashlib.sha256(f"{venue}:{x.mint}:{y.mint}:{self.settings.seed}".encode()).digest()
        return b58encode(digest)

    def _build(self) -> None:
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
            raydium = RaydiumPool(r_id, x, y, depth_x, int(depth_x * r_price))
            self._add(PoolSpec("raydium", r_id, x, y, r_price, depth_x), raydium, key)
            # Meteora
            m_price = ref * (1 - sign * spread / 2)
            m_id = self._pool_id("meteora", x, y)
            params = DlmmParameters(bin_step=1, base_factor=10_000) if stable else DlmmParameters()
            meteora = DlmmPool.seeded(m_id, x, y, m_price, depth_x // BINS_EACH_SIDE, BINS_EACH_SIDE, params, 0.0)
            self._add(PoolSpec("meteora", m_id, x, y, meteora.bin_price(meteora.active_id), depth_x, params),
                      meteora, key)

    def _add(self, spec: PoolSpec, pool: Pool, key: frozenset[str]) -> None:
        self.specs[spec.pool_id] = spec
        self._initial[spec.pool_id] = self.encode(pool)
        self.venues[spec.venue].pool_ids[key] = spec.pool_id

    # -- launches: tokens and pools created while the cluster runs ---------------------------------
    def launch(self, terms: LaunchTerms, *, nonce: bytes) -> Launch:
        """Mint a token and create its pool, paired with SOL, opening ``terms.open_in_slots``
        slots from now. ``nonce`` makes the mint (random bytes from the caller's entropy)."""
        if terms.venue not in self.venues:
            raise ValidationError(f"unknown venue {terms.venue!r}; venues: {', '.join(VENUES)}", field="venue")
        now_ms = self.elapsed_ms()
        mint = self.mint_for(nonce)
        pool_id = b58encode(hashlib.sha256(f"{terms.venue}:{mint}:{SOL.mint}".encode()).digest())
        open_slot = self.slot_at(now_ms) + terms.open_in_slots
        launch = Launch(Token(terms.symbol, mint, terms.decimals), terms.venue, pool_id, now_ms,
                        max(now_ms, (open_slot - GENESIS_HEIGHT) * self.settings.slot_ms), terms.liquidity,
                        terms.price, terms.mint_renounced, terms.freeze_renounced, terms.lp_burned)
        if launch.token_amount <= 0:
            raise ValidationError("liquidity buys no whole base unit of the token at this price", field="liquidity")
        self._add_launch(launch)  # builds the pool first: a pool that cannot exist is refused here

        def record(txn: StateTxn) -> None:
            txn.set(launch_key(mint), launch.dump(), LAUNCH_TTL_SECONDS)
            txn.zadd(LAUNCHES_KEY, mint, launch.open_ms, LAUNCH_TTL_SECONDS)

        self.state.transaction(record)
        if self._on_launch is not None:
            try:
                self._on_launch(self.pool_launch(launch))
            except Exception:  # a listener's failure never undoes the launch
                log.exception("launch listener failed", extra={"mint": mint})
        return launch

    @staticmethod
    def mint_for(nonce: bytes) -> str:
        """The mint a launch with ``nonce`` creates (known before it launches)."""
        return b58encode(hashlib.sha256(b"mint:" + nonce).digest())

    def auto_launch(self, every_seconds: float) -> Launch | None:
        """The market's own launches, one every ``every_seconds`` (0: none), whoever asks first:
        launch ``k`` is due ``k · every_seconds`` after genesis, its terms (and mint) drawn from
        (seed, k), and a transaction on ``sim:autolaunch`` lets one process make it."""
        if every_seconds <= 0:
            return None
        due = int(self.elapsed_ms() // (every_seconds * 1000))

        def claim(txn: StateTxn) -> bool:
            txn.watch(AUTO_LAUNCH_KEY)
            [raw] = txn.get(AUTO_LAUNCH_KEY)
            if raw is not None and int(raw) >= due:
                return False
            txn.set(AUTO_LAUNCH_KEY, str(due), LAUNCH_TTL_SECONDS)
            return True

        nonce = self._auto_nonce(due)
        if not self.state.transaction(claim) or self.launch_of(self.mint_for(nonce)) is not None:
            return None
        self._retire(self.mint_for(self._auto_nonce(due - AUTO_LAUNCHES_KEPT)))
        rng = random.Random(_tick_seed(self.settings.seed, due, "auto-launch"))
        symbol = f"{rng.choice(AUTO_SYMBOLS)}{due % 1000}"
        price = Decimal(rng.randint(5_000, 100_000)).scaleb(-9)  # 0.000005 to 0.0001 SOL per token
        terms = LaunchTerms(symbol, rng.choice((6, 6, 9)), "raydium" if rng.random() < 0.7 else "meteora",
                            rng.choice((5, 20, 50, 80, 150)) * 10**SOL.decimals, price, rng.randint(25, 75),
                            rng.random() < 0.85, rng.random() < 0.85, rng.random() < 0.7)
        return self.launch(terms, nonce=nonce)

    def _auto_nonce(self, index: int) -> bytes:
        return f"{self.settings.seed}:auto-launch:{index}".encode()

    def _retire(self, mint: str) -> None:
        """Delist one of the market's own launches: its record, its pool and its place in the set."""
        launch = self._learn(mint)
        if launch is None:
            return

        def delist(txn: StateTxn) -> None:
            txn.zrem(LAUNCHES_KEY, mint)
            txn.delete(launch_key(mint), pool_key(launch.pool_id))

        self.state.transaction(delist)
        self._forget_launch(mint)

    def _forget_launch(self, mint: str) -> None:
        with self._launch_lock:
            launch = self.launches.pop(mint, None)
            if launch is None:
                return
            self.specs.pop(launch.pool_id, None)
            self._initial.pop(launch.pool_id, None)
            for venue in self.venues.values():
                venue.pool_ids.pop(frozenset({mint, SOL.mint}), None)

    def _learn(self, mint: str) -> Launch | None:
        """``mint``'s launch: known here, else its record read (one round trip, not every launch)."""
        launch = self.launches.get(mint)
        if launch is not None:
            return launch
        [raw], _ = self.state.read([launch_key(mint)])
        if raw is None:
            return None
        self._add_launch(Launch.load(raw))
        return self.launches.get(mint)

    # -- what the chain tells of a launch (the ``Launches`` port) ----------------------------------
    @property
    def slot_ms(self) -> int:
        return self.settings.slot_ms

    def slot(self) -> int:
        return self.block_height()

    def pool_launch(self, launch: Launch) -> PoolLaunch:
        return PoolLaunch(launch.token, launch.pool_id, launch.venue, self.slot_at(launch.open_ms),
                          self.genesis_ms() + launch.open_ms, launch.mint_renounced, launch.freeze_renounced,
                          launch.lp_burned)

    def launch_of(self, mint: str) -> PoolLaunch | None:
        """``mint``'s launch, as any process made it; ``None`` while nobody has launched it."""
        launch = self._learn(mint)
        return None if launch is None else self.pool_launch(launch)

    def pool_lamports(self, launch: PoolLaunch) -> int:
        """The SOL (lamports) the launched pool holds for trading now."""
        spec = self._spec(launch.pool_id)
        [raw] = self.read([pool_key(spec.pool_id)], settled=False)
        reserve_x, reserve_y = self.decode(spec.pool_id, raw).reserves()
        return reserve_y if spec.token_y.is_sol else reserve_x

    def refresh_launches(self) -> bool:
        """Learn the launches other processes made; True if there was one this process did not know."""
        listed: set[str] = set()

        def look(txn: StateTxn) -> list[str | None]:
            [members] = txn.read([], [(LAUNCHES_KEY, 2**62)])[1]
            listed.update(mint for mint, _ in members)
            unknown = [mint for mint, _ in members if mint not in self.launches]
            return txn.get(*[launch_key(m) for m in unknown]) if unknown else []

        found = [Launch.load(raw) for raw in self.state.transaction(look) if raw is not None]
        for launch in found:
            self._add_launch(launch)
        # Delisted by another process (the market's own old launches); not one this process is recording.
        settled = self.elapsed_ms() - _FORGET_AFTER_MS
        for mint in [m for m, launch in list(self.launches.items()) if m not in listed and launch.created_ms < settled]:
            self._forget_launch(mint)
        return bool(found)

    def _add_launch(self, launch: Launch) -> None:
        with self._launch_lock:
            if launch.token.mint in self.launches:
                return
            token, target = launch.token, launch.target
            key = frozenset({token.mint, SOL.mint})
            if launch.venue == "raydium":
                pool: Pool = RaydiumPool(launch.pool_id, token, SOL, launch.token_amount, launch.liquidity)
                spec = PoolSpec("raydium", launch.pool_id, token, SOL, target, launch.token_amount,
                                open_ms=launch.open_ms)
            else:
                params = DlmmParameters()
                per_bin = max(1, launch.token_amount // BINS_EACH_SIDE)
                dlmm = DlmmPool.seeded(launch.pool_id, token, SOL, target, per_bin, BINS_EACH_SIDE, params,
                                       launch.open_ms / 1000)
                pool = dlmm
                spec = PoolSpec("meteora", launch.pool_id, token, SOL, dlmm.bin_price(dlmm.active_id),
                                launch.token_amount, params, open_ms=launch.open_ms)
            self._add(spec, pool, key)
            self.launches[token.mint] = launch

    def token(self, text: str, *, field: str = "token") -> Token:
        """A listed token by symbol or mint, else a launched one by mint."""
        try:
            return listed_token(text, field=field)
        except UnknownTokenError:
            launch = self._learn(text)
            if launch is None:
                raise
            return launch.token

    def is_open(self, launch: Launch) -> bool:
        """Whether ``launch``'s pool trades now."""
        return self.elapsed_ms() >= launch.open_ms

    def markets(self) -> list[tuple[PoolSpec, Pool, Launch | None]]:
        """Every pool as it is now, with its launch (None for the seeded pools of listed tokens)."""
        self.refresh_launches()
        specs = list(self.specs.values())
        raws = self.read([pool_key(s.pool_id) for s in specs], settled=False)
        launched = {launch.pool_id: launch for launch in self.launches.values()}
        return [(s, self.decode(s.pool_id, raw), launched.get(s.pool_id)) for s, raw in zip(specs, raws, strict=True)]

    # -- pool states: compact JSON of integers -----------------------------------------------------
    def encode(self, pool: Pool) -> str:
        if isinstance(pool, RaydiumPool):
            body: dict[str, object] = {"r": [pool.reserve_x, pool.reserve_y], "f": [pool.fees_x, pool.fees_y]}
        elif isinstance(pool, DlmmPool):
            low, high = min(pool.bins), max(pool.bins)
            flat: list[int] = []
            for bin_id in range(low, high + 1):
                flat.extend(pool.bins.get(bin_id, (0, 0)))
            v = pool.volatility
            body = {"a": pool.active_id, "lo": low, "b": flat, "f": [pool.fees_x, pool.fees_y],
                    "v": [v.accumulator, v.reference, v.index_reference, round(v.last_update * 1000)]}
        else:
            raise TypeError(f"no encoding for {type(pool).__name__}")
        return json.dumps(body, separators=(",", ":"))

    def decode(self, pool_id: str, raw: str | None) -> Pool:
        """The pool from its stored state; a pool never written yet is at its seeded start."""
        spec = self._spec(pool_id)
        d = json.loads(raw if raw is not None else self._initial[pool_id])
        if spec.params is None:
            (rx, ry), (fx, fy) = d["r"], d["f"]
            return RaydiumPool(pool_id, spec.token_x, spec.token_y, int(rx), int(ry), int(fx), int(fy))
        flat, low = d["b"], int(d["lo"])
        bins = {low + i // 2: (int(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)}
        acc, ref, index_ref, last_ms = d["v"]
        fx, fy = d["f"]
        return DlmmPool(pool_id, spec.token_x, spec.token_y, int(d["a"]), bins, spec.params,
                        Volatility(int(acc), int(ref), int(index_ref), int(last_ms) / 1000), int(fx), int(fy))

    # -- queries ---------------------------------------------------------------------------------
    def venue(self, name: str) -> SimulatedVenue:
        try:
            return self.venues[name]
        except KeyError:
            raise NoRouteError(f"unknown venue {name!r}") from None

    def pairs(self) -> list[tuple[Token, Token]]:
        return [(s.token_x, s.token_y) for s in self.specs.values() if s.venue == VENUES[0]]

    def pair_of(self, pool_id: str) -> tuple[Token, Token]:
        """The two tokens a pool trades."""
        spec = self._spec(pool_id)
        return spec.token_x, spec.token_y

    def has_pair(self, token_in: Token, token_out: Token) -> bool:
        key = frozenset({token_in.mint, token_out.mint})
        return token_in != token_out and any(key in v.pool_ids for v in self.venues.values())

    def pool(self, pool_id: str) -> Pool:
        """The pool as it is now (everything due applied)."""
        [raw] = self.read([pool_key(pool_id)])
        return self.decode(pool_id, raw)

    def simulate(self, pool_id: str, token_in: Token, amount_in: int) -> SwapResult:
        [raw] = self.read([pool_key(pool_id)], settled=False)
        return self.decode(pool_id, raw).simulate(token_in, amount_in, self.elapsed_ms() / 1000)

    def landed_swaps(self) -> int:
        """Swaps that transactions have landed, in every process."""
        [raw] = self.read([CLOCK_KEY])
        return ClusterClock.load(raw).swaps if raw else 0

    # -- the cluster's clock ---------------------------------------------------------------------
    def genesis_ms(self) -> int:
        if self._genesis_ms is None:
            created = ClusterClock(round(self.clock.now() * 1000))
            self._genesis_ms = ClusterClock.load(self.state.create(CLOCK_KEY, created.dump(),
                                                                   CLOCK_TTL_SECONDS)).genesis_ms
        return self._genesis_ms

    def elapsed_ms(self) -> int:
        """Milliseconds since the cluster's genesis, on this process's clock."""
        return round(self.clock.now() * 1000) - self.genesis_ms()

    def slot_at(self, elapsed_ms: int) -> int:
        return GENESIS_HEIGHT + elapsed_ms // self.settings.slot_ms

    def block_height(self) -> int:
        return self.slot_at(self.elapsed_ms())

    # -- the timeline ----------------------------------------------------------------------------
    def attach(self, participant: TimelineParticipant) -> None:
        """Put ``participant``'s scheduled work on this timeline (the chain does, once)."""
        self._participants.append(participant)

    def read(self, keys: Sequence[str], *, settled: bool = True) -> list[str | None]:
        """The values of ``keys`` once what is due by now has happened: one round trip when
        nothing is due, else ``advance`` first.

        ``settled`` (status reads) also waits for the current slot to be settled: a status read
        after that can trust that nothing sent later lands in an earlier slot (see the chain).
        Without it (quotes, preflight), ticks and landings due are applied unless another thread
        of this process is applying them right now; then the values are read as they are.
        """
        clock, values, heads = self._look(keys)
        if not self._is_due(clock, heads, self.elapsed_ms(), settled):
            return values
        changes: list[PoolChange] = []
        if not self._advance_lock.acquire(blocking=False):
            if not settled:
                return values  # another thread of this process is advancing right now
            self._advance_lock.acquire()
            clock, values, heads = self._look(keys)  # what it did may be all that was due
            if not self._is_due(clock, heads, self.elapsed_ms(), settled):
                self._advance_lock.release()
                return values
        try:
            changes = self.state.transaction(self._advance)
            values, _ = self.state.read(keys)
        finally:
            self._advance_lock.release()
        self._publish(changes)
        return values

    def _look(self, keys: Sequence[str]) -> tuple[ClusterClock, list[str | None], list[tuple[str, int] | None]]:
        values, heads = self.state.read([CLOCK_KEY, *keys], [p.queue_key for p in self._participants])
        if values[0] is None:
            self.genesis_ms()
            values, heads = self.state.read([CLOCK_KEY, *keys], [p.queue_key for p in self._participants])
        assert values[0] is not None
        clock = ClusterClock.load(values[0])
        self._genesis_ms = clock.genesis_ms
        return clock, values[1:], heads

    def _due_tick(self, now_ms: int) -> int:
        return now_ms // self.settings.tick_ms if self.settings.drift_bps > 0 else 0

    def _is_due(self, clock: ClusterClock, heads: Sequence[tuple[str, int] | None], now_ms: int,
                settled: bool) -> bool:
        return ((settled and self.slot_at(now_ms) > self.slot_at(clock.processed_ms))
                or self._due_tick(now_ms) > clock.tick
                or any(head is not None and head[1] <= now_ms for head in heads))

    def advance(self) -> list[PoolChange]:
        """Apply everything due by now, once, in time order: market ticks and the landings of
        transactions. Returns the pool changes it made (none when another process did them)."""
        with self._advance_lock:
            changes = self.state.transaction(self._advance)
        self._publish(changes)
        return changes

    def _advance(self, txn: StateTxn) -> list[PoolChange]:
        queues = [p.queue_key for p in self._participants]
        txn.watch(CLOCK_KEY, *queues)
        now_ms = self.elapsed_ms()
        [raw], dues = txn.read([CLOCK_KEY], [(q, now_ms) for q in queues])
        clock = ClusterClock.load(raw) if raw is not None else ClusterClock(self.genesis_ms())
        if clock.genesis_ms != self._genesis_ms:  # the cluster was created anew meanwhile
            self._genesis_ms = clock.genesis_ms
            now_ms = self.elapsed_ms()
            dues = txn.read([], [(q, now_ms) for q in queues])[1]
        due_tick = max(self._due_tick(now_ms), clock.tick)
        first_tick = max(clock.tick + 1, due_tick - self.settings.max_catch_up_ticks + 1)
        events: list[tuple[int, int, str, int, Scheduled | None]] = [
            (k * self.settings.tick_ms, 0, "", k, None) for k in range(first_tick, due_tick + 1)]
        for participant, due in zip(self._participants, dues, strict=True):
            for scheduled in participant.scheduled(txn, due):
                events.append((scheduled.at_ms, 1, scheduled.key, 0, scheduled))
        if not events and self.slot_at(now_ms) <= self.slot_at(clock.processed_ms):
            return []  # someone else got here first
        book = PoolBook(self, txn)
        ticks = any(item is None for *_, item in events)
        book.load(self.listed if ticks else [p for *_, item in events if item for p in item.pool_ids])
        changes: list[PoolChange] = []
        for _at, _kind, _key, tick, item in sorted(events, key=lambda e: (e[0], e[1], e[2])):
            if item is None:
                changes.extend(self._tick(book, tick))
            else:
                landed = item.land(book)
                clock.swaps += sum(1 for change in landed if change.cause == "swap")
                changes.extend(landed)
        clock.tick = due_tick
        clock.processed_ms = max(clock.processed_ms, now_ms)
        book.flush(clock)
        return changes

    def _tick(self, book: PoolBook, tick: int) -> list[PoolChange]:
        """Tick ``tick`` of market flow: every pool trades a little, more likely back towards its
        starting price the further it has wandered. Random draws depend on (seed, tick, pool)."""
        at_ms = tick * self.settings.tick_ms
        slot = self.slot_at(at_ms)
        changes = []
        for pool_id in self.listed:  # launched pools move by trades alone
            spec = self.specs[pool_id]
            rng = random.Random(_tick_seed(self.settings.seed, tick, spec.pool_id))
            pool = book.pool(spec.pool_id)
            spot: Decimal = pool.spot_price(pool.token_x)
            deviation_bps = int((spot - spec.target) * 10_000 / spec.target)
            towards = rng.randrange(10_000) < 5_000 + min(4_000, abs(deviation_bps) * 20)
            sell_x = (deviation_bps > 0) == towards
            size_x = spec.depth_x * rng.randrange(self.settings.drift_bps * 10_000) // 100_000_000
            if size_x <= 0:
                continue
            token_in = pool.token_x if sell_x else pool.token_y
            size = size_x if sell_x else int(size_x * spot)
            try:
                pool.commit(pool.simulate(token_in, max(size, 1), at_ms / 1000), at_ms / 1000)
            except DomainError:  # flow that cannot trade simply does not happen
                continue
            book.touch(spec.pool_id)
            changes.append(PoolChange(spec.venue, spec.pool_id, slot, "tick"))
        return changes

    # -- swaps: the one place a trade changes a pool ----------------------------------------------
    def swap_in(self, book: PoolBook, pool_id: str, mint_in: str, amount_in: int, min_amount_out: int,
                at_ms: int) -> Fill:
        """Trade ``amount_in`` of ``mint_in`` in the pool, in ``book``; ``SlippageExceededError``
        (pool untouched) when the output would fall below the minimum."""
        spec = self._spec(pool_id)
        self.require_open(spec, at_ms)
        pool = book.pool(pool_id)
        result = self._checked(spec, pool, mint_in, amount_in, min_amount_out, at_ms)
        pool.commit(result, at_ms / 1000)
        book.touch(pool_id)
        return Fill(spec.venue, pool_id, amount_in, result.amount_out, result.fee)

    def preflight(self, pool_id: str, raw: str | None, mint_in: str, amount_in: int, min_amount_out: int,
                  at_ms: int) -> SwapResult:
        """What ``swap_in`` would do to the pool in state ``raw``, without doing it."""
        spec = self._spec(pool_id)
        self.require_open(spec, at_ms)
        return self._checked(spec, self.decode(pool_id, raw), mint_in, amount_in, min_amount_out, at_ms)

    def _spec(self, pool_id: str) -> PoolSpec:
        spec = self.specs.get(pool_id)
        if spec is None and self.refresh_launches():
            spec = self.specs.get(pool_id)
        if spec is None:
            raise NoRouteError(f"unknown pool {pool_id}")
        return spec

    def require_open(self, spec: PoolSpec, at_ms: int) -> None:
        if at_ms < spec.open_ms:
            raise NoRouteError(f"{spec.venue} pool {spec.pool_id} opens at slot {self.slot_at(spec.open_ms)}")

    @staticmethod
    def _checked(spec: PoolSpec, pool: Pool, mint_in: str, amount_in: int, min_amount_out: int,
                 at_ms: int) -> SwapResult:
        token_in = spec.token(mint_in)
        result = pool.simulate(token_in, amount_in, at_ms / 1000)
        if result.amount_out < min_amount_out:
            token_out = spec.token_y if token_in == spec.token_x else spec.token_x
            raise SlippageExceededError(
                f"the swap on {spec.venue} would return {to_decimal_string(result.amount_out, token_out)} "
                f"{token_out.symbol}, less than the minimum of {to_decimal_string(min_amount_out, token_out)} "
                f"(slippage exceeded)")
        return result

    def swap_now(self, quote: Quote, min_amount_out: int) -> Fill:
        """A trade straight into the pool (another trader's), atomic across processes."""
        self.read([], settled=False)  # what is due happens first

        def trade(txn: StateTxn) -> tuple[Fill, int]:
            txn.watch(CLOCK_KEY)
            [raw], _ = txn.read([CLOCK_KEY])
            clock = ClusterClock.load(raw) if raw is not None else ClusterClock(self.genesis_ms())
            at_ms = self.elapsed_ms()
            book = PoolBook(self, txn)
            fill = self.swap_in(book, quote.pool_id, quote.token_in.mint, quote.amount_in, min_amount_out, at_ms)
            book.flush(clock)
            return fill, at_ms

        fill, at_ms = self.state.transaction(trade)
        self._publish([PoolChange(fill.venue, fill.pool_id, self.slot_at(at_ms), "swap")])
        return fill

    def _publish(self, changes: Sequence[PoolChange]) -> None:
        if changes and self._on_change is not None:
            try:
                self._on_change(changes)
            except Exception:  # a listener's failure never undoes what the cluster did
                log.exception("pool change listener failed", extra={"changes": len(changes)})

    # -- faults ----------------------------------------------------------------------------------
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
