"""The emulator's process app (``devstack.moto_service``): DynamoDB's requests one at a time,
stream records read fast but exactly as moto writes them, the state saved and restored."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from werkzeug.serving import make_server

from devstack.moto_service import MotoService

from .conftest import CREDENTIALS
from .test_redis_and_emulator import test_the_emulator_applies_writes_to_one_item_one_at_a_time as race


@pytest.fixture(scope="module")
def dynamodb_service() -> Iterator[tuple[MotoService, str]]:
    service = MotoService("dynamodb")
    server = make_server("127.0.0.1", 0, service, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield service, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_concurrent_updates_of_one_item_never_interleave(dynamodb_service: tuple[MotoService, str]) -> None:
    # The same workload fails against moto's threaded server alone (lost or repeated increments).
    race(dynamodb_service[1])


def test_stream_records_read_fast_equal_what_moto_serves(dynamodb_service: tuple[MotoService, str]) -> None:
    service, endpoint = dynamodb_service
    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint, **CREDENTIALS)
    streams = boto3.client("dynamodbstreams", endpoint_url=endpoint, **CREDENTIALS)
    name = f"devstack-fast-{uuid.uuid4().hex[:8]}"
    arn = dynamodb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )["TableDescription"]["LatestStreamArn"]
    try:
        dynamodb.put_item(TableName=name, Item={"pk": {"S": "a"}, "n": {"N": "1.50"}, "b": {"B": b"\x00\xff"},
                                                "m": {"M": {"l": {"L": [{"S": "x"}, {"BOOL": True}, {"NULL": True}]}}},
                                                "ss": {"SS": ["p", "q"]}})
        dynamodb.update_item(TableName=name, Key={"pk": {"S": "a"}}, UpdateExpression="SET n = n + :one",
                             ExpressionAttributeValues={":one": {"N": "1"}})
        dynamodb.delete_item(TableName=name, Key={"pk": {"S": "a"}})
        shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]

        def read(fast: bool) -> dict[str, Any]:
            service.fast_records = fast
            iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard,
                                                  ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            got = streams.get_records(ShardIterator=iterator, Limit=100)
            got.pop("ResponseMetadata")
            assert got.pop("NextShardIterator")
            return got

        fast, moto = read(True), read(False)
        assert len(fast["Records"]) == 3
        assert fast == moto
    finally:
        service.fast_records = True
        dynamodb.delete_table(TableName=name)
        dynamodb.close()
        streams.close()


def test_an_unknown_iterator_is_answered_by_moto(dynamodb_service: tuple[MotoService, str]) -> None:
    streams = boto3.client("dynamodbstreams", endpoint_url=dynamodb_service[1], **CREDENTIALS)
    with pytest.raises(streams.exceptions.ClientError):
        streams.get_records(ShardIterator="arn:aws:dynamodb:us-east-1:123456789012:table/none/stream/x|1|y")
    streams.close()


@pytest.fixture(scope="module")
def sqs_service() -> Iterator[tuple[MotoService, Any]]:
    service = MotoService("sqs")
    server, endpoint = serve(service)
    sqs = boto3.client("sqs", endpoint_url=endpoint, **CREDENTIALS)
    yield service, sqs
    sqs.close()
    server.shutdown()
    server.server_close()


def _queue(sqs: Any, **attributes: str) -> str:
    name = f"devstack-fast-{uuid.uuid4().hex[:8]}" + (".fifo" if attributes.get("FifoQueue") == "true" else "")
    return str(sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])


def test_messages_sent_fast_are_received_as_moto_sends_them(sqs_service: tuple[MotoService, Any]) -> None:
    service, sqs = sqs_service
    url = _queue(sqs)
    sent: dict[bool, dict[str, Any]] = {}
    try:
        for fast in (True, False):
            service.fast_sends = fast
            before = service.sent_fast
            sent[fast] = sqs.send_message(QueueUrl=url, MessageBody=f'{{"orderId":"{fast}"}}')
            assert service.sent_fast == before + fast
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"],
                                       MessageSystemAttributeNames=["All"])["Messages"]
    finally:
        service.fast_sends = True
        sqs.delete_queue(QueueUrl=url)
    assert {k for k in sent[True] if k != "ResponseMetadata"} == {k for k in sent[False] if k != "ResponseMetadata"}
    assert sent[True]["MD5OfMessageBody"] != sent[False]["MD5OfMessageBody"]  # two bodies, each its own digest
    by_body = {m["Body"]: m for m in received}
    for fast in (True, False):
        message = by_body[f'{{"orderId":"{fast}"}}']
        assert message["MessageId"] == sent[fast]["MessageId"]
        assert message["MD5OfBody"] == sent[fast]["MD5OfMessageBody"]
        assert message["Attributes"]["ApproximateReceiveCount"] == "1"
        assert set(message["Attributes"]) == set(by_body[f'{{"orderId":"{not fast}"}}']["Attributes"])


def test_a_fast_send_wakes_a_long_poll_and_keeps_its_delay(sqs_service: tuple[MotoService, Any]) -> None:
    service, sqs = sqs_service
    url = _queue(sqs, DelaySeconds="0")
    got: list[Any] = []
    before = service.sent_fast
    try:
        polling = threading.Thread(target=lambda: got.append(
            sqs.receive_message(QueueUrl=url, WaitTimeSeconds=20).get("Messages", [])))
        polling.start()
        sqs.send_message(QueueUrl=url, MessageBody="soon")
        polling.join(30)
        assert [m["Body"] for m in got[0]] == ["soon"]
        sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=900)
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"
        assert "Messages" not in sqs.receive_message(QueueUrl=url)
        assert service.sent_fast == before + 2
    finally:
        sqs.delete_queue(QueueUrl=url)


def test_what_the_fast_send_does_not_cover_is_answered_by_moto(sqs_service: tuple[MotoService, Any]) -> None:
    service, sqs = sqs_service
    fifo = _queue(sqs, FifoQueue="true", ContentBasedDeduplication="true")
    small = _queue(sqs, MaximumMessageSize="1024")
    fast_before = service.sent_fast
    try:
        sqs.send_message(QueueUrl=fifo, MessageBody="a", MessageGroupId="g")
        sqs.send_message(QueueUrl=fifo, MessageBody="a", MessageGroupId="g")  # deduplicated by moto
        assert len(sqs.receive_message(QueueUrl=fifo, MaxNumberOfMessages=10)["Messages"]) == 1
        with pytest.raises(sqs.exceptions.ClientError, match="shorter than 1024"):
            sqs.send_message(QueueUrl=small, MessageBody="x" * 1025)
        with pytest.raises(sqs.exceptions.QueueDoesNotExist):
            sqs.send_message(QueueUrl=small + "-none", MessageBody="x")
        sqs.send_message(QueueUrl=small, MessageBody="x", MessageAttributes={
            "k": {"DataType": "String", "StringValue": "v"}})
        message = sqs.receive_message(QueueUrl=small, MessageAttributeNames=["All"])["Messages"][0]
        assert message["MessageAttributes"]["k"]["StringValue"] == "v"
        assert service.sent_fast == fast_before
    finally:
        sqs.delete_queue(QueueUrl=fifo)
        sqs.delete_queue(QueueUrl=small)


def test_a_message_sent_fast_is_redriven_to_its_dead_letter_queue(sqs_service: tuple[MotoService, Any]) -> None:
    _, sqs = sqs_service
    dlq = _queue(sqs)
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = _queue(sqs, RedrivePolicy=json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 1}))
    try:
        sqs.send_message(QueueUrl=url, MessageBody="poison")
        first = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"]
        assert [m["Body"] for m in first] == ["poison"]
        assert "Messages" not in sqs.receive_message(QueueUrl=url)  # moved on this receive
        assert [m["Body"] for m in sqs.receive_message(QueueUrl=dlq)["Messages"]] == ["poison"]
    finally:
        sqs.delete_queue(QueueUrl=url)
        sqs.delete_queue(QueueUrl=dlq)


def serve(service: MotoService) -> tuple[Any, str]:
    server = make_server("127.0.0.1", 0, service, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def items(dynamodb: Any, name: str) -> dict[str, str]:
    return {i["pk"]["S"]: i["v"]["S"] for i in dynamodb.scan(TableName=name, ConsistentRead=True)["Items"]}


def test_every_write_answered_survives_a_kill_the_snapshot_then_the_journal(tmp_path: Path) -> None:
    from moto.dynamodb.models import dynamodb_backends

    backend = dynamodb_backends["123456789012"]["us-east-1"]
    name = f"devstack-journal-{uuid.uuid4().hex[:8]}"
    first = MotoService("dynamodb", state_dir=tmp_path)
    first.restore()  # nothing saved yet: from now on every write goes to the journal
    server, endpoint = serve(first)
    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint, **CREDENTIALS)
    try:
        dynamodb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                              KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                              AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
        dynamodb.put_item(TableName=name, Item={"pk": {"S": "a"}, "v": {"S": "pending"}})
        dynamodb.put_item(TableName=name, Item={"pk": {"S": "gone"}, "v": {"S": "x"}})
        assert first._snapshots is not None
        first._snapshots.save(force=True)  # a periodic snapshot: the journal keeps only what follows
        assert (tmp_path / "dynamodb.journal").read_text() == ""
        # after the snapshot: a conditional update, one refused (not journaled), a delete, a transaction
        update = {"TableName": name, "Key": {"pk": {"S": "a"}}, "UpdateExpression": "SET v = :new",
                  "ConditionExpression": "v = :old"}
        dynamodb.update_item(**update, ExpressionAttributeValues={":new": {"S": "submitted"}, ":old": {"S": "pending"}})
        with pytest.raises(dynamodb.exceptions.ConditionalCheckFailedException):
            dynamodb.update_item(**update, ExpressionAttributeValues={":new": {"S": "x"}, ":old": {"S": "pending"}})
        dynamodb.delete_item(TableName=name, Key={"pk": {"S": "gone"}})
        dynamodb.transact_write_items(TransactItems=[{"Put": {"TableName": name,
                                                              "Item": {"pk": {"S": "b"}, "v": {"S": "new"}}}}])
        before = items(dynamodb, name)
        assert before == {"a": "submitted", "b": "new"}
        with open(tmp_path / "dynamodb.journal", "a") as journal:
            journal.write('{"seq": 99, "target": "DynamoDB_20120810.PutI')  # a write cut short by the kill
    finally:
        server.shutdown()
        server.server_close()
        dynamodb.close()
        first._snapshots._stop.set()  # the process is gone (kill -9): nothing saved on the way out
    backend.delete_table(name)

    again = MotoService("dynamodb", state_dir=tmp_path)
    restored = again.restore()  # moto's backends are the process's: other tests' tables are in the snapshot too
    assert restored is not None and restored.endswith(f"{name} 2; then 3 writes from the journal")
    server, endpoint = serve(again)
    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint, **CREDENTIALS)
    try:
        assert items(dynamodb, name) == before
        assert (tmp_path / "dynamodb.journal").read_text().endswith("\n")  # the cut-short write is dropped
        dynamodb.put_item(TableName=name, Item={"pk": {"S": "c"}, "v": {"S": "after"}})
        assert again._journal is not None  # the writes after the snapshot (3), and this one, numbered on
        assert [e["seq"] for e in again._journal.entries()] == [4, 5, 6, 7]
    finally:
        assert again._snapshots is not None
        again._snapshots._stop.set()
        dynamodb.delete_table(TableName=name)
        server.shutdown()
        server.server_close()
        dynamodb.close()
