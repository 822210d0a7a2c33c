"""One snapshot per subscription: two subscriptions of one order on one connection, however they
interleave, give one snapshot and one ``already_subscribed``; a subscription that died half-way
does not lock its connection out; the calls a subscription costs."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

import app as app_module
from chalicelib.adapters.notifier import PushResult
from chalicelib.api.services import Services

from .conftest import API_KEY_A, OrdersStream, RecordingNotifier, deliver, invoke_worker, receive_records, record_for
from .test_websocket import connect, run_worker, say, statuses, submit, ws_event


def snapshots_and_refusals(notifier: RecordingNotifier, cid: str) -> tuple[int, list[str]]:
    return len(notifier.of(cid, "order.snapshot")), [m["code"] for m in notifier.of(cid, "error")]


@pytest.fixture
def dynamodb_calls(services: Services) -> Iterator[Counter[str]]:
    """Every DynamoDB call the engine makes from now on, by operation."""
    calls: Counter[str] = Counter()
    client = services._aws.client("dynamodb")

    def count(model: Any, **kwargs: Any) -> None:
        calls[model.name] += 1

    client.meta.events.register("before-call.dynamodb", count)
    yield calls
    client.meta.events.unregister("before-call.dynamodb", count)


def connect_with_order(client: Any, services: Services, notifier: RecordingNotifier, order_id: str) -> tuple[str, Any]:
    """``?orderId=`` on connect: the socket is open; the subscription job waits on the queue."""
    cid = uuid.uuid4().hex[:15] + "="
    resp = app_module.ws_connect(ws_event("$connect", cid, query={"apiKey": API_KEY_A, "orderId": order_id}), None)
    assert resp["statusCode"] == 200
    notifier.open_.add(cid)
    (job,) = [r for r in receive_records(services) if json.loads(r["body"]).get("kind") == "subscribe"]
    return cid, job


def on_first_snapshot(notifier: RecordingNotifier, cid: str, action: Any) -> None:
    """Run ``action`` at the moment the connection's first snapshot is about to be pushed."""
    done: list[bool] = []

    def hook(connection_id: str, message: dict[str, Any]) -> str | None:
        if message["type"] == "order.snapshot" and not done:
            done.append(True)
            action()
        return None

    notifier.hooks[cid] = hook


def test_order_id_on_connect_racing_a_subscribe_frame_gives_one_snapshot(
        client: Any, services: Services, notifier: RecordingNotifier, stream: OrdersStream) -> None:
    # GIVEN ?orderId= on connect, whose subscription job runs as the client also sends `subscribe`
    order_id = submit(client)
    cid, job = connect_with_order(client, services, notifier, order_id)
    on_first_snapshot(notifier, cid, lambda: say(cid, {"action": "subscribe", "orderId": order_id}))
    # WHEN the job runs: the frame arrives while the job is sending its snapshot
    assert invoke_worker(client, [job]) == {"batchItemFailures": []}
    # THEN one snapshot, one already_subscribed, and every later status once
    assert snapshots_and_refusals(notifier, cid) == (1, ["already_subscribed"])
    run_worker(client, stream, order_id)
    assert statuses(notifier, cid) == [("order.snapshot", 1), ("order.status", 2), ("order.status", 3),
                                       ("order.status", 4), ("order.status", 5)]


def test_a_subscribe_frame_racing_the_order_id_job_gives_one_snapshot(
        client: Any, services: Services, notifier: RecordingNotifier, stream: OrdersStream) -> None:
    order_id = submit(client)
    cid, job = connect_with_order(client, services, notifier, order_id)
    # the frame goes first; the job runs while the frame's snapshot is on its way
    on_first_snapshot(notifier, cid, lambda: invoke_worker(client, [job]))
    say(cid, {"action": "subscribe", "orderId": order_id})
    assert snapshots_and_refusals(notifier, cid) == (1, ["already_subscribed"])
    run_worker(client, stream, order_id)
    assert [seq for _, seq in statuses(notifier, cid)] == [1, 2, 3, 4, 5]


def test_two_subscribe_frames_back_to_back_give_one_snapshot(client: Any, services: Services,
                                                             notifier: RecordingNotifier, stream: OrdersStream) -> None:
    # The second frame arrives while the first is sending its snapshot (DynamoDB applies the two
    # claims one after the other: this is the interleaving where both are in flight at once).
    order_id = submit(client)
    cid = connect(notifier)
    on_first_snapshot(notifier, cid, lambda: say(cid, {"action": "subscribe", "orderId": order_id}))
    say(cid, {"action": "subscribe", "orderId": order_id})
    assert snapshots_and_refusals(notifier, cid) == (1, ["already_subscribed"])
    run_worker(client, stream, order_id)
    assert [seq for _, seq in statuses(notifier, cid)] == [1, 2, 3, 4, 5]


def test_a_late_second_subscription_of_a_finished_order_is_refused_too(
        client: Any, services: Services, notifier: RecordingNotifier, stream: OrdersStream) -> None:
    # GIVEN ?orderId= whose job runs only after the order has finished, the frame having won
    order_id = submit(client)
    cid, job = connect_with_order(client, services, notifier, order_id)
    say(cid, {"action": "subscribe", "orderId": order_id})
    run_worker(client, stream, order_id)
    assert invoke_worker(client, [job]) == {"batchItemFailures": []}
    # THEN the connection already had it all: no second snapshot
    assert snapshots_and_refusals(notifier, cid) == (1, ["already_subscribed"])
    assert [seq for _, seq in statuses(notifier, cid)] == [1, 2, 3, 4, 5]


def test_a_subscription_that_died_half_way_does_not_lock_its_connection_out(
        client: Any, services: Services, notifier: RecordingNotifier, stream: OrdersStream) -> None:
    # GIVEN a subscription whose Lambda died after claiming the order (its claim has expired since)
    order_id = submit(client)
    cid = connect(notifier)
    now = int(time.time() * 1000)
    claim = services.orders.claim_subscription(order_id, "client-a", cid, now - 200_000, now - 100_000)
    assert claim.until_ms == now - 100_000
    # WHEN the client (or the job's redelivery) subscribes again
    say(cid, {"action": "subscribe", "orderId": order_id})
    # THEN it is subscribed: a snapshot, then everything live
    run_worker(client, stream, order_id)
    assert [seq for _, seq in statuses(notifier, cid)] == [1, 2, 3, 4, 5]
    assert notifier.of(cid, "error") == []


def test_a_subscription_that_cannot_send_its_snapshot_gives_its_claim_back(
        client: Any, services: Services, notifier: RecordingNotifier, stream: OrdersStream) -> None:
    order_id = submit(client)
    cid = connect(notifier)
    failed: list[bool] = []

    def fail_first(connection_id: str, message: dict[str, Any]) -> str | None:
        if not failed:
            failed.append(True)
            return PushResult.FAILED
        return None

    notifier.hooks[cid] = fail_first
    say(cid, {"action": "subscribe", "orderId": order_id})  # the snapshot did not go out
    say(cid, {"action": "subscribe", "orderId": order_id})  # so the client may try again at once
    run_worker(client, stream, order_id)
    assert [seq for _, seq in statuses(notifier, cid)] == [1, 2, 3, 4, 5]


def test_an_order_written_before_claims_existed_can_be_subscribed(
        client: Any, services: Services, notifier: RecordingNotifier, stream: OrdersStream) -> None:
    order_id = submit(client)
    services._aws.client("dynamodb").update_item(
        TableName=services.settings.orders_table, Key={"orderId": {"S": order_id}},
        UpdateExpression="REMOVE subscribing")
    cid = connect(notifier)
    say(cid, {"action": "subscribe", "orderId": order_id})
    run_worker(client, stream, order_id)
    assert [seq for _, seq in statuses(notifier, cid)] == [1, 2, 3, 4, 5]


def test_an_unsubscribed_connection_gets_no_more_events(client: Any, services: Services,
                                                        notifier: RecordingNotifier, stream: OrdersStream) -> None:
    order_id = submit(client)
    cid = connect(notifier)
    say(cid, {"action": "subscribe", "orderId": order_id})
    say(cid, {"action": "unsubscribe", "orderId": order_id})
    run_worker(client, stream, order_id)
    assert statuses(notifier, cid) == [("order.snapshot", 1)]
    assert notifier.of(cid, "order.unsubscribed")[0]["orderId"] == order_id


def test_a_subscription_costs_two_calls_and_one_to_a_finished_order(
        client: Any, services: Services, notifier: RecordingNotifier, stream: OrdersStream,
        dynamodb_calls: Counter[str]) -> None:
    live = submit(client)
    cid = connect(notifier)
    say(cid, {"action": "ping"})  # the connection's owner is read once, then cached
    dynamodb_calls.clear()
    say(cid, {"action": "subscribe", "orderId": live})
    # the claim (which reads the order) and the subscription: as many as a read and a write
    assert dynamodb_calls == Counter({"UpdateItem": 2})
    finished = submit(client)
    invoke_worker(client, [record_for(finished)])
    deliver(client, stream)
    dynamodb_calls.clear()
    say(cid, {"action": "subscribe", "orderId": finished})
    # the claim is refused (nothing live follows a terminal order) and answers with the order
    assert dynamodb_calls == Counter({"UpdateItem": 1})
    assert notifier.of(cid, "order.snapshot")[-1]["status"] == "confirmed"
    assert stream.records() == []  # a refused claim writes nothing
