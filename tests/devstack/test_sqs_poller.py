"""The SQS poller feeds a Chalice app's ``on_sqs_message`` handlers as Lambda's event source mapping does."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from chalice import Chalice

from devstack.event_sources import failed_item_identifiers
from devstack.sqs_poller import SqsPoller

from .conftest import devstack_threads, wait_until

Behaviour = Callable[[list[dict[str, Any]], int], Any]


@dataclass
class Invocations:
    """Every batch the handler received, in order, with the context it was given."""

    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    contexts: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def records(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r for batch in self.batches for r in batch]

    def bodies(self) -> list[str]:
        return [r["body"] for r in self.records()]


def make_app(queue: str, behaviour: Behaviour, invocations: Invocations, **options: Any) -> Chalice:
    app = Chalice(app_name="fake-sqs", configure_logs=False, env={})

    @app.on_sqs_message(queue=queue, **options)
    def handle(event: Any) -> Any:
        records = event.to_dict()["Records"]
        with invocations.lock:
            invocations.batches.append(records)
            invocations.contexts.append(event.context)
            n = len(invocations.batches)
        return behaviour(records, n)

    return app


@pytest.fixture
def queue(sqs: Any) -> Iterator[tuple[str, str]]:
    name = f"devstack-{uuid.uuid4().hex[:12]}"
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "1"})["QueueUrl"]
    yield name, url
    sqs.delete_queue(QueueUrl=url)


def run_poller(app: Chalice, sqs: Any, **options: Any) -> SqsPoller:
    poller = SqsPoller(app, sqs, function_timeouts={"handle": 30}, **options)
    poller.start()
    return poller


def send(sqs: Any, url: str, *bodies: str) -> None:
    entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies)]
    assert not sqs.send_message_batch(QueueUrl=url, Entries=entries).get("Failed")


def queue_is_empty(sqs: Any, url: str) -> bool:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return {attributes["ApproximateNumberOfMessages"], attributes["ApproximateNumberOfMessagesNotVisible"]} == {"0"}


def succeed(records: list[dict[str, Any]], n: int) -> Any:
    return {"batchItemFailures": []}


@pytest.mark.parametrize(("response", "expected"), [
    (None, set()),
    ({}, set()),
    ({"batchItemFailures": None}, set()),
    ({"batchItemFailures": []}, set()),
    ({"batchItemFailures": [{"itemIdentifier": "b"}]}, {"b"}),
    ({"batchItemFailures": [{"itemIdentifier": ""}]}, None),
    ({"batchItemFailures": [{"itemIdentifier": None}]}, None),
    ({"batchItemFailures": [{"id": "a"}]}, None),
    ({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, None),
    ({"batchItemFailures": "a"}, None),
    ("ok", None),
])
def test_batch_item_failures_follow_lambdas_rules(response: Any, expected: set[str] | None) -> None:
    assert failed_item_identifiers(response, ["a", "b", "c"]) == expected


def test_records_are_shaped_like_lambdas_and_all_deleted_on_success(sqs: Any, queue: tuple[str, str]) -> None:
    name, url = queue
    invocations = Invocations()
    sqs.send_message(QueueUrl=url, MessageBody='{"orderId": "ord_1"}',
                     MessageAttributes={"kind": {"DataType": "String", "StringValue": "order"}})
    send(sqs, url, "two", "three")
    poller = run_poller(make_app(name, succeed, invocations, batch_size=10), sqs)
    try:
        wait_until(lambda: len(invocations.records()) == 3)
        wait_until(lambda: queue_is_empty(sqs, url))
    finally:
        poller.stop()
    records = invocations.records()
    assert sorted(invocations.bodies()) == sorted(['{"orderId": "ord_1"}', "two", "three"])
    assert len({r["messageId"] for r in records}) == 3
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for record in records:
        assert record["eventSource"] == "aws:sqs"
        assert record["eventSourceARN"] == arn
        assert record["awsRegion"] == "us-east-1"
        assert record["receiptHandle"] and record["md5OfBody"]
        attributes = record["attributes"]
        assert attributes["ApproximateReceiveCount"] == "1"
        assert attributes["SentTimestamp"].isdigit() and attributes["ApproximateFirstReceiveTimestamp"].isdigit()
        assert attributes["SenderId"]
    first = next(r for r in records if r["body"] == '{"orderId": "ord_1"}')
    assert first["messageAttributes"] == {"kind": {"stringValue": "order", "stringListValues": [],
                                                   "binaryListValues": [], "dataType": "String"}}
    context = invocations.contexts[0]
    assert context.function_name == "fake-sqs-local-handle"
    assert context.invoked_function_arn.endswith(":function:fake-sqs-local-handle")
    assert context.aws_request_id and context.memory_limit_in_mb == 128


def test_a_partial_failure_deletes_only_the_successes(sqs: Any, queue: tuple[str, str]) -> None:
    name, url = queue
    invocations = Invocations()

    def fail_bad_once(records: list[dict[str, Any]], n: int) -> Any:
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records
                                      if r["body"] == "bad" and r["attributes"]["ApproximateReceiveCount"] == "1"]}

    send(sqs, url, "good-1", "bad", "good-2")
    poller = run_poller(make_app(name, fail_bad_once, invocations, batch_size=10), sqs)
    try:
        wait_until(lambda: invocations.bodies().count("bad") == 2)
        wait_until(lambda: queue_is_empty(sqs, url))
    finally:
        poller.stop()
    assert sorted(invocations.bodies()) == ["bad", "bad", "good-1", "good-2"]
    redelivered = [r for r in invocations.records() if r["body"] == "bad"][1]
    assert redelivered["attributes"]["ApproximateReceiveCount"] == "2"


def test_a_raising_handler_deletes_nothing(sqs: Any, queue: tuple[str, str], caplog: pytest.LogCaptureFixture) -> None:
    name, url = queue
    invocations = Invocations()

    def raise_first(records: list[dict[str, Any]], n: int) -> Any:
        if any(r["attributes"]["ApproximateReceiveCount"] == "1" for r in records):
            raise RuntimeError("the first delivery fails")
        return None

    send(sqs, url, "a", "b")
    with caplog.at_level(logging.ERROR, logger="devstack.sqs"):
        poller = run_poller(make_app(name, raise_first, invocations, batch_size=10), sqs)
        try:
            wait_until(lambda: invocations.bodies().count("a") == 2 and invocations.bodies().count("b") == 2)
            wait_until(lambda: queue_is_empty(sqs, url))
        finally:
            poller.stop()
    assert sorted(r["attributes"]["ApproximateReceiveCount"] for r in invocations.records()) == ["1", "1", "2", "2"]
    assert "the first delivery fails" in caplog.text


def test_an_empty_item_identifier_fails_the_whole_batch(sqs: Any, queue: tuple[str, str]) -> None:
    name, url = queue
    invocations = Invocations()

    def empty_identifier_first(records: list[dict[str, Any]], n: int) -> Any:
        first = any(r["attributes"]["ApproximateReceiveCount"] == "1" for r in records)
        return {"batchItemFailures": [{"itemIdentifier": ""}]} if first else {"batchItemFailures": []}

    send(sqs, url, "a", "b", "c")
    poller = run_poller(make_app(name, empty_identifier_first, invocations, batch_size=10), sqs)
    try:
        wait_until(lambda: len(invocations.records()) == 6)
        wait_until(lambda: queue_is_empty(sqs, url))
    finally:
        poller.stop()
    assert sorted(invocations.bodies()) == ["a", "a", "b", "b", "c", "c"]
    assert sorted(r["attributes"]["ApproximateReceiveCount"] for r in invocations.records()) == ["1"] * 3 + ["2"] * 3


def test_batch_size_and_maximum_concurrency_are_honoured(sqs: Any, queue: tuple[str, str]) -> None:
    name, url = queue
    invocations = Invocations()
    running = {"now": 0, "most": 0}
    lock = threading.Lock()
    overlapped = threading.Event()

    def slow(records: list[dict[str, Any]], n: int) -> Any:
        with lock:
            running["now"] += 1
            running["most"] = max(running["most"], running["now"])
            if running["now"] == 2:
                overlapped.set()
        overlapped.wait(timeout=20)  # the first batch waits for a second to run beside it
        time.sleep(0.05)  # a third, if the poller allowed one, would find both still running
        with lock:
            running["now"] -= 1
        return None

    send(sqs, url, *[f"m{i}" for i in range(8)])
    poller = run_poller(make_app(name, slow, invocations, batch_size=2, maximum_concurrency=2), sqs)
    try:
        wait_until(lambda: len(invocations.records()) == 8, timeout=20)
        wait_until(lambda: queue_is_empty(sqs, url))
    finally:
        poller.stop()
    assert all(len(batch) <= 2 for batch in invocations.batches)
    assert running["most"] == 2


def test_a_short_visibility_timeout_is_warned_about(sqs: Any, queue: tuple[str, str],
                                                    caplog: pytest.LogCaptureFixture) -> None:
    name, _ = queue
    app = make_app(name, succeed, Invocations())
    with caplog.at_level(logging.WARNING, logger="devstack.sqs"):
        poller = SqsPoller(app, sqs, function_timeouts={"handle": 60})
        poller.start()
        poller.stop()
    assert "below 6 x the timeout of handle" in caplog.text


def test_stop_joins_every_thread(sqs: Any, queue: tuple[str, str]) -> None:
    name, _ = queue
    before = devstack_threads()
    poller = SqsPoller(make_app(name, succeed, Invocations()), sqs)
    poller.start()
    started = devstack_threads() - before
    assert started
    poller.stop()
    assert not [t for t in started if t.is_alive()]  # joined by stop(), however long it took


def test_messages_sent_while_running_are_delivered(sqs: Any, queue: tuple[str, str]) -> None:
    name, url = queue
    invocations = Invocations()
    poller = run_poller(make_app(name, succeed, invocations, batch_size=5), sqs)
    try:
        for i in range(5):
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": i}))
        wait_until(lambda: len(invocations.records()) == 5)
        wait_until(lambda: queue_is_empty(sqs, url))
    finally:
        poller.stop()
    assert sorted(json.loads(b)["n"] for b in invocations.bodies()) == [0, 1, 2, 3, 4]


def test_the_batching_window_gathers_records_into_one_batch(sqs: Any, queue: tuple[str, str]) -> None:
    name, url = queue
    invocations = Invocations()
    app = make_app(name, succeed, invocations, batch_size=5, maximum_batching_window_in_seconds=3)
    poller = run_poller(app, sqs)
    try:
        sqs.send_message(QueueUrl=url, MessageBody="first")
        in_flight = ["ApproximateNumberOfMessagesNotVisible"]
        wait_until(lambda: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=in_flight)["Attributes"][
            in_flight[0]] == "1")
        send(sqs, url, "2", "3", "4", "5")
        wait_until(lambda: len(invocations.records()) == 5)
    finally:
        poller.stop()
    assert [len(batch) for batch in invocations.batches] == [5]
