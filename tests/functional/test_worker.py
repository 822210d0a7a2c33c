"""Queue → worker: at-most-once execution, retries with back-off, partial batches, the DLQ."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from chalicelib.api.services import Services
from chalicelib.domain import OrderStatus, RpcError, Transaction

from .conftest import invoke_worker, order_body, post_order, receive_records, record_for


class WorkerCrash(BaseException):
    """Simulates the process dying: not an Exception, so nothing in the worker catches it."""


def submit(client: Any, **overrides: Any) -> str:
    resp = post_order(client, order_body(**overrides))
    assert resp.status_code == 202, resp.body
    return str(json.loads(resp.body)["orderId"])


def test_market_order_goes_from_pending_to_confirmed(client: Any, services: Services) -> None:
    order_id = submit(client)
    records = receive_records(services)
    assert invoke_worker(client, records) == {"batchItemFailures": []}
    order = services.orders.get(order_id)
    assert order is not None and order.status is OrderStatus.CONFIRMED
    assert [e.status.value for e in order.history] == ["pending", "routing", "building", "submitted", "confirmed"]
    assert [e.seq for e in order.history] == [1, 2, 3, 4, 5]
    confirmed = order.history[-1].data
    assert confirmed["txHash"] == order.signature and confirmed["venue"] in ("raydium", "meteora")
    assert float(confirmed["amountOut"]) > 0
    assert services.state.active("client-a") == []


def test_the_same_message_delivered_three_times_swaps_once(client: Any, services: Services) -> None:
    order_id = submit(client)
    [record] = receive_records(services)
    for count in (1, 2, 3):
        dup = dict(record, attributes={**record["attributes"], "ApproximateReceiveCount": str(count)})
        assert invoke_worker(client, [dup]) == {"batchItemFailures": []}
    assert services.chain.executed_swaps() == 1
    order = services.orders.get(order_id)
    assert order is not None and order.status is OrderStatus.CONFIRMED and len(order.history) == 5


@pytest.mark.parametrize("crash_point", ["before_send", "after_send"])
def test_crash_right_after_submit_is_reconciled_not_resent(
    client: Any, services: Services, monkeypatch: pytest.MonkeyPatch, crash_point: str
) -> None:
    order_id = submit(client)
    chain = services.chain
    real_send = chain.send_transaction

    def crashing_send(tx: Transaction) -> str:
        if crash_point == "after_send":
            real_send(tx)
        raise WorkerCrash

    monkeypatch.setattr(chain, "send_transaction", crashing_send)
    record = record_for(order_id, 1)
    with pytest.raises(WorkerCrash):
        invoke_worker(client, [record])
    order = services.orders.get(order_id)
    assert order is not None and order.status is OrderStatus.SUBMITTED and order.signature

    monkeypatch.setattr(chain, "send_transaction", real_send)
    assert invoke_worker(client, [record_for(order_id, 2)]) == {"batchItemFailures": []}
    order = services.orders.get(order_id)
    assert order is not None and order.status is OrderStatus.CONFIRMED
    assert order.tx_hash == order.signature
    assert services.chain.executed_swaps() == 1
    assert [e.status.value for e in order.history] == ["pending", "routing", "building", "submitted", "confirmed"]


def test_three_transient_failures_fail_the_order_with_backoff(
    client: Any, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    order_id = submit(client)
    visibilities: list[int] = []
    real_set = services.queue.set_visibility
    monkeypatch.setattr(services.queue, "set_visibility",
                        lambda handle, seconds: (visibilities.append(seconds), real_set(handle, seconds))[1])

    def rpc_down(*args: Any, **kwargs: Any) -> Any:
        raise RpcError("simulated RPC node timeout")

    for venue in services.market.venues.values():
        monkeypatch.setattr(venue, "quote", rpc_down)

    failures = []
    for attempt in (1, 2, 3):
        [record] = receive_records(services, wait=0) or [None]  # type: ignore[list-item]
        assert record is not None, f"message not redelivered for attempt {attempt}"
        assert record["attributes"]["ApproximateReceiveCount"] == str(attempt)
        failures.append(invoke_worker(client, [record])["batchItemFailures"])
        services._aws.client("sqs").change_message_visibility(  # skip the wait in the test
            QueueUrl=services.queue.url, ReceiptHandle=record["receiptHandle"], VisibilityTimeout=0
        ) if attempt < 3 else None

    assert [len(f) for f in failures] == [1, 1, 0]
    assert visibilities == [2, 4]  # base 2 s · 2^(attempt-1)
    order = services.orders.get(order_id)
    assert order is not None and order.status is OrderStatus.FAILED
    assert order.error == {"code": "no_route", "message": order.error["message"], "attempt": 3, "retryable": True}
    statuses = [e.status.value for e in order.history]
    assert statuses == ["pending", "routing", "pending", "routing", "pending", "routing", "failed"]
    retries = [e.data["attempt"] for e in order.history if e.status is OrderStatus.PENDING and e.seq > 1]
    assert retries == [2, 3]
    assert services.chain.executed_swaps() == 0


def test_slippage_exceeded_fails_at_once_and_permanently(
    client: Any, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    order_id = submit(client)
    real_quote = {name: v.quote for name, v in services.market.venues.items()}

    def generous(name: str) -> Any:
        def quote(*args: Any, **kwargs: Any) -> Any:
            q = real_quote[name](*args, **kwargs)
            return type(q)(**{**q.__dict__, "amount_out": q.amount_out * 2})  # a quote the pool cannot honour

        return quote

    for name, venue in services.market.venues.items():
        monkeypatch.setattr(venue, "quote", generous(name))
    assert invoke_worker(client, [record_for(order_id)]) == {"batchItemFailures": []}
    order = services.orders.get(order_id)
    assert order is not None and order.status is OrderStatus.FAILED
    assert order.error is not None and order.error["code"] == "slippage_exceeded"
    assert order.error["retryable"] is False
    assert services.chain.executed_swaps() == 0


def test_one_poisoned_record_does_not_retry_the_others(client: Any, services: Services) -> None:
    good = [submit(client) for _ in range(3)]
    poisoned = record_for("ignored")
    poisoned["body"] = "{not json"
    records = [record_for(good[0]), poisoned, record_for(good[1]), record_for(good[2])]
    result = invoke_worker(client, records)
    assert result == {"batchItemFailures": [{"itemIdentifier": poisoned["messageId"]}]}
    for order_id in good:
        order = services.orders.get(order_id)
        assert order is not None and order.status is OrderStatus.CONFIRMED


def test_terminal_order_redelivered_is_acknowledged_and_ignored(client: Any, services: Services) -> None:
    order_id = submit(client)
    invoke_worker(client, [record_for(order_id)])
    before = services.orders.get(order_id)
    assert invoke_worker(client, [record_for(order_id, 2)]) == {"batchItemFailures": []}
    after = services.orders.get(order_id)
    assert before is not None and after is not None and after.version == before.version


def test_dead_letter_handler_fails_a_stuck_order(client: Any, services: Services) -> None:
    order_id = submit(client)
    result = invoke_worker(client, [record_for(order_id, 3)], name="process_dead_letters")
    assert result == {"batchItemFailures": []}
    order = services.orders.get(order_id)
    assert order is not None and order.status is OrderStatus.FAILED
    assert order.error is not None and order.error["code"] == "retries_exhausted"
    assert services.state.active("client-a") == []


def test_dead_lettered_subscription_job_leaves_its_order_alone(client: Any, services: Services) -> None:
    order_id = submit(client)
    job = record_for(order_id, 3, kind="subscribe", connectionId="Lp0Sxd5uIAMCJ7Q=", clientId="client-a")
    assert invoke_worker(client, [job], name="process_dead_letters") == {"batchItemFailures": []}
    order = services.orders.get(order_id)
    assert order is not None and order.status is OrderStatus.PENDING


def test_unknown_order_message_is_acknowledged(client: Any) -> None:
    assert invoke_worker(client, [record_for("ord_doesnotexist")]) == {"batchItemFailures": []}


def test_a_worker_bug_on_the_last_attempt_fails_the_order_with_a_sentence(
    client: Any, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    order_id = submit(client)

    def bug(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("orderId")

    monkeypatch.setattr(services.executor, "execute", bug)
    assert invoke_worker(client, [record_for(order_id, 3)]) == {"batchItemFailures": []}
    order = services.orders.get(order_id)
    assert order is not None and order.status is OrderStatus.FAILED and order.error is not None
    assert order.error["code"] == "internal_error"
    assert order.error["message"] == ("the worker failed unexpectedly (KeyError) on every attempt; "
                                      "its log lines with this order id have the details")


def test_a_dead_lettered_order_still_in_flight_is_asked_again_when_its_blockhash_expires(
        client: Any, services: Services) -> None:
    # GIVEN an order submitted on a network that drops its transaction, and the dead-letter
    # handler allowed only a short look at the chain
    services.settings = replace(services.settings, blockhash_expiry_rate=1.0, confirm_wait_ms=50, dead_letter_wait_ms=1)
    services.__dict__.pop("chain", None)
    services.__dict__.pop("executor", None)
    order_id = submit(client)
    invoke_worker(client, receive_records(services))
    assert services.orders.get(order_id).status is OrderStatus.SUBMITTED  # type: ignore[union-attr]
    # WHEN its message reaches the dead-letter queue and the handler runs
    sqs = services._aws.client("sqs")
    dlq = services.dead_letters.url
    sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps({"orderId": order_id}))
    [record] = receive_records(services, queue=services.settings.orders_dlq)
    result = invoke_worker(client, [record], name="process_dead_letters")
    # THEN the order is left alone, its message kept, and hidden until the blockhash has expired
    assert result == {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}
    assert services.orders.get(order_id).status is OrderStatus.SUBMITTED  # type: ignore[union-attr]
    assert sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=0).get("Messages", []) == []
    attributes = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])
    assert attributes["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "1"


def _count_reads(services: Services) -> list[str]:
    """The order ids of every GetItem the app's DynamoDB client makes from now on."""
    reads: list[str] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        reads.append(params["Key"]["orderId"]["S"])

    services._aws.client("dynamodb").meta.events.register("provide-client-params.dynamodb.GetItem", record)
    return reads


def test_the_first_delivery_runs_the_order_its_message_carries_without_reading_it(
        client: Any, services: Services) -> None:
    order_id = submit(client)
    [record] = receive_records(services)
    assert json.loads(record["body"])["order"]["version"] == 1  # intake's snapshot rides along
    reads = _count_reads(services)
    assert invoke_worker(client, [record]) == {"batchItemFailures": []}
    assert reads == []
    order = services.orders.get(order_id)
    assert order is not None and order.status is OrderStatus.CONFIRMED
    assert [e.seq for e in order.history] == [1, 2, 3, 4, 5]


def test_a_redelivery_reads_the_order_whatever_its_message_carries(client: Any, services: Services) -> None:
    order_id = submit(client)
    [record] = receive_records(services)
    again = dict(record, attributes={**record["attributes"], "ApproximateReceiveCount": "2"})
    reads = _count_reads(services)
    assert invoke_worker(client, [again]) == {"batchItemFailures": []}
    assert reads == [order_id]
    order = services.orders.get(order_id)
    assert order is not None and order.status is OrderStatus.CONFIRMED


def test_a_stale_carried_order_is_read_again_and_swaps_once(client: Any, services: Services) -> None:
    # GIVEN two first deliveries carrying the same snapshot (intake queued the order twice)
    order_id = submit(client)
    [record] = receive_records(services)
    twin = dict(record, messageId="twin", receiptHandle="twin-handle")
    assert invoke_worker(client, [record]) == {"batchItemFailures": []}
    reads = _count_reads(services)
    # WHEN the second one runs from its snapshot (pending, version 1) after the order confirmed
    assert invoke_worker(client, [twin]) == {"batchItemFailures": []}
    # THEN its first write is refused, it reads the order, finds it done and sends nothing again
    assert reads == [order_id]
    assert services.chain.executed_swaps() == 1
    order = services.orders.get(order_id)
    assert order is not None and order.status is OrderStatus.CONFIRMED and len(order.history) == 5


def test_an_order_cancelled_before_its_first_delivery_is_not_executed(client: Any, services: Services) -> None:
    order_id = submit(client)
    [record] = receive_records(services)
    assert client.http.delete(f"/api/orders/{order_id}", headers={"x-api-key": "key-a"}).status_code == 200
    reads = _count_reads(services)
    assert invoke_worker(client, [record]) == {"batchItemFailures": []}
    assert reads == [order_id]  # the carried snapshot was stale: read, found cancelled, left alone
    assert services.chain.executed_swaps() == 0
    order = services.orders.get(order_id)
    assert order is not None and order.status is OrderStatus.CANCELLED
