"""Every Lambda function in a container of its own: what one function resolved or cached (a
queue's URL, the API keys, a connection's owner, an order it read) is not there for the next.

The other tests share one container between the functions they invoke, as one process does.
Here each invocation gets a new one (its own clients and caches) on the same moto, Redis and
sockets, as on AWS, so each function is seen doing its own lookups: these flows pass only if no
function leans on another's cache, and they show tests/functional/test_iam.py each function's
own calls (GetQueueUrl before its first send, the keys' parameter before its first check).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest

import app as app_module
from chalicelib.api.services import Services, set_services
from chalicelib.config import Settings
from chalicelib.domain import OrderStatus, get_token, iso
from chalicelib.domain.clock import Clock, FakeClock
from chalicelib.execution.triggers import MarketEvent

from .conftest import (
    API_KEY_A,
    OrdersStream,
    RecordingNotifier,
    deliver,
    invoke_worker,
    make_services,
    make_settings,
    post_order,
    receive_records,
    record_for,
)
from .test_limit_orders import (
    best_price,
    market_events,
    push_sol_price_up,
    run_matcher,
    run_workers,
    submit_limit,
    sweep,
)
from .test_websocket import say, statuses, submit, ws_event

SOL, USDC = get_token("SOL"), get_token("USDC")
KEYS_PARAMETER = "/order-engine/test/api-keys"


class Containers:
    """A new container for each invocation, on the test's moto, Redis and socket stand-in."""

    def __init__(self, redis_client: Any, redis_prefix: str) -> None:
        self.settings: Settings = make_settings()
        self.notifier = RecordingNotifier()
        self._redis_client, self._redis_prefix = redis_client, redis_prefix
        self.current: Services | None = None

    def next(self, clock: Clock | None = None) -> Services:
        """The container the next invocation runs in."""
        fields = {} if clock is None else {"clock": clock}
        container = make_services(self.settings, self._redis_client, self._redis_prefix, **fields)
        container.__dict__["notifier"] = container.__dict__["stream_notifier"] = self.notifier
        set_services(container)
        self.current = container
        return container

    def status(self, order_id: str) -> OrderStatus:
        """The order's status, read by the test (outside any function)."""
        order = make_services(self.settings, self._redis_client, self._redis_prefix).orders.get(order_id)
        assert order is not None
        return order.status


@pytest.fixture
def containers(aws_env: None, redis_client: Any, redis_prefix: str) -> Iterator[Containers]:
    yield Containers(redis_client, redis_prefix)
    set_services(None)


@pytest.fixture
def app_client(aws_env: None) -> Iterator[Any]:
    from chalice.test import Client

    from app import app

    with Client(app) as client:
        yield client


def drain(records: Any) -> None:
    """Receive everything there is, as a consumer that then dies would: hidden for the visibility timeout."""
    while records():
        pass


def test_a_market_order_and_its_socket_with_keys_from_ssm(app_client: Any, containers: Containers) -> None:
    boto3.client("ssm", region_name="us-east-1").put_parameter(
        Name=KEYS_PARAMETER, Value=f"{API_KEY_A}:client-a", Type="SecureString")
    containers.settings = make_settings(api_keys={}, api_keys_parameter=KEYS_PARAMETER)
    stream = OrdersStream(containers.next())
    # REST intake checks the key against the parameter, stores the order and queues it
    containers.next()
    accepted = post_order(app_client)
    assert accepted.status_code == 202, accepted.body
    order_id = json.loads(accepted.body)["orderId"]
    # $connect checks the key too, and queues the ?orderId= subscription for the worker
    containers.next()
    cid = uuid.uuid4().hex[:15] + "="
    connected = app_module.ws_connect(ws_event("$connect", cid, query={"apiKey": API_KEY_A, "orderId": order_id}),
                                      None)
    assert connected["statusCode"] == 200
    by_kind = {json.loads(r["body"]).get("kind", "order"): r for r in receive_records(containers.next())}
    job = by_kind["subscribe"]
    # the job runs before API Gateway has opened the socket: it backs off, then sends the snapshot
    containers.next()
    assert invoke_worker(app_client, [job]) == {"batchItemFailures": [{"itemIdentifier": job["messageId"]}]}
    containers.notifier.open_.add(cid)
    containers.next()
    again = {**job, "attributes": {**job["attributes"], "ApproximateReceiveCount": "2"}}
    assert invoke_worker(app_client, [again]) == {"batchItemFailures": []}
    # the worker executes the order; the fan-out pushes what the subscriber has not seen
    containers.next()
    assert invoke_worker(app_client, [by_kind["order"]]) == {"batchItemFailures": []}
    containers.next()
    deliver(app_client, stream)
    assert statuses(containers.notifier, cid) == [("order.snapshot", 1), ("order.status", 2), ("order.status", 3),
                                                  ("order.status", 4), ("order.status", 5)]
    assert containers.status(order_id) is OrderStatus.CONFIRMED
    # $default knows whose connection it is; $disconnect forgets it
    containers.next()
    say(cid, {"action": "ping"})
    assert containers.notifier.sent[cid][-1] == {"type": "pong"}
    containers.next()
    app_module.ws_disconnect(ws_event("$disconnect", cid), None)
    assert containers.next().connections.get(cid) is None


def test_limit_orders_armed_triggered_sent_again_and_expired(app_client: Any, containers: Containers) -> None:
    limit = best_price(containers.next()) * Decimal("1.005")
    crossing = submit_limit(app_client, limit)
    expiring = submit_limit(app_client, limit * 2, expiresAt=iso(datetime.now(UTC) + timedelta(minutes=5)))
    assert run_workers(app_client, containers.next()) == 2
    assert containers.status(crossing) is containers.status(expiring) is OrderStatus.WAITING
    # another trader's swap moves the price through the crossing order's level: the matcher triggers it
    push_sol_price_up(containers.next())
    assert run_matcher(app_client, containers.next()) >= 1
    assert containers.status(crossing) is OrderStatus.ROUTING
    # the worker that received the trigger's message dies with it: the queue hides it for its visibility
    assert [json.loads(r["body"])["orderId"] for r in receive_records(containers.next())] == [crossing]
    # ten minutes on, past the trigger's grace and the other order's expiry, the sweep sends the one
    # again and ends the other
    containers.next(clock=FakeClock(time.time() + 600))
    sweep(app_client)
    assert containers.status(expiring) is OrderStatus.EXPIRED
    assert run_workers(app_client, containers.next()) == 1
    assert containers.status(crossing) is OrderStatus.CONFIRMED


@pytest.mark.parametrize("function", ["api_handler", "process_orders", "process_dead_letters",
                                      "match_market_events"])
def test_a_tick_any_function_applies_reaches_the_matcher_where_orders_wait(
        app_client: Any, containers: Containers, function: str) -> None:
    # GIVEN an order waiting on SOL/USDC, far from the price; and, for the dead-letter handler, an
    # order whose transaction the network dropped: still in flight when its message is dead-lettered
    if function == "process_dead_letters":
        containers.settings = replace(make_settings(), blockhash_expiry_rate=1.0, confirm_wait_ms=50,
                                      dead_letter_wait_ms=1)
    waiting = submit_limit(app_client, best_price(containers.next()) * 2)
    market_order = submit(app_client)
    records = {json.loads(r["body"])["orderId"]: r for r in receive_records(containers.next())}
    invoke_worker(app_client, [records[waiting]])
    assert containers.status(waiting) is OrderStatus.WAITING
    if function == "process_dead_letters":
        containers.next()
        invoke_worker(app_client, [records[market_order]])
        assert containers.status(market_order) is OrderStatus.SUBMITTED
    reader = containers.next()
    drain(lambda: market_events(reader))
    # WHEN the function runs in a container where a tick of the market's random walk is due
    container = containers.next(clock=FakeClock(time.time() + 5))
    if function == "api_handler":
        resp = app_client.http.get("/api/quotes?tokenIn=SOL&tokenOut=USDC&amount=1", headers={"x-api-key": API_KEY_A})
        assert resp.status_code == 200, resp.body
    elif function == "process_orders":
        assert invoke_worker(app_client, [records[market_order]]) == {"batchItemFailures": []}
        assert containers.status(market_order) is OrderStatus.CONFIRMED
    elif function == "process_dead_letters":
        sqs = boto3.client("sqs", region_name="us-east-1")
        sqs.send_message(QueueUrl=sqs.get_queue_url(QueueName=container.settings.orders_dlq)["QueueUrl"],
                         MessageBody=json.dumps({"orderId": market_order}))
        [record] = receive_records(container, queue=container.settings.orders_dlq)
        # still in flight: asked again once its blockhash has expired
        assert invoke_worker(app_client, [record], name="process_dead_letters") == {
            "batchItemFailures": [{"itemIdentifier": record["messageId"]}]}
        assert containers.status(market_order) is OrderStatus.SUBMITTED
    else:
        event = {**record_for("-"), "body": json.dumps(MarketEvent("swap", ((SOL.mint, USDC.mint),), 1, 0)
                                                       .to_message())}
        assert invoke_worker(app_client, [event], name="match_market_events") == {"batchItemFailures": []}
    # THEN the tick went out as a market event on the pair where the order waits
    published = [json.loads(r["body"]) for r in market_events(containers.next())]
    assert [SOL.mint, USDC.mint] in [pair for event in published for pair in event["pairs"]], published
