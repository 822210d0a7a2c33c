"""Statuses reach the socket through the orders table's stream, read by the local stack's stream
poller: in seq order, none lost, after a fault a status may repeat with its seq."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chalicelib.adapters.notifier import PushResult
from chalicelib.api.services import get_services
from devstack.stack import DevStack

from .conftest import Client, is_terminal_for, receive_until

STATUSES = ["pending", "routing", "building", "submitted", "confirmed"]


def seen_once(messages: list[dict[str, Any]], order_id: str) -> list[tuple[int, str]]:
    """(seq, status) as a client keeps them: a seq already seen is dropped, and must repeat the same status."""
    kept: dict[int, str] = {}
    for m in messages:
        if m.get("orderId") != order_id:
            continue
        if m["type"] == "order.snapshot":
            for event in m["order"]["history"]:
                kept.setdefault(event["seq"], event["status"])
        elif m["type"] == "order.status":
            assert kept.setdefault(m["seq"], m["status"]) == m["status"]
    return sorted(kept.items())


def live_seqs(messages: list[dict[str, Any]], order_id: str) -> list[int]:
    return [m["seq"] for m in messages if m.get("orderId") == order_id and m["type"] == "order.status"]


@pytest.fixture
def fan_out_fault(stack: DevStack) -> Iterator[Callable[[Callable[[str, dict[str, Any]], str | None]], None]]:
    """Put a fault in front of the fan-out's pushes (the app runs in this process)."""
    notifier = get_services().stream_notifier
    real = notifier.push

    def install(fault: Callable[[str, dict[str, Any]], str | None]) -> None:
        def push(connection_id: str, message: dict[str, Any]) -> str:
            answer = fault(connection_id, message)
            return answer if answer is not None else real(connection_id, message)

        notifier.push = push  # type: ignore[method-assign]

    yield install
    notifier.push = real  # type: ignore[method-assign]


def test_every_status_reaches_the_socket_through_the_stream(stack: DevStack, client_a: Client) -> None:
    order_id = client_a.post().json()["orderId"]
    with client_a.socket() as ws:
        ws.send(json.dumps({"action": "subscribe", "orderId": order_id}))
        messages = receive_until(ws, is_terminal_for(order_id))
    assert [status for _, status in seen_once(messages, order_id)] == STATUSES
    seqs = live_seqs(messages, order_id)
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))  # no fault here: nothing repeats


@pytest.mark.parametrize("attempt", range(3))
def test_order_id_on_connect_and_a_subscribe_frame_give_one_snapshot(client_a: Client, attempt: int) -> None:
    # The report: open ?orderId=ID and at once send {"action":"subscribe","orderId":ID}.
    order_id = client_a.post().json()["orderId"]
    with client_a.socket(orderId=order_id) as ws:
        ws.send(json.dumps({"action": "subscribe", "orderId": order_id}))
        messages = receive_until(ws, is_terminal_for(order_id))
        refused = [m for m in messages if m["type"] == "error"]
        if not refused:  # the losing subscription may answer after the last status
            refused = [m for m in receive_until(ws, lambda m: m["type"] == "error", timeout=30)
                       if m["type"] == "error"]
    assert [m["code"] for m in refused] == ["already_subscribed"]
    assert len([m for m in messages if m["type"] == "order.snapshot"]) == 1
    seqs = live_seqs(messages, order_id)
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))
    assert [status for _, status in seen_once(messages, order_id)] == STATUSES


def execute_and_follow(client: Client, fault: Any, make_fault: Callable[[threading.Event], Any]
                       ) -> tuple[str, list[dict[str, Any]], threading.Event]:
    """``execute`` over the socket: the subscription is in place before the worker moves the order,
    so the fan-out pushes the lifecycle to this socket; ``make_fault`` acts on its first push."""
    hit = threading.Event()
    fault(make_fault(hit))
    with client.socket() as ws:
        ws.send(json.dumps({"action": "execute", "order": {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1"}}))
        accepted = receive_until(ws, lambda m: m["type"] in ("order.accepted", "error"), timeout=10)[-1]
        assert accepted["type"] == "order.accepted", accepted
        order_id = accepted["orderId"]
        messages = receive_until(ws, is_terminal_for(order_id))
    return order_id, messages, hit


def on_first_live_push(hit: threading.Event,
                       act: Callable[[], str | None]) -> Callable[[str, dict[str, Any]], str | None]:
    def fault(connection_id: str, message: dict[str, Any]) -> str | None:
        if message.get("type") == "order.status" and not hit.is_set():
            hit.set()
            return act()
        return None

    return fault


def test_a_throttled_push_is_retried_by_the_poller_and_delivered(client_a: Client, fan_out_fault: Any) -> None:
    order_id, messages, throttled = execute_and_follow(
        client_a, fan_out_fault, lambda hit: on_first_live_push(hit, lambda: PushResult.FAILED))  # as a 429
    assert throttled.is_set()
    assert [status for _, status in seen_once(messages, order_id)] == STATUSES
    seqs = live_seqs(messages, order_id)
    assert seqs == sorted(seqs)  # the record is retried before anything after it goes out


def test_a_fan_out_crash_is_retried_by_the_poller_and_nothing_is_lost(client_a: Client,
                                                                       fan_out_fault: Any) -> None:
    def crash() -> str | None:
        raise RuntimeError("the fan-out dies mid-batch")

    order_id, messages, crashed = execute_and_follow(
        client_a, fan_out_fault, lambda hit: on_first_live_push(hit, crash))
    assert crashed.is_set()
    # every status, each seq always with the same status; a repeat is a seq seen before
    assert [status for _, status in seen_once(messages, order_id)] == STATUSES
