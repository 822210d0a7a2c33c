"""The order state machine, as DESIGN.md §3 specifies it."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from chalicelib.domain import (
    TERMINAL,
    TRANSITIONS,
    InvalidOrderTransitionError,
    Order,
    OrderStatus,
    OrderType,
    PoolLaunch,
    SniperChecks,
    Token,
    ValidationError,
    get_token,
    new_order_id,
    parse_iso,
    unlaunched,
)

S = OrderStatus
SOL, USDC = get_token("SOL"), get_token("USDC")

# DESIGN.md §3, written out independently of the code's table.
LEGAL = {
    (S.PENDING, S.ROUTING), (S.PENDING, S.FAILED), (S.PENDING, S.WAITING), (S.PENDING, S.CANCELLED),
    (S.WAITING, S.ROUTING), (S.WAITING, S.FAILED), (S.WAITING, S.EXPIRED), (S.WAITING, S.CANCELLED),
    (S.ROUTING, S.BUILDING), (S.ROUTING, S.FAILED), (S.ROUTING, S.PENDING), (S.ROUTING, S.WAITING),
    (S.BUILDING, S.SUBMITTED), (S.BUILDING, S.FAILED), (S.BUILDING, S.PENDING),
    (S.SUBMITTED, S.CONFIRMED), (S.SUBMITTED, S.FAILED), (S.SUBMITTED, S.PENDING),
}


def order_in(status: OrderStatus) -> Order:
    order = Order.create(client_id="c1", token_in=SOL, token_out=USDC, amount_in=1_500_000_000, slippage_bps=50)
    order.status = status
    return order


def test_the_table_is_exactly_the_design() -> None:
    table = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}
    assert table == LEGAL
    assert {S.CONFIRMED, S.FAILED, S.EXPIRED, S.CANCELLED} == TERMINAL


@pytest.mark.parametrize(("src", "dst"), sorted(set(itertools.product(S, S)) - LEGAL))
def test_every_illegal_transition_raises_naming_both_states(src: OrderStatus, dst: OrderStatus) -> None:
    order = order_in(src)
    with pytest.raises(InvalidOrderTransitionError, match=f"^{src.value} -> {dst.value}$"):
        order.transition(dst)
    assert order.status is src


@pytest.mark.parametrize(("src", "dst"), sorted(LEGAL))
def test_every_legal_transition_yields_the_next_seq_and_its_data(src: OrderStatus, dst: OrderStatus) -> None:
    order = order_in(src)
    before = order.version
    event = order.transition(dst, {"k": "v"})
    assert (event.seq, event.status, event.data) == (before + 1, dst, {"k": "v"})
    assert order.version == before + 1 and order.status is dst
    assert order.history[-1] == event
    assert event.at.endswith("Z")


def test_a_new_order_is_pending_with_seq_one() -> None:
    order = order_in(S.PENDING)
    assert [(e.seq, e.status) for e in order.history] == [(1, S.PENDING)]


def test_the_happy_path_numbers_events_one_to_five() -> None:
    order = order_in(S.PENDING)
    for status in (S.ROUTING, S.BUILDING, S.SUBMITTED, S.CONFIRMED):
        order.transition(status)
    assert [e.seq for e in order.history] == [1, 2, 3, 4, 5]
    assert order.is_terminal
    with pytest.raises(InvalidOrderTransitionError, match="confirmed -> routing"):
        order.transition(S.ROUTING)


def test_event_message_has_api_shape() -> None:
    order = order_in(S.PENDING)
    msg = order.transition(S.ROUTING, {"quotes": []}).to_message()
    assert set(msg) == {"type", "orderId", "status", "seq", "at", "data"}
    assert msg["type"] == "order.status" and msg["seq"] == 2


MINT = "7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU"


def sniper_order(max_price: str | None = "0.00002", token_in: Token = SOL, delay_slots: int = 0,
                 token_out: Token | None = None) -> Order:
    return Order.create(client_id="c", token_in=token_in, token_out=token_out or unlaunched(MINT),
                        amount_in=500_000_000, slippage_bps=500, order_type=OrderType.SNIPER, max_price=max_price,
                        delay_slots=delay_slots, now=NOW)


def test_a_sniper_order_on_a_mint_not_launched_yet_carries_the_mint_and_its_checks_on_by_default() -> None:
    order = sniper_order("0.000020")
    assert order.max_price == "0.00002" and order.token_out.mint == MINT and not order.token_out.is_known
    assert order.checks == SniperChecks(True, True, True, None) and order.delay_slots == 0
    assert order.expires_at is not None and parse_iso(order.expires_at) == NOW + timedelta(hours=24)
    with pytest.raises(ValueError, match="not launched"):
        order.cap_out()  # its decimals are learnt when it launches


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"max_price": None}, "maxPrice"), ({"max_price": "0"}, "maxPrice"), ({"max_price": "1e-5"}, "maxPrice"),
    ({"token_in": USDC}, "tokenIn"), ({"delay_slots": 151}, "delaySlots"), ({"delay_slots": -1}, "delaySlots"),
])
def test_a_sniper_order_refuses_what_it_cannot_do(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        sniper_order(**kwargs)
    assert err.value.field == field


def test_a_snipers_cap_is_the_least_amount_out_at_most_max_price_rounded_up() -> None:
    token = Token("PEPE2", MINT, 6)
    # 0.5 SOL at most 0.00002 SOL per token: at least 25,000 tokens, exactly
    assert sniper_order("0.00002", token_out=token).cap_out() == 25_000 * 10**6
    # 0.5 SOL at most 0.00003: 16,666.666667 tokens, rounded up to the base unit
    assert sniper_order("0.00003", token_out=token).cap_out() == 16_666_666_667
    assert sniper_order("3", token_out=Token("NINE", MINT, 9)).cap_out() == 166_666_667


def test_the_checks_name_each_failure_and_what_was_found() -> None:
    launch = PoolLaunch(Token("PEPE2", MINT, 6), "pool", "raydium", 1, 0, mint_renounced=False,
                        freeze_renounced=False, lp_burned=False)
    failures = SniperChecks(min_liquidity=Decimal("50")).failures(launch, 12 * 10**9)
    assert [(f.check, f.found) for f in failures] == [
        ("mintRenounced", "mint authority is not renounced"),
        ("freezeRenounced", "freeze authority is not renounced"),
        ("lpBurned", "LP tokens are not burned"),
        ("minLiquidity", "pool holds 12 SOL, less than the 50 minimum"),
    ]
    assert SniperChecks(False, False, False).failures(launch, 1) == []
    renounced = PoolLaunch(launch.token, "pool", "raydium", 1, 0, True, True, True)
    assert SniperChecks(min_liquidity=Decimal("50")).failures(renounced, 50 * 10**9) == []


NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def limit_order(limit_price: str | None = "160", expires_at: datetime | None = None,
                amount_in: int = 1_500_000_000) -> Order:
    return Order.create(client_id="c", token_in=SOL, token_out=USDC, amount_in=amount_in, slippage_bps=50,
                        order_type=OrderType.LIMIT, limit_price=limit_price, expires_at=expires_at, now=NOW)


def test_a_limit_order_keeps_its_price_canonical_and_waits_a_day_by_default() -> None:
    order = limit_order("160.50")
    assert order.limit_price == "160.5" and order.limit == Decimal("160.5")
    assert order.expires_at == "2026-11-26T12:00:00.000Z"
    # 1.5 SOL at 160.5 USDC each: 240.75 USDC, in base units, exactly
    assert order.required_out() == 240_750_000


def test_the_least_amount_out_rounds_up_so_the_limit_always_holds() -> None:
    order = limit_order("0.0000001", amount_in=1)  # 1 lamport at 1e-7 USDC per SOL: 1e-16 base units
    assert order.required_out() == 1
    assert limit_order("150.0000011").required_out() == 225_000_002  # 225.00000165 USDC, rounded up


@pytest.mark.parametrize(
    ("limit_price", "expires_at", "field", "message"),
    [
        (None, None, "limitPrice", "required"),
        ("0", None, "limitPrice", "greater than zero"),
        ("0.000", None, "limitPrice", "greater than zero"),
        ("-1", None, "limitPrice", "plain decimal"),
        ("1e3", None, "limitPrice", "plain decimal"),
        ("9" * 40, None, "limitPrice", "more USDC than any balance"),
        ("160", NOW - timedelta(seconds=1), "expiresAt", "in the past"),
        ("160", NOW, "expiresAt", "in the past"),
        ("160", NOW + timedelta(days=30, seconds=1), "expiresAt", "at most 30 days"),
    ],
)
def test_a_bad_limit_order_names_its_field(limit_price: str | None, expires_at: datetime | None, field: str,
                                           message: str) -> None:
    with pytest.raises(ValidationError, match=message) as err:
        limit_order(limit_price, expires_at)
    assert err.value.field == field


def test_expiry_may_be_thirty_days_ahead_exactly() -> None:
    assert limit_order(expires_at=NOW + timedelta(days=30)).expires_at == "2026-12-25T12:00:00.000Z"


def test_only_pending_and_waiting_orders_are_cancellable() -> None:
    assert {s for s in S if order_in(s).is_cancellable} == {S.PENDING, S.WAITING}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"token_out": SOL}, "tokenOut"),
        ({"amount_in": 0}, "amount"),
        ({"amount_in": -5}, "amount"),
        ({"slippage_bps": 0}, "slippageBps"),
        ({"slippage_bps": 5001}, "slippageBps"),
    ],
)
def test_bad_orders_name_the_field(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"client_id": "c", "token_in": SOL, "token_out": USDC, "amount_in": 10,
                               "slippage_bps": 50, **kwargs}
    with pytest.raises(ValidationError) as err:
        Order.create(**args)  # type: ignore[arg-type]
    assert err.value.field == field


def test_idempotency_key_names_one_order_per_client() -> None:
    assert new_order_id("a", "k1") == new_order_id("a", "k1")
    assert new_order_id("a", "k1") != new_order_id("b", "k1")
    assert new_order_id("a", "k1") != new_order_id("a", "k2")
    assert new_order_id("a", None) != new_order_id("a", None)
    assert all(len(new_order_id("a", k)) == 30 for k in ("x", None))
