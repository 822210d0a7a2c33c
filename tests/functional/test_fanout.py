"""Events leave through the orders table's stream: the worker only writes, and the fan-out Lambda
delivers each event to the subscribers in the image that carries it, in order, none lost; after a
fault a status may come twice, always with its seq."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.adapters.notifier import PushResult
from chalicelib.api.fanout import new_events
from chalicelib.api.services import Services
from chalicelib.domain import OrderStatus

from .conftest import OrdersStream, RecordingNotifier, deliver, fan_out, invoke_worker, record_for
from .test_websocket import connect, say, statuses, submit

LIFECYCLE = [2, 3, 4, 5]  # routing, building, submitted, confirmed, after a snapshot at seq 1


class Crash(BaseException):
    """The worker's process dies here (no handler catches it)."""


def subscribed(client: Any, notifier: RecordingNotifier, n: int = 1) -> tuple[str, list[str]]:
    """A new order and ``n`` connections subscribed to it (each got its snapshot at seq 1)."""
    order_id = submit(client)
    connections = [connect(notifier) for _ in range(n)]
    for cid in connections:
        say(cid, {"action": "subscribe", "orderId": order_id})
    return order_id, connections


def live_seqs(notifier: RecordingNotifier, cid: str) -> list[int]:
    return [m["seq"] for m in notifier.of(cid, "order.status")]


def first_sight(notifier: RecordingNotifier, cid: str) -> list[int]:
    """The seqs as a client sees them: one that came before is dropped (API.md). A repeat must be
    the very same message."""
    seen: dict[int, dict[str, Any]] = {}
    order: list[int] = []
    for message in notifier.of(cid, "order.status"):
        if message["seq"] in seen:
            assert message == seen[message["seq"]], "a repeated seq carries the same status"
            continue
        seen[message["seq"]] = message
        order.append(message["seq"])
    return order


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.01)


def sequence_of(record: dict[str, Any]) -> str:
    return str(record["dynamodb"]["SequenceNumber"])


def test_the_worker_pushes_nothing_the_stream_delivers_everything(client: Any, services: Services,
                                                                   notifier: RecordingNotifier,
                                                                   stream: OrdersStream) -> None:
    order_id, (cid,) = subscribed(client, notifier)
    assert invoke_worker(client, [record_for(order_id)]) == {"batchItemFailures": []}
    assert statuses(notifier, cid) == [("order.snapshot", 1)]  # the order is confirmed; nothing pushed yet
    deliver(client, stream)
    assert live_seqs(notifier, cid) == LIFECYCLE
    assert notifier.of(cid, "order.status")[-1]["status"] == "confirmed"


def test_routing_and_building_share_one_write_and_both_reach_the_subscriber_in_order(
        client: Any, services: Services, notifier: RecordingNotifier, stream: OrdersStream) -> None:
    order_id, (cid,) = subscribed(client, notifier)
    assert invoke_worker(client, [record_for(order_id)]) == {"batchItemFailures": []}
    records = stream.records()
    carried = [[m["seq"] for m in found.messages] for r in records if (found := new_events(r))]
    assert carried == [[2, 3], [4], [5]]  # one image adds routing and building, in seq order
    assert fan_out(client, records) == {"batchItemFailures": []}
    assert [(m["status"], m["seq"]) for m in notifier.of(cid, "order.status")] == [
        ("routing", 2), ("building", 3), ("submitted", 4), ("confirmed", 5)]


def test_a_crash_between_the_save_and_the_send_loses_no_event(client: Any, services: Services,
                                                              notifier: RecordingNotifier, stream: OrdersStream,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a subscriber, and a worker that dies right after persisting `submitted`
    order_id, (cid,) = subscribed(client, notifier)

    def die(*args: Any) -> Any:
        raise Crash("the container is gone")

    with monkeypatch.context() as patch:
        patch.setattr(services.chain, "send_transaction", die)
        with pytest.raises(Crash):
            invoke_worker(client, [record_for(order_id)])
    # THEN every status it saved reaches the client anyway
    deliver(client, stream)
    assert [(m["status"], m["seq"]) for m in notifier.of(cid, "order.status")] == [
        ("routing", 2), ("building", 3), ("submitted", 4)]
    # AND the redelivered message reconciles the order; its last status follows, once
    assert invoke_worker(client, [record_for(order_id, 2)]) == {"batchItemFailures": []}
    deliver(client, stream)
    assert live_seqs(notifier, cid) == LIFECYCLE


def test_a_throttled_push_is_retried_from_its_record_and_delivered(client: Any, services: Services,
                                                                   notifier: RecordingNotifier,
                                                                   stream: OrdersStream) -> None:
    order_id, (throttled, other) = subscribed(client, notifier, 2)
    refused: list[int] = []

    def throttle_building_once(cid: str, message: dict[str, Any]) -> str | None:
        if message.get("seq") == 3 and not refused:
            refused.append(3)
            return PushResult.FAILED  # 429 LimitExceeded, a timeout: anything but 410
        return None

    notifier.hooks[throttled] = throttle_building_once
    invoke_worker(client, [record_for(order_id)])
    records = stream.records()
    # (routing and building share one write, so one record carries seqs 2 and 3)
    building = next(r for r in records if (found := new_events(r)) and 3 in [m["seq"] for m in found.messages])
    # WHEN the fan-out meets the failure, it reports the earliest record to retry
    assert fan_out(client, records) == {"batchItemFailures": [{"itemIdentifier": sequence_of(building)}]}
    assert live_seqs(notifier, throttled) == [2]  # nothing after the failure: order before completeness
    assert live_seqs(notifier, other) == LIFECYCLE  # the others are not held back
    # THEN Lambda retries from that record and the throttled client gets the rest, in order
    retry = records[records.index(building):]
    assert fan_out(client, retry) == {"batchItemFailures": []}
    assert first_sight(notifier, throttled) == LIFECYCLE  # 2 again, with the same seq: dropped
    assert first_sight(notifier, other) == LIFECYCLE  # it may see 2..5 again, with the same seqs
    assert services.orders.get_with_subscribers(order_id) is not None


def test_a_slow_subscriber_does_not_hold_the_others_back_and_keeps_its_order(
        client: Any, services: Services, notifier: RecordingNotifier, stream: OrdersStream) -> None:
    order_id, (slow, *others) = subscribed(client, notifier, 3)
    release = threading.Event()

    def wait_for_release(cid: str, message: dict[str, Any]) -> str | None:
        release.wait(60)  # the test lets go once it has seen the others served
        return None

    notifier.hooks[slow] = wait_for_release
    invoke_worker(client, [record_for(order_id)])
    records = stream.records()
    result: list[dict[str, Any]] = []
    fanning = threading.Thread(target=lambda: result.append(fan_out(client, records)))
    fanning.start()
    try:
        # the others get everything while the slow one is still stuck on its first push
        wait_until(lambda: all(live_seqs(notifier, cid) == LIFECYCLE for cid in others))
        assert live_seqs(notifier, slow) == []
    finally:
        release.set()
        fanning.join(60)
    assert result == [{"batchItemFailures": []}]
    assert live_seqs(notifier, slow) == LIFECYCLE


def test_a_fan_out_crash_mid_batch_loses_nothing_and_repeats_only_with_the_same_seq(
        client: Any, services: Services, notifier: RecordingNotifier, stream: OrdersStream) -> None:
    # GIVEN two subscribers of each of two orders, and a fan-out that crashes half-way through the batch
    first, (a, b) = subscribed(client, notifier, 2)
    second = submit(client)
    for cid in (a, b):
        say(cid, {"action": "subscribe", "orderId": second})
    crashed: list[int] = []

    def crash_once_on_submitted(cid: str, message: dict[str, Any]) -> str | None:
        if message.get("status") == "submitted" and not crashed:
            crashed.append(message["seq"])
            raise RuntimeError("the fan-out dies mid-batch")
        return None

    notifier.hooks[a] = crash_once_on_submitted
    invoke_worker(client, [record_for(first), record_for(second)])
    records = stream.records()
    with pytest.raises(RuntimeError, match="mid-batch"):
        fan_out(client, records)
    # WHEN Lambda invokes the function again with the same batch (a function error retries it whole)
    assert fan_out(client, records) == {"batchItemFailures": []}
    # THEN each client has every status of both orders, in order once repeats are dropped
    for cid in (a, b):
        by_order: dict[str, list[int]] = {first: [], second: []}
        seen: set[tuple[str, int]] = set()
        for message in notifier.of(cid, "order.status"):
            key = (message["orderId"], message["seq"])
            if key not in seen:
                seen.add(key)
                by_order[message["orderId"]].append(message["seq"])
        assert by_order == {first: LIFECYCLE, second: LIFECYCLE}, cid
    assert len(notifier.of(a, "order.status")) > 8  # the retry repeated what it had delivered


def test_a_batch_that_runs_out_of_time_stops_in_order_and_is_retried(client: Any, services: Services,
                                                                     notifier: RecordingNotifier,
                                                                     stream: OrdersStream) -> None:
    # GIVEN an invocation already at its push deadline (a slow, answering client used up its time)
    order_id, (cid,) = subscribed(client, notifier)
    invoke_worker(client, [record_for(order_id)])
    records = stream.records()
    first = next(r for r in records if new_events(r) is not None)
    # THEN no push starts, and the batch is retried from the first record with something to push
    assert services.stream_fanout.deliver(records, deadline=time.monotonic() - 1) == [sequence_of(first)]
    assert live_seqs(notifier, cid) == []
    assert fan_out(client, records[records.index(first):]) == {"batchItemFailures": []}
    assert live_seqs(notifier, cid) == LIFECYCLE


def test_writes_that_add_no_event_push_nothing(client: Any, services: Services, notifier: RecordingNotifier,
                                               stream: OrdersStream) -> None:
    # subscribing (claim and subscription), unsubscribing and resubscribing write the item, but add no event
    order_id, (cid, other) = subscribed(client, notifier, 2)
    say(other, {"action": "unsubscribe", "orderId": order_id})
    say(other, {"action": "subscribe", "orderId": order_id})
    before = {c: list(notifier.sent[c]) for c in (cid, other)}
    records = deliver(client, stream)
    assert len(records) >= 7  # creation, 2 x (claim, subscription), unsubscription, claim, subscription
    assert all(new_events(r) is None for r in records)
    assert {c: notifier.sent[c] for c in (cid, other)} == before


def test_an_image_without_events_or_subscribers_is_skipped() -> None:
    key_only = {"dynamodb": {"SequenceNumber": "1", "Keys": {"orderId": {"S": "ord_x"}},
                             "NewImage": {"orderId": {"S": "ord_x"}}}}
    assert new_events(key_only) is None  # moto's extra INSERT before an update_item that creates its item
    assert new_events({"dynamodb": {"SequenceNumber": "2", "Keys": {"orderId": {"S": "ord_x"}}}}) is None  # REMOVE
    history = {"L": [{"M": {"seq": {"N": "1"}, "status": {"S": "pending"}, "at": {"S": "t"}, "data": {"M": {}}}},
                     {"M": {"seq": {"N": "2"}, "status": {"S": "routing"}, "at": {"S": "t"}, "data": {"M": {}}}}]}
    image = {"orderId": {"S": "ord_x"}, "evFrom": {"N": "1"}, "history": history}
    assert new_events({"dynamodb": {"SequenceNumber": "3", "NewImage": image}}) is None  # nobody subscribed
    with_subs = {**image, "subs": {"SS": ["c1", "c2"]}}
    found = new_events({"dynamodb": {"SequenceNumber": "4", "NewImage": with_subs}})
    assert found is not None and found.subscribers == ("c1", "c2")
    assert [(m["type"], m["seq"], m["status"]) for m in found.messages] == [("order.status", 2, "routing")]
    caught_up = {**with_subs, "evFrom": {"N": "2"}}
    assert new_events({"dynamodb": {"SequenceNumber": "5", "NewImage": caught_up}}) is None


def test_an_image_mixing_events_stored_as_maps_and_as_text_yields_the_new_ones_in_order() -> None:
    # an item written before events were stored as JSON text, moved on since: both kinds in one list
    old = {"M": {"seq": {"N": "1"}, "status": {"S": "pending"}, "at": {"S": "t"}, "data": {"M": {}}}}
    new = [{"S": '{"seq":3,"status":"building","at":"t","data":{"venue":"raydium"}}'},
           {"S": '{"seq":2,"status":"routing","at":"t","data":{"quotes":[]}}'}]
    image = {"orderId": {"S": "ord_x"}, "evFrom": {"N": "1"}, "history": {"L": [old, *new]},
             "subs": {"SS": ["c1"]}}
    found = new_events({"dynamodb": {"SequenceNumber": "4", "NewImage": image}})
    assert found is not None and found.subscribers == ("c1",)
    assert [(m["seq"], m["status"]) for m in found.messages] == [(2, "routing"), (3, "building")]
    assert found.messages[1]["data"] == {"venue": "raydium"}


def test_a_gone_subscriber_is_dropped_and_the_others_still_served(client: Any, services: Services,
                                                                  notifier: RecordingNotifier,
                                                                  stream: OrdersStream) -> None:
    order_id, (gone, alive) = subscribed(client, notifier, 2)
    notifier.gone.add(gone)
    invoke_worker(client, [record_for(order_id)])
    deliver(client, stream)
    assert live_seqs(notifier, alive) == LIFECYCLE
    assert notifier.attempts[gone] == 2  # its snapshot, then one push that answered 410
    found = services.orders.get_with_subscribers(order_id)
    assert found is not None and found[1] == [alive]
    assert services.connections.get(gone) is None
    # the write that dropped it adds no event
    assert all(new_events(r) is None for r in stream.records())
    order = services.orders.get(order_id)
    assert order is not None and order.status is OrderStatus.CONFIRMED
