"""The DynamoDB stream poller feeds a Chalice app's ``on_dynamodb_record`` handlers as Lambda's
event source mapping does: from moto's streams, and from a stream with shards moto never makes."""

from __future__ import annotations

import base64
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from chalice import Chalice

from devstack.stream_poller import StreamOptions, StreamPoller, stream_lambda_record, table_of_stream

from .conftest import CREDENTIALS, devstack_threads, wait_until

Behaviour = Callable[[list[dict[str, Any]], int], Any]
REPORTING = StreamOptions(report_batch_item_failures=True)


@dataclass
class Invocations:
    """Every batch the handler received, in order, with the context it was given."""

    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    contexts: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def records(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r for batch in self.batches for r in batch]

    def pks(self) -> list[str]:
        return [r["dynamodb"]["Keys"]["pk"]["S"] for r in self.records()]

    def batch_keys(self) -> list[list[str]]:
        with self.lock:
            return [[r["dynamodb"]["Keys"]["pk"]["S"] for r in batch] for batch in self.batches]


def make_app(table: str, behaviour: Behaviour, invocations: Invocations, **options: Any) -> Chalice:
    app = Chalice(app_name="fake-streams", configure_logs=False, env={})
    # As the engine's local default: the ARN names the table; its label is a placeholder.
    arn = f"arn:aws:dynamodb:us-east-1:000000000000:table/{table}/stream/local"

    @app.on_dynamodb_record(stream_arn=arn, **options)
    def handle(event: Any) -> Any:
        records = event.to_dict()["Records"]
        with invocations.lock:
            invocations.batches.append(records)
            invocations.contexts.append(event.context)
            n = len(invocations.batches)
        return behaviour(records, n)

    return app


def succeed(records: list[dict[str, Any]], n: int) -> Any:
    return {"batchItemFailures": []}


@pytest.fixture
def dynamodb(moto_endpoint: str) -> Iterator[Any]:
    client = boto3.client("dynamodb", endpoint_url=moto_endpoint, **CREDENTIALS)
    yield client
    client.close()


@pytest.fixture
def streams(moto_endpoint: str) -> Iterator[Any]:
    client = boto3.client("dynamodbstreams", endpoint_url=moto_endpoint, **CREDENTIALS)
    yield client
    client.close()


@pytest.fixture
def table(dynamodb: Any) -> Iterator[str]:
    name = f"devstack-{uuid.uuid4().hex[:12]}"
    dynamodb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                          AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                          KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                          StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})
    yield name
    dynamodb.delete_table(TableName=name)


def put(dynamodb: Any, table: str, *keys: str, **extra: Any) -> None:
    for key in keys:
        dynamodb.put_item(TableName=table, Item={"pk": {"S": key}, **extra})


def run_poller(app: Chalice, streams: Any, dynamodb: Any, **options: Any) -> StreamPoller:
    poller = StreamPoller(app, streams, dynamodb, function_timeouts={"handle": 30}, poll_seconds=0.05,
                          retry_seconds=0.01, **options)
    poller.start()
    return poller


def test_records_are_shaped_like_lambdas_and_come_in_order_from_latest(streams: Any, dynamodb: Any,
                                                                       table: str) -> None:
    invocations = Invocations()
    put(dynamodb, table, "before")  # LATEST: written before the mapping exists, never delivered
    poller = run_poller(make_app(table, succeed, invocations, batch_size=100), streams, dynamodb)
    try:
        put(dynamodb, table, "a", data={"B": b"\x00\x01"})
        put(dynamodb, table, *[f"k{i}" for i in range(5)])
        wait_until(lambda: len(invocations.records()) == 6)
    finally:
        poller.stop()
    assert invocations.pks() == ["a", "k0", "k1", "k2", "k3", "k4"]
    records = invocations.records()
    stream_arn = dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    sequences = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert sequences == sorted(sequences) and len(set(sequences)) == 6
    first = records[0]
    assert first["eventSource"] == "aws:dynamodb" and first["eventName"] == "INSERT"
    assert first["eventSourceARN"] == stream_arn  # the table's current stream, not the placeholder
    assert first["awsRegion"] == "us-east-1" and first["eventID"]
    change = first["dynamodb"]
    assert change["StreamViewType"] == "NEW_IMAGE" and change["Keys"] == {"pk": {"S": "a"}}
    assert change["NewImage"]["data"] == {"B": base64.b64encode(b"\x00\x01").decode()}
    assert isinstance(change["ApproximateCreationDateTime"], int) and change["SizeBytes"] > 0
    json.dumps(records)  # Lambda's event is JSON
    context = invocations.contexts[0]
    assert context.function_name == "fake-streams-local-handle"
    assert context.invoked_function_arn.endswith(":function:fake-streams-local-handle")


def test_trim_horizon_delivers_what_the_stream_already_holds(streams: Any, dynamodb: Any, table: str) -> None:
    invocations = Invocations()
    put(dynamodb, table, "old-1", "old-2")
    poller = run_poller(make_app(table, succeed, invocations, starting_position="TRIM_HORIZON"), streams, dynamodb)
    try:
        put(dynamodb, table, "new")
        wait_until(lambda: len(invocations.records()) == 3)
    finally:
        poller.stop()
    assert invocations.pks() == ["old-1", "old-2", "new"]


def test_batch_size_is_honoured_and_order_kept(streams: Any, dynamodb: Any, table: str) -> None:
    invocations = Invocations()
    keys = [f"k{i}" for i in range(7)]
    put(dynamodb, table, *keys)
    app = make_app(table, succeed, invocations, batch_size=3, starting_position="TRIM_HORIZON")
    poller = run_poller(app, streams, dynamodb)
    try:
        wait_until(lambda: len(invocations.records()) == 7)
    finally:
        poller.stop()
    assert invocations.pks() == keys
    assert all(1 <= len(batch) <= 3 for batch in invocations.batch_keys())


def test_a_partial_failure_retries_from_the_reported_record_only(streams: Any, dynamodb: Any, table: str) -> None:
    invocations = Invocations()

    def fail_c_once(records: list[dict[str, Any]], n: int) -> Any:
        keys = [r["dynamodb"]["Keys"]["pk"]["S"] for r in records]
        if n == 1 and "c" in keys:
            return {"batchItemFailures": [{"itemIdentifier": records[keys.index("c")]["dynamodb"]["SequenceNumber"]}]}
        return None

    put(dynamodb, table, "a", "b", "c", "d")
    app = make_app(table, fail_c_once, invocations, starting_position="TRIM_HORIZON")
    poller = run_poller(app, streams, dynamodb, options=REPORTING)
    try:
        wait_until(lambda: invocations.pks() == ["a", "b", "c", "d", "c", "d"])
        put(dynamodb, table, "e")
        wait_until(lambda: invocations.pks()[-1:] == ["e"])
    finally:
        poller.stop()
    assert invocations.batch_keys() == [["a", "b", "c", "d"], ["c", "d"], ["e"]]


def test_without_report_batch_item_failures_a_partial_response_is_a_success(
        streams: Any, dynamodb: Any, table: str) -> None:
    invocations = Invocations()

    def report_first(records: list[dict[str, Any]], n: int) -> Any:
        return {"batchItemFailures": [{"itemIdentifier": records[0]["dynamodb"]["SequenceNumber"]}]}

    put(dynamodb, table, "a", "b")
    poller = run_poller(make_app(table, report_first, invocations, starting_position="TRIM_HORIZON"),
                        streams, dynamodb)
    try:
        wait_until(lambda: len(invocations.records()) >= 2)
        put(dynamodb, table, "c")
        wait_until(lambda: invocations.pks()[-1:] == ["c"])
    finally:
        poller.stop()
    assert invocations.pks() == ["a", "b", "c"]


@pytest.mark.parametrize("response", [{"batchItemFailures": [{"itemIdentifier": "999"}]},
                                      {"batchItemFailures": [{"itemIdentifier": ""}]}, "ok"])
def test_an_invalid_batch_response_retries_the_whole_batch(streams: Any, dynamodb: Any, table: str,
                                                            response: Any) -> None:
    invocations = Invocations()
    put(dynamodb, table, "a", "b")
    app = make_app(table, lambda records, n: response if n == 1 else None, invocations,
                   starting_position="TRIM_HORIZON")
    poller = run_poller(app, streams, dynamodb, options=REPORTING)
    try:
        wait_until(lambda: len(invocations.batches) == 2)
    finally:
        poller.stop()
    assert invocations.batch_keys() == [["a", "b"], ["a", "b"]]


def test_a_function_error_bisects_the_batch_and_gives_up_on_the_poison_after_the_retries(
        streams: Any, dynamodb: Any, table: str, moto_endpoint: str, caplog: pytest.LogCaptureFixture) -> None:
    invocations = Invocations()
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint, **CREDENTIALS)
    failures = f"devstack-failures-{uuid.uuid4().hex[:8]}"
    failures_url = sqs.create_queue(QueueName=failures)["QueueUrl"]

    def poison(records: list[dict[str, Any]], n: int) -> Any:
        if any(r["dynamodb"]["Keys"]["pk"]["S"] == "poison" for r in records):
            raise RuntimeError("cannot handle the poison record")
        return None

    keys = ["a", "b", "poison", "c"]
    put(dynamodb, table, *keys)
    options = StreamOptions(report_batch_item_failures=True, bisect_batch_on_function_error=True,
                            maximum_retry_attempts=2, on_failure_queue=failures)
    app = make_app(table, poison, invocations, starting_position="TRIM_HORIZON")
    with caplog.at_level(logging.ERROR, logger="devstack.streams"):
        poller = run_poller(app, streams, dynamodb, options=options, sqs_client=sqs)
        try:
            messages = wait_until(lambda: sqs.receive_message(QueueUrl=failures_url).get("Messages"))
            put(dynamodb, table, "after")  # the shard goes on past what was given up
            wait_until(lambda: "after" in invocations.pks())
        finally:
            poller.stop()
            sqs.delete_queue(QueueUrl=failures_url)
            sqs.close()
    # split in two, then the poison's half in two (its second retry), then given up: everything but
    # the poison got through, in order
    assert invocations.batch_keys() == [keys, ["a", "b"], ["poison", "c"], ["poison"], ["c"], ["after"]]
    assert "cannot handle the poison record" in caplog.text
    info = json.loads(messages[0]["Body"])
    assert info["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert info["requestContext"]["approximateInvokeCount"] == 3
    batch = info["DDBStreamBatchInfo"]
    poisoned = next(r for r in invocations.records() if r["dynamodb"]["Keys"]["pk"]["S"] == "poison")
    assert batch["startSequenceNumber"] == batch["endSequenceNumber"] == poisoned["dynamodb"]["SequenceNumber"]
    assert batch["batchSize"] == 1 and batch["streamArn"] == poisoned["eventSourceARN"]


def test_without_bisect_a_failing_batch_is_retried_whole_then_skipped(streams: Any, dynamodb: Any,
                                                                      table: str) -> None:
    invocations = Invocations()

    def fail_ab(records: list[dict[str, Any]], n: int) -> Any:
        if records[0]["dynamodb"]["Keys"]["pk"]["S"] == "a":
            raise RuntimeError("the batch fails")
        return None

    put(dynamodb, table, "a", "b")
    app = make_app(table, fail_ab, invocations, starting_position="TRIM_HORIZON")
    poller = run_poller(app, streams, dynamodb, options=StreamOptions(maximum_retry_attempts=1))
    try:
        wait_until(lambda: len(invocations.batches) == 2)
        put(dynamodb, table, "c")
        wait_until(lambda: invocations.pks()[-1:] == ["c"])
    finally:
        poller.stop()
    assert invocations.batch_keys() == [["a", "b"], ["a", "b"], ["c"]]


def test_a_poller_that_reads_less_often_when_idle_still_delivers(streams: Any, dynamodb: Any, table: str) -> None:
    invocations = Invocations()
    calls: list[str] = []
    streams.meta.events.register("before-call.dynamodbstreams.GetRecords", lambda **kw: calls.append("read"))
    poller = run_poller(make_app(table, succeed, invocations), streams, dynamodb, idle_poll_seconds=0.2,
                        idle_after_seconds=0.0)  # idle from the start: it reads at the slower pace
    try:
        wait_until(lambda: len(calls) >= 2)  # it went on reading while nothing was written
        put(dynamodb, table, "late")
        wait_until(lambda: invocations.pks() == ["late"])
    finally:
        poller.stop()


def test_a_table_without_a_stream_is_refused_at_start(streams: Any, dynamodb: Any) -> None:
    name = f"devstack-{uuid.uuid4().hex[:12]}"
    dynamodb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                          AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                          KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
    try:
        poller = StreamPoller(make_app(name, succeed, Invocations()), streams, dynamodb)
        with pytest.raises(RuntimeError, match="has no stream"):
            poller.start()
        poller.stop()
    finally:
        dynamodb.delete_table(TableName=name)


def test_stop_joins_every_thread(streams: Any, dynamodb: Any, table: str) -> None:
    before = devstack_threads()
    poller = run_poller(make_app(table, succeed, Invocations()), streams, dynamodb)
    assert poller.sources == ["handle"]
    assert devstack_threads() > before
    poller.stop()
    assert devstack_threads() == before


def test_options_read_from_cloudformation_properties() -> None:
    options = StreamOptions.from_properties({"FunctionResponseTypes": ["ReportBatchItemFailures"],
                                             "BisectBatchOnFunctionError": True, "MaximumRetryAttempts": 4},
                                            on_failure_queue="q")
    assert options == StreamOptions(True, True, 4, "q")
    assert StreamOptions.from_properties({}) == StreamOptions()  # Lambda's defaults
    assert table_of_stream("arn:aws:dynamodb:us-east-1:1:table/orders/stream/2026-11-25T00:00:00.000") == "orders"


# -- shards moto never makes: a closed parent and its child ------------------------------------

class FakeStreams:
    """A stream of two shards, listed one per page: a parent, closed, and its open child."""

    def __init__(self) -> None:
        self.shards: dict[str, list[dict[str, Any]]] = {"parent": [], "child": []}
        self.closed = {"parent"}
        self.reads: list[str] = []
        self.lock = threading.Lock()

    def add(self, shard: str, key: str) -> None:
        with self.lock:
            n = sum(len(r) for r in self.shards.values())
            self.shards[shard].append({
                "eventID": uuid.uuid4().hex, "eventName": "INSERT", "eventVersion": "1.1",
                "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
                "dynamodb": {"Keys": {"pk": {"S": key}}, "NewImage": {"pk": {"S": key}},
                             "SequenceNumber": str(100 + n) if shard == "parent" else str(900 + n),
                             "SizeBytes": 10, "StreamViewType": "NEW_IMAGE"}})

    def describe_stream(self, StreamArn: str, ExclusiveStartShardId: str | None = None) -> dict[str, Any]:
        pages = {None: ({"ShardId": "parent", "SequenceNumberRange": {"StartingSequenceNumber": "100",
                                                                        "EndingSequenceNumber": "199"}}, "parent"),
                 "parent": ({"ShardId": "child", "ParentShardId": "parent",
                             "SequenceNumberRange": {"StartingSequenceNumber": "900"}}, None)}
        shard, last = pages[ExclusiveStartShardId]
        return {"StreamDescription": {"Shards": [shard], **({"LastEvaluatedShardId": last} if last else {})}}

    def get_shard_iterator(self, StreamArn: str, ShardId: str, ShardIteratorType: str,
                           SequenceNumber: str | None = None) -> dict[str, Any]:
        with self.lock:
            records = self.shards[ShardId]
            if ShardIteratorType == "AFTER_SEQUENCE_NUMBER":
                at = next(i + 1 for i, r in enumerate(records) if r["dynamodb"]["SequenceNumber"] == SequenceNumber)
            else:
                at = len(records) if ShardIteratorType == "LATEST" else 0
        return {"ShardIterator": f"{ShardId}:{at}"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        shard, at = ShardIterator.split(":")
        with self.lock:
            self.reads.append(shard)
            records = self.shards[shard][int(at):int(at) + Limit]
            end = int(at) + len(records)
            closed = shard in self.closed and end == len(self.shards[shard])
        return {"Records": records, **({} if closed else {"NextShardIterator": f"{shard}:{end}"})}


class FakeTable:
    def describe_table(self, TableName: str) -> dict[str, Any]:
        return {"Table": {"LatestStreamArn": f"arn:aws:dynamodb:us-east-1:1:table/{TableName}/stream/x",
                          "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}}}


def test_a_child_shard_is_read_after_its_parent_is_done() -> None:
    fake = FakeStreams()
    for key in ("p1", "p2", "p3"):
        fake.add("parent", key)
    for key in ("c1", "c2"):
        fake.add("child", key)
    invocations = Invocations()
    app = make_app("orders", succeed, invocations, batch_size=2, starting_position="TRIM_HORIZON")
    poller = StreamPoller(app, fake, FakeTable(), poll_seconds=0.01, discover_seconds=0.05)
    poller.start()
    try:
        wait_until(lambda: len(invocations.records()) == 5)
        fake.add("child", "c3")
        wait_until(lambda: len(invocations.records()) == 6)
    finally:
        poller.stop()
    assert invocations.pks() == ["p1", "p2", "p3", "c1", "c2", "c3"]
    first_child_read = fake.reads.index("child")
    assert "parent" not in fake.reads[first_child_read:]


def test_shaping_keeps_every_field_lambda_sends() -> None:
    from datetime import UTC, datetime

    record = {"eventID": "e1", "eventName": "MODIFY", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
              "awsRegion": "eu-west-1",
              "dynamodb": {"ApproximateCreationDateTime": datetime(2026, 11, 25, tzinfo=UTC),
                           "Keys": {"pk": {"S": "k"}},
                           "NewImage": {"pk": {"S": "k"}, "bs": {"BS": [b"a"]},
                                        "m": {"M": {"b": {"B": b"b"}, "l": {"L": [{"B": b"c"}, {"N": "1"}]}}}},
                           "SequenceNumber": "42", "SizeBytes": 9, "StreamViewType": "NEW_IMAGE"},
              "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"}}
    shaped = stream_lambda_record(record, "arn:s", "us-east-1")
    assert shaped["eventSourceARN"] == "arn:s" and shaped["awsRegion"] == "eu-west-1"
    assert shaped["dynamodb"]["ApproximateCreationDateTime"] == int(datetime(2026, 11, 25, tzinfo=UTC).timestamp())
    image = shaped["dynamodb"]["NewImage"]
    assert image["bs"] == {"BS": ["YQ=="]}
    assert image["m"] == {"M": {"b": {"B": "Yg=="}, "l": {"L": [{"B": "Yw=="}, {"N": "1"}]}}}
    assert shaped["userIdentity"]["type"] == "Service"
    assert record["dynamodb"]["NewImage"]["bs"] == {"BS": [b"a"]}  # the input is left as it was
