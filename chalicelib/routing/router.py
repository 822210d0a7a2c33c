"""The router: ask every venue at once, keep the live quotes, take the best net output.

Net output is what the trader receives: each venue's quote already has its fee and price
impact taken out, so comparing ``amount_out`` compares net prices. The minimum accepted on
chain is ``amount_out · (10_000 − slippageBps) // 10_000``. Each decision is logged as one
JSON line with every quote, the rejections, the winner and its margin over the runner-up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from decimal import Decimal
from typing import Any, TypeVar

from aws_lambda_powertools import Logger

from ..domain import (
    DomainError,
    InsufficientLiquidityError,
    NoRouteError,
    Quote,
    QuoteTimeoutError,
    Route,
    RouteLeg,
    Token,
    ValidationError,
)
from ..domain.clock import Clock
from ..logs import logger as service_logger
from .venue import Venue, VenueSnapshot

__all__ = ["Router", "min_amount_out"]

T = TypeVar("T")

QUOTE_TIMEOUT_SECONDS = 2.0
MAX_PRICE_IMPACT_BPS = 3_000  # a quote that moves the pool more than 30 % is not a fill, it is a mistake


def min_amount_out(amount_out: int, slippage_bps: int) -> int:
    """The least the trader accepts: ``amount_out · (1 − slippageBps/10⁴)``, rounded down."""
    if not 0 <= slippage_bps <= 10_000:
        raise ValidationError("slippageBps must be between 0 and 10000", field="slippageBps")
    return amount_out * (10_000 - slippage_bps) // 10_000


class Router:
    def __init__(self, venues: Sequence[Venue], clock: Clock, logger: Logger | None = None,
                 max_workers: int = 4, timeout_seconds: float = QUOTE_TIMEOUT_SECONDS,
                 max_price_impact_bps: int = MAX_PRICE_IMPACT_BPS) -> None:
        self._venues = list(venues)
        self._clock = clock
        self._log = logger or service_logger
        self._max_workers = max_workers
        self._timeout = timeout_seconds
        self._max_impact = max_price_impact_bps

    def quotes(self, token_in: Token, token_out: Token, amount_in: int) -> tuple[list[Quote], list[dict[str, Any]]]:
        """Every usable quote, best first, and why the others were dropped."""
        if token_in == token_out:
            raise ValidationError("tokenIn and tokenOut must differ", field="tokenOut")
        if amount_in <= 0:
            raise ValidationError("amount must be positive", field="amount")
        results = self._ask_all(lambda venue: venue.quote(token_in, token_out, amount_in), "quote")
        return self.usable([(venue.name, result) for venue, result in results])

    def usable(self, results: Sequence[tuple[str, Quote | DomainError]]) -> tuple[list[Quote], list[dict[str, Any]]]:
        """The quotes worth routing on, best first, and why the others were dropped."""
        now = self._clock.now()
        quotes: list[Quote] = []
        rejected: list[dict[str, Any]] = []
        for venue, result in results:
            if isinstance(result, Quote):
                if result.expires_at <= now:
                    rejected.append({"venue": venue, "code": "quote_expired",
                                     "message": "the quote expired before routing finished"})
                elif result.price_impact_bps > self._max_impact:
                    rejected.append({"venue": venue, "code": InsufficientLiquidityError.code,
                                     "message": f"price impact {result.price_impact_bps} bps is above the "
                                                f"{self._max_impact} bps limit"})
                else:
                    quotes.append(result)
            else:
                rejected.append({"venue": venue, "code": result.code, "message": result.message})
        quotes.sort(key=lambda q: (-q.amount_out, q.venue))
        return quotes, rejected

    def snapshots(self, token_a: Token, token_b: Token) -> list[VenueSnapshot]:
        """Every venue's pool for the pair, each read once, at once; venues that cannot answer
        (no such pool, a timeout) are left out."""
        results = self._ask_all(lambda venue: venue.snapshot(token_a, token_b), "snapshot")
        return [result for _venue, result in results if not isinstance(result, DomainError)]

    def quotes_from(self, snapshots: Sequence[VenueSnapshot], token_in: Token, token_out: Token,
                    amount_in: int) -> tuple[list[Quote], list[dict[str, Any]]]:
        """``quotes``, against pools already read: no request per quote."""
        results: list[tuple[str, Quote | DomainError]] = []
        for snapshot in snapshots:
            try:
                results.append((snapshot.venue, snapshot.quote(token_in, token_out, amount_in)))
            except DomainError as exc:
                results.append((snapshot.venue, exc))
        return self.usable(results)

    @staticmethod
    def marginal_price(snapshots: Sequence[VenueSnapshot], token_in: Token, token_out: Token) -> Decimal | None:
        """The best price any trade could get from these pools now (``None`` without a pool)."""
        prices = [s.marginal_price(token_in, token_out) for s in snapshots]
        return max(prices) if prices else None

    def _ask_all(self, ask: Callable[[Venue], T], what: str) -> list[tuple[Venue, T | DomainError]]:
        """``ask`` every venue at once; a venue that raises or misses the timeout gives its error."""
        def one(venue: Venue) -> T | DomainError:
            try:
                return ask(venue)
            except DomainError as exc:
                return exc

        if len(self._venues) == 1:
            return [(self._venues[0], one(self._venues[0]))]
        results: list[tuple[Venue, T | DomainError]] = []
        pool = ThreadPoolExecutor(max_workers=min(self._max_workers, len(self._venues)), thread_name_prefix=what)
        try:
            futures = {pool.submit(one, v): v for v in self._venues}
            done, _ = wait(futures, timeout=self._timeout)
            for future, venue in futures.items():
                if future in done:
                    results.append((venue, future.result()))
                else:
                    results.append((venue, QuoteTimeoutError(f"{venue.name} gave no {what} within "
                                                             f"{self._timeout:g}s")))
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        return results

    def route(self, token_in: Token, token_out: Token, amount_in: int, slippage_bps: int) -> Route:
        quotes, rejected = self.quotes(token_in, token_out, amount_in)
        if not quotes:
            reasons = "; ".join(f"{r['venue']}: {r['message']}" for r in rejected) or "no venue"
            if rejected and all(r["code"] == InsufficientLiquidityError.code for r in rejected):
                raise InsufficientLiquidityError(f"no venue can fill this order ({reasons})")
            raise NoRouteError(f"no venue quoted {token_in.symbol}->{token_out.symbol} ({reasons})")
        route = self.pick(quotes, rejected, slippage_bps)
        self._log.info("route", extra=self.decision(route, amount_in))
        return route

    @staticmethod
    def pick(quotes: Sequence[Quote], rejected: Sequence[dict[str, Any]], slippage_bps: int) -> Route:
        """The route from quotes already gathered (best first): the best one, with its minimum."""
        if not quotes:
            raise NoRouteError("no quote to route on")
        best = quotes[0]
        leg = RouteLeg(best, min_amount_out(best.amount_out, slippage_bps))
        return Route(legs=(leg,), quotes=tuple(quotes), wrap_sol=best.token_in.is_sol,
                     unwrap_sol=best.token_out.is_sol, rejected=tuple(rejected))

    @staticmethod
    def decision(route: Route, amount_in: int) -> dict[str, Any]:
        """The routing decision: the keys of its log line (every quote, the rejections, the winner)."""
        best = route.legs[0].quote
        runner_up = route.quotes[1] if len(route.quotes) > 1 else None
        margin = ((best.amount_out - runner_up.amount_out) * 10_000 // runner_up.amount_out
                  if runner_up and runner_up.amount_out else None)
        return {
            "tokenIn": best.token_in.symbol,
            "tokenOut": best.token_out.symbol,
            "amountIn": str(amount_in),
            "quotes": [{"venue": q.venue, "amountOut": str(q.amount_out), "fee": str(q.fee),
                        "priceImpactBps": q.price_impact_bps} for q in route.quotes],
            "rejected": list(route.rejected),
            "winner": route.venue,
            "minAmountOut": str(route.min_amount_out),
            "marginBps": margin,
        }
