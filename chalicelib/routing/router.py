"""The router: ask every venue at once, keep the live quotes, take the best net output.

Net output is what the trader receives: each venue's quote already has its fee and price
impact taken out, so comparing ``amount_out`` compares net prices. The minimum accepted on
chain is ``amount_out · (10_000 − slippageBps) // 10_000``. Each decision is logged as one
JSON line with every quote, the rejections, the winner and its margin over the runner-up.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

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
from .venue import Venue

__all__ = ["Router", "min_amount_out"]

QUOTE_TIMEOUT_SECONDS = 2.0
MAX_PRICE_IMPACT_BPS = 3_000  # a quote that moves the pool more than 30 % is not a fill, it is a mistake


def min_amount_out(amount_out: int, slippage_bps: int) -> int:
    """The least the trader accepts: ``amount_out · (1 − slippageBps/10⁴)``, rounded down."""
    if not 0 <= slippage_bps <= 10_000:
        raise ValidationError("slippageBps must be between 0 and 10000", field="slippageBps")
    return amount_out * (10_000 - slippage_bps) // 10_000


class Router:
    def __init__(self, venues: Sequence[Venue], clock: Clock, logger: logging.Logger | None = None,
                 max_workers: int = 4, timeout_seconds: float = QUOTE_TIMEOUT_SECONDS,
                 max_price_impact_bps: int = MAX_PRICE_IMPACT_BPS) -> None:
        self._venues = list(venues)
        self._clock = clock
        self._log = logger or logging.getLogger("order_engine.router")
        self._max_workers = max_workers
        self._timeout = timeout_seconds
        self._max_impact = max_price_impact_bps

    def quotes(self, token_in: Token, token_out: Token, amount_in: int) -> tuple[list[Quote], list[dict[str, Any]]]:
        """Every usable quote, best first, and why the others were dropped."""
        if token_in == token_out:
            raise ValidationError("tokenIn and tokenOut must differ", field="tokenOut")
        if amount_in <= 0:
            raise ValidationError("amount must be positive", field="amount")
        results: list[tuple[Venue, Quote | DomainError]] = []
        if len(self._venues) == 1:
            results.append((self._venues[0], self._ask(self._venues[0], token_in, token_out, amount_in)))
        else:
            pool = ThreadPoolExecutor(max_workers=min(self._max_workers, len(self._venues)),
                                      thread_name_prefix="quote")
            try:
                futures = {pool.submit(self._ask, v, token_in, token_out, amount_in): v for v in self._venues}
                done, _ = wait(futures, timeout=self._timeout)
                for future, venue in futures.items():
                    if future in done:
                        results.append((venue, future.result()))
                    else:
                        results.append((venue, QuoteTimeoutError(f"{venue.name} gave no quote within "
                                                                 f"{self._timeout:g}s")))
            finally:
                pool.shutdown(wait=False, cancel_futures=True)
        now = self._clock.now()
        quotes: list[Quote] = []
        rejected: list[dict[str, Any]] = []
        for venue, result in results:
            if isinstance(result, Quote):
                if result.expires_at <= now:
                    rejected.append({"venue": venue.name, "code": "quote_expired",
                                     "message": "the quote expired before routing finished"})
                elif result.price_impact_bps > self._max_impact:
                    rejected.append({"venue": venue.name, "code": InsufficientLiquidityError.code,
                                     "message": f"price impact {result.price_impact_bps} bps is above the "
                                                f"{self._max_impact} bps limit"})
                else:
                    quotes.append(result)
            else:
                rejected.append({"venue": venue.name, "code": result.code, "message": result.message})
        quotes.sort(key=lambda q: (-q.amount_out, q.venue))
        return quotes, rejected

    @staticmethod
    def _ask(venue: Venue, token_in: Token, token_out: Token, amount_in: int) -> Quote | DomainError:
        try:
            return venue.quote(token_in, token_out, amount_in)
        except DomainError as exc:
            return exc

    def route(self, token_in: Token, token_out: Token, amount_in: int, slippage_bps: int) -> Route:
        quotes, rejected = self.quotes(token_in, token_out, amount_in)
        if not quotes:
            reasons = "; ".join(f"{r['venue']}: {r['message']}" for r in rejected) or "no venue"
            if rejected and all(r["code"] == InsufficientLiquidityError.code for r in rejected):
                raise InsufficientLiquidityError(f"no venue can fill this order ({reasons})")
            raise NoRouteError(f"no venue quoted {token_in.symbol}->{token_out.symbol} ({reasons})")
        route = self.pick(quotes, rejected, slippage_bps)
        self._log.info(json.dumps(self.decision(route, amount_in)))
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
        """The routing decision as one structured log record."""
        best = route.legs[0].quote
        runner_up = route.quotes[1] if len(route.quotes) > 1 else None
        margin = ((best.amount_out - runner_up.amount_out) * 10_000 // runner_up.amount_out
                  if runner_up and runner_up.amount_out else None)
        return {
            "msg": "route",
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
