"""WebSocket lifecycle: handlers, ownership, snapshot-then-live under races, stale connections.

The worker only writes; what a subscriber receives live comes from the orders table's stream,
handed to the fan-out Lambda (``deliver``) as Lambda's event source mapping would."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from botocore.stub import Stubber

import app as app_module
from chalicelib.adapters.notifier import Notifier, PushResult
from chalicelib.api.services import Services
from chalicelib.api.subscriptions import subscribe
from chalicelib.domain import OrderStatus

from .conftest import (
    API_KEY_A,
    API_KEY_B,
    OrdersStream,
    RecordingNotifier,
    deliver,
    invoke_worker,
    order_body,
    post_order,
    receive_records,
    record_for,
)


def ws_event(route: str, connection_id: str, body: str | None = None,
             query: dict[str, str] | None = None) -> dict[str, Any]:
    kind = {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route, "MESSAGE")
    return {
        "requestContext": {"routeKey": route, "eventType": kind, "connectionId": connection_id,
                           "domainName": "abc123.execute-api.us-east-1.amazonaws.com", "stage": "local",
                           "apiId": "abc123", "requestId": str(uuid.uuid4()), "connectedAt": 0},
        "queryStringParameters": query,
        "headers": {},
        "isBase64Encoded": False,
        "body": body,
    }


def connect(notifier: RecordingNotifier, key: str = API_KEY_A, **query: str) -> str:
    cid = uuid.uuid4().hex[:15] + "="
    resp = app_module.ws_connect(ws_event("$connect", cid, query={"apiKey": key, **query}), None)
    assert resp["statusCode"] == 200
    notifier.open_.add(cid)
    return cid


def say(cid: str, message: Any) -> None:
    body = message if isinstance(message, str) else json.dumps(message)
    app_module.ws_message(ws_event("$default", cid, body=body), None)


def submit(client: Any, key: str = API_KEY_A) -> str:
    resp = post_order(client, order_body(), key=key)
    assert resp.status_code == 202
    return str(json.loads(resp.body)["orderId"])


def statuses(notifier: RecordingNotifier, cid: str) -> list[tuple[str, int]]:
    return [(m["type"], m["seq"]) for m in notifier.sent[cid] if m["type"] in ("order.snapshot", "order.status")]


def run_worker(client: Any, stream: OrdersStream, order_id: str) -> None:
    """The worker runs the order; then its stream records reach the fan-out."""
    assert invoke_worker(client, [record_for(order_id)]) == {"batchItemFailures": []}
    deliver(client, stream)


def test_bad_key_is_refused_at_the_handshake(services: Services) -> None:
    resp = app_module.ws_connect(ws_event("$connect", "Lp0Sxd5uIAMCJ7Q=", query={"apiKey": "nope"}), None)
    assert resp["statusCode"] == 401
    assert services.connections.get("Lp0Sxd5uIAMCJ7Q=") is None
    resp = app_module.ws_connect(ws_event("$connect", "Lp0Sxd5uIAMCJ7Q=", query=None), None)
    assert resp["statusCode"] == 401


def test_connection_is_stored_with_client_and_two_hour_ttl(services: Services, notifier: RecordingNotifier) -> None:
    cid = connect(notifier)
    conn = services.connections.get(cid)
    assert conn is not None and conn.client_id == "client-a"
    item = services._aws.client("dynamodb").get_item(
        TableName=services.settings.connections_table, Key={"connectionId": {"S": cid}})["Item"]
    import time

    assert 7190 <= int(item["ttl"]["N"]) - time.time() <= 7200


def test_snapshot_then_every_later_status_exactly_once(client: Any, services: Services,
                                                      notifier: RecordingNotifier, stream: OrdersStream) -> None:
    order_id = submit(client)
    cid = connect(notifier)
    say(cid, {"action": "subscribe", "orderId": order_id})
    run_worker(client, stream, order_id)
    assert statuses(notifier, cid) == [("order.snapshot", 1), ("order.status", 2), ("order.status", 3),
                                       ("order.status", 4), ("order.status", 5)]
    snapshot = notifier.of(cid, "order.snapshot")[0]
    assert snapshot["status"] == "pending" and snapshot["order"]["orderId"] == order_id
    last = notifier.of(cid, "order.status")[-1]
    assert last["status"] == "confirmed" and {"txHash", "amountOut", "executedPrice", "venue"} <= set(last["data"])
    by_status = {m["status"]: m["data"] for m in notifier.of(cid, "order.status")}
    assert {"venue", "amountOut", "fee", "priceImpactBps"} <= set(by_status["routing"]["quotes"][0])
    assert {"venue", "minAmountOut", "wrapSol"} <= set(by_status["building"])
    assert "signature" in by_status["submitted"]


def test_subscription_landing_between_two_transitions(client: Any, services: Services,
                                                      notifier: RecordingNotifier, stream: OrdersStream,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker has written `routing` and `building` (one write) when the subscription arrives;
    it must see 3 in the snapshot and 4, 5 live: no gap, no duplicate."""
    order_id = submit(client)
    cid = connect(notifier)
    real_save = services.orders.save
    done = []

    def save_then_subscribe(order: Any, expected_version: int) -> Any:
        subs = real_save(order, expected_version)
        if order.status is OrderStatus.BUILDING and not done:
            done.append(True)
            subscribe(services, cid, "client-a", order_id)
        return subs

    monkeypatch.setattr(services.orders, "save", save_then_subscribe)
    run_worker(client, stream, order_id)
    assert statuses(notifier, cid) == [("order.snapshot", 3), ("order.status", 4), ("order.status", 5)]


def test_transition_slipping_between_snapshot_and_subscription(client: Any, services: Services,
                                                               notifier: RecordingNotifier, stream: OrdersStream,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The subscriber read seq 1 and sent its snapshot; the worker writes `routing` before the
    subscription is stored. The subscriber must send seq 2 itself, then the worker the rest."""
    order_id = submit(client)
    cid = connect(notifier)
    real = services.orders.complete_subscription
    calls: list[int] = []

    def racing(order_id_: str, connection_id: str, version: int, until: int) -> Any:
        calls.append(version)
        if len(calls) == 1:  # the worker moves the order at this exact moment
            order = services.orders.get(order_id_)
            assert order is not None
            expected = order.version
            order.transition(OrderStatus.ROUTING, {"quotes": []})
            services.orders.save(order, expected)
        return real(order_id_, connection_id, version, until)

    monkeypatch.setattr(services.orders, "complete_subscription", racing)
    subscribe(services, cid, "client-a", order_id)
    assert calls == [1, 2]
    assert statuses(notifier, cid) == [("order.snapshot", 1), ("order.status", 2)]
    run_worker(client, stream, order_id)  # the worker resumes an order it finds in `routing`
    seqs = [seq for _, seq in statuses(notifier, cid)]
    assert seqs == list(range(1, seqs[-1] + 1))
    assert notifier.of(cid, "order.status")[-1]["status"] == "confirmed"


def test_reconnect_with_after_seq_gets_only_what_it_missed(client: Any, services: Services,
                                                           notifier: RecordingNotifier, stream: OrdersStream) -> None:
    order_id = submit(client)
    run_worker(client, stream, order_id)
    cid = connect(notifier)
    say(cid, {"action": "subscribe", "orderId": order_id, "afterSeq": 3})
    assert statuses(notifier, cid) == [("order.status", 4), ("order.status", 5)]


def test_subscribing_twice_on_one_connection_delivers_each_status_once(client: Any, services: Services,
                                                                       notifier: RecordingNotifier,
                                                                       stream: OrdersStream) -> None:
    order_id = submit(client)
    cid = connect(notifier)
    say(cid, {"action": "subscribe", "orderId": order_id})
    say(cid, {"action": "subscribe", "orderId": order_id})
    run_worker(client, stream, order_id)
    assert statuses(notifier, cid) == [("order.snapshot", 1), ("order.status", 2), ("order.status", 3),
                                       ("order.status", 4), ("order.status", 5)]
    assert [m["code"] for m in notifier.of(cid, "error")] == ["already_subscribed"]


def test_execute_then_subscribe_does_not_duplicate_the_lifecycle(client: Any, services: Services,
                                                                 notifier: RecordingNotifier,
                                                                 stream: OrdersStream) -> None:
    cid = connect(notifier)
    say(cid, {"action": "execute", "order": order_body()})
    order_id = notifier.of(cid, "order.accepted")[0]["orderId"]
    say(cid, {"action": "subscribe", "orderId": order_id})
    run_worker(client, stream, order_id)
    assert [seq for _, seq in statuses(notifier, cid)] == [1, 2, 3, 4, 5]


def test_a_client_cannot_subscribe_to_another_clients_order(client: Any, services: Services,
                                                            notifier: RecordingNotifier, stream: OrdersStream) -> None:
    order_id = submit(client, key=API_KEY_A)
    intruder = connect(notifier, key=API_KEY_B)
    owner = connect(notifier, key=API_KEY_A)
    say(intruder, {"action": "subscribe", "orderId": order_id})
    say(owner, {"action": "subscribe", "orderId": order_id})
    run_worker(client, stream, order_id)
    assert [m["type"] for m in notifier.sent[intruder]] == ["error"]
    assert notifier.sent[intruder][0]["code"] == "not_found"
    assert len(notifier.of(owner, "order.status")) == 4


def test_execute_over_the_socket_streams_the_whole_lifecycle(client: Any, services: Services,
                                                             notifier: RecordingNotifier,
                                                             stream: OrdersStream) -> None:
    cid = connect(notifier)
    say(cid, {"action": "execute", "order": order_body(clientOrderId="ws-1")})
    accepted = notifier.sent[cid][0]
    assert accepted["type"] == "order.accepted" and accepted["clientOrderId"] == "ws-1"
    [record] = receive_records(services)
    invoke_worker(client, [record])
    deliver(client, stream)
    assert [(m["status"], m["seq"]) for m in notifier.of(cid, "order.status")] == [
        ("pending", 1), ("routing", 2), ("building", 3), ("submitted", 4), ("confirmed", 5)]


def test_execute_with_bad_order_answers_an_error_naming_the_field(services: Services,
                                                                  notifier: RecordingNotifier) -> None:
    cid = connect(notifier)
    say(cid, {"action": "execute", "order": order_body(amount="abc")})
    [err] = notifier.sent[cid]
    assert err["type"] == "error" and err["field"] == "amount" and err["status"] == 400


def test_an_order_executed_over_the_socket_that_cannot_be_queued_is_not_kept(
        services: Services, notifier: RecordingNotifier, monkeypatch: pytest.MonkeyPatch) -> None:
    def queue_down(message: dict[str, Any]) -> None:
        raise ConnectionError("SQS unreachable")

    cid = connect(notifier)
    monkeypatch.setattr(services.queue, "send", queue_down)
    say(cid, {"action": "execute", "order": order_body(clientOrderId="ws-queue-down")})
    [err] = notifier.sent[cid]
    assert err["type"] == "error" and err["code"] == "enqueue_failed" and err["status"] == 503
    assert services.orders.list_for_client("client-a") == []  # withdrawn, not left pending
    monkeypatch.undo()
    say(cid, {"action": "execute", "order": order_body(clientOrderId="ws-queue-down")})
    accepted = notifier.of(cid, "order.accepted")
    assert len(accepted) == 1 and accepted[0]["created"] is True  # created afresh, and queued this time
    assert [json.loads(r["body"])["orderId"] for r in receive_records(services)] == [accepted[0]["orderId"]]


@pytest.mark.parametrize(
    ("message", "code"),
    [("{oops", "invalid_json"), ("[1]", "validation_error"), ({"action": "dance"}, "unknown_action"),
     ({"nothing": 1}, "unknown_action"), ({"action": "subscribe"}, "validation_error"),
     ({"action": "subscribe", "orderId": "x"}, "validation_error"),
     ({"action": "subscribe", "orderId": "ord_unknown"}, "not_found"),
     ({"action": "execute"}, "validation_error")],
)
def test_malformed_messages_get_an_error_not_a_dropped_connection(services: Services, notifier: RecordingNotifier,
                                                                  message: Any, code: str) -> None:
    cid = connect(notifier)
    say(cid, message)
    [err] = notifier.sent[cid]
    assert err["type"] == "error" and err["code"] == code
    say(cid, {"action": "ping"})
    assert notifier.sent[cid][-1] == {"type": "pong"}


def test_stale_connection_is_deleted_when_a_push_finds_it_gone(client: Any, services: Services,
                                                               notifier: RecordingNotifier,
                                                               stream: OrdersStream) -> None:
    order_id = submit(client)
    cid = connect(notifier)
    say(cid, {"action": "subscribe", "orderId": order_id})
    notifier.gone.add(cid)
    run_worker(client, stream, order_id)
    assert services.connections.get(cid) is None
    got = services.orders.get_with_subscribers(order_id)
    assert got is not None and got[1] == []
    order = services.orders.get(order_id)
    assert order is not None and order.status is OrderStatus.CONFIRMED  # a dead socket never fails an order


def test_management_api_410_is_reported_as_gone() -> None:
    import boto3

    api = boto3.client("apigatewaymanagementapi", endpoint_url="https://abc.execute-api.us-east-1.amazonaws.com/local",
                       region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")
    with Stubber(api) as stub:
        stub.add_client_error("post_to_connection", service_error_code="GoneException", http_status_code=410)
        stub.add_client_error("post_to_connection", service_error_code="LimitExceededException",
                              http_status_code=429)
        stub.add_response("post_to_connection", {})
        notifier = Notifier(api)
        assert notifier.push("Lp0Sxd5uIAMCJ7Q=", {"type": "pong"}) == PushResult.GONE
        assert notifier.push("Lp0Sxd5uIAMCJ7Q=", {"type": "pong"}) == PushResult.FAILED
        assert notifier.push("Lp0Sxd5uIAMCJ7Q=", {"type": "pong"}) == PushResult.SENT


def test_disconnect_removes_the_connection_and_the_next_push_prunes_it(client: Any, services: Services,
                                                                        notifier: RecordingNotifier,
                                                                        stream: OrdersStream) -> None:
    # GIVEN a connection subscribed to an active order
    order_id = submit(client)
    cid = connect(notifier)
    say(cid, {"action": "subscribe", "orderId": order_id})
    before = len(notifier.sent[cid])
    # WHEN the socket closes (API Gateway answers 410 for it from then on)
    app_module.ws_disconnect(ws_event("$disconnect", cid), None)
    notifier.gone.add(cid)
    assert services.connections.get(cid) is None
    # THEN the order's next transition tries it once (410), prunes it, and never tries it again
    run_worker(client, stream, order_id)
    got = services.orders.get_with_subscribers(order_id)
    assert got is not None and got[1] == []
    assert len(notifier.sent[cid]) == before
    assert notifier.attempts[cid] == before + 1


@pytest.mark.parametrize("after", ["abc", "-1", "1.5", "١"])
def test_an_after_seq_that_is_not_a_whole_number_is_refused_at_the_handshake(services: Services, after: str) -> None:
    cid = uuid.uuid4().hex[:15] + "="
    resp = app_module.ws_connect(ws_event("$connect", cid, query={"apiKey": API_KEY_A, "orderId": "ord_x",
                                                                  "afterSeq": after}), None)
    assert resp["statusCode"] == 400
    assert json.loads(resp["body"])["error"]["field"] == "afterSeq"


def test_order_id_on_connect_subscribes_once_the_socket_is_open(client: Any, services: Services,
                                                                notifier: RecordingNotifier,
                                                                stream: OrdersStream) -> None:
    order_id = submit(client)
    cid = uuid.uuid4().hex[:15] + "="
    resp = app_module.ws_connect(ws_event("$connect", cid, query={"apiKey": API_KEY_A, "orderId": order_id}), None)
    assert resp["statusCode"] == 200
    jobs = [r for r in receive_records(services) if json.loads(r["body"]).get("kind") == "subscribe"]
    assert len(jobs) == 1
    # Not open yet (the handshake is still completing): the job is retried, nothing is lost.
    assert len(invoke_worker(client, jobs)["batchItemFailures"]) == 1
    notifier.open_.add(cid)
    again = dict(jobs[0], attributes={"ApproximateReceiveCount": "2"})
    assert invoke_worker(client, [again]) == {"batchItemFailures": []}
    assert statuses(notifier, cid) == [("order.snapshot", 1)]
    run_worker(client, stream, order_id)
    assert [seq for _, seq in statuses(notifier, cid)] == [1, 2, 3, 4, 5]
