"""The order state machine, as DESIGN.md §3 specifies it."""

from __future__ import annotations

import itertools

import pytest

from chalicelib.domain import (
    TERMINAL,
    TRANSITIONS,
    InvalidOrderTransitionError,
    Order,
    OrderStatus,
    OrderType,
    UnsupportedOrderTypeError,
    ValidationError,
    get_token,
    new_order_id,
)

S = OrderStatus
SOL, USDC = get_token("SOL"), get_token("USDC")

# DESIGN.md §3, written out independently of the code's table.
LEGAL = {
    (S.PENDING, S.ROUTING), (S.PENDING, S.FAILED), (S.PENDING, S.WAITING),
    (S.WAITING, S.ROUTING), (S.WAITING, S.FAILED),
    (S.ROUTING, S.BUILDING), (S.ROUTING, S.FAILED), (S.ROUTING, S.PENDING),
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
    assert {S.CONFIRMED, S.FAILED} == TERMINAL


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


@pytest.mark.parametrize("kind", [OrderType.LIMIT, OrderType.SNIPER])
def test_limit_and_sniper_are_modelled_but_rejected(kind: OrderType) -> None:
    with pytest.raises(UnsupportedOrderTypeError) as err:
        Order.create(client_id="c", token_in=SOL, token_out=USDC, amount_in=1, slippage_bps=50, order_type=kind)
    assert err.value.field == "type"


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
