"""The Lambdas of orders that wait: the matcher on the market events queue, and two schedules,
the market's tick and the expiry sweep.

The matcher reads the whole batch of market events at once (several swaps on one pair become one
look at it) and fails the whole batch on an error of its own, which SQS delivers again: an event
only says "look again", so handling one twice costs a look and nothing else.

On AWS each schedule runs at EventBridge's least rate, once a minute. The local stack runs them
at a rate a setting shortens (``MARKET_TICK_SECONDS``, ``EXPIRY_SWEEP_SECONDS``: see
``devstack/schedule_poller.py``), so that a limit order near the price triggers within seconds.
"""

from __future__ import annotations

import json
from typing import Any

from chalice.app import Blueprint, CloudWatchEvent, Rate, SQSEvent

from ..config import get_settings
from ..domain import OrderType
from ..execution.ports import WaitingOrder
from ..execution.triggers import LaunchEvent, MarketEvent, parse_event, resend_openings, sweep
from ..logs import logger as log
from .services import get_services

__all__ = ["MATCHER_BATCH_SIZE", "MATCHER_CONCURRENCY", "bp", "expiry_sweep", "market_tick", "match_market_events"]

bp = Blueprint(__name__)
_settings = get_settings()

MATCHER_BATCH_SIZE = 10
# Two matchers at a time (the least SQS allows): more would mostly race each other for the same
# orders, which the conditional write settles but the quotes cost.
MATCHER_CONCURRENCY = 2


@bp.on_sqs_message(queue=_settings.market_events_queue, batch_size=MATCHER_BATCH_SIZE,
                   maximum_concurrency=MATCHER_CONCURRENCY)
def match_market_events(event: SQSEvent) -> dict[str, Any]:
    services = get_services().warm()
    events: list[MarketEvent | LaunchEvent] = []
    for record in event:
        try:
            events.append(parse_event(json.loads(record.body)))
        except (ValueError, KeyError, TypeError):
            log.error("malformed market event dropped", extra={"body": record.body[:200]})
    result = services.matcher.handle(events)
    if result.triggered or result.rebuilt is not None:
        log.info("market events matched", extra={"events": len(events), "pairs": result.pairs,
                                                 "candidates": result.candidates, "triggered": len(result.triggered),
                                                 "rebuilt": result.rebuilt})
    return {"batchItemFailures": []}


@bp.schedule(Rate(1, unit=Rate.MINUTES), description="The simulated market's random walk, its launches, and "
             "their events")
def market_tick(event: CloudWatchEvent) -> None:
    """Moves the shared simulated market to now (its seeded random walk, and any transaction due
    to land); the pools that moved go out as market events where orders wait on them. Every
    ``LAUNCH_EVERY_SECONDS`` the market also launches a token of its own, so that there is
    something to snipe (its opening goes out where sniper orders watch its mint)."""
    services = get_services().warm()
    changes = services.market.advance()
    launched = services.market.auto_launch(services.settings.launch_every_seconds)
    if launched is not None:
        log.info("the market launched a token", extra={"mint": launched.token.mint, "symbol": launched.token.symbol,
                                                       "venue": launched.venue, "pool": launched.pool_id,
                                                       "openSlot": services.market.slot_at(launched.open_ms)})
    log.debug("market tick", extra={"poolsChanged": len(changes)})


@bp.schedule(Rate(1, unit=Rate.MINUTES), description="Ends overdue waiting orders expired")
def expiry_sweep(event: CloudWatchEvent) -> None:
    services = get_services()

    def expired(order: WaitingOrder) -> None:
        try:
            services.state.remove_active(order.client_id, order.order_id)
        except Exception:  # the active set is a cache: its next read drops a finished order
            log.exception("could not drop an expired order from the active set",
                          extra={"orderId": order.order_id, "clientId": order.client_id})

    services.matcher.ensure_book()  # a book Redis lost is back within one sweep, event or not
    result = sweep(services.orders, services.waiting_books, services.queue, services.clock, on_expired=expired,
                   order_types=(OrderType.LIMIT.value, OrderType.SNIPER.value))
    # An opening no matcher acted on (its message expired, or the book was lost with it) goes again.
    openings = resend_openings(services.orders.waiting(OrderType.SNIPER.value), services.market,
                               services.market_events, services.clock)
    if result.expired or result.resent or openings:
        log.info("expiry sweep", extra={"expired": result.expired, "resent": result.resent, "openings": openings})
