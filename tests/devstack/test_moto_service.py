"""The emulator's process app (``devstack.moto_service``): DynamoDB's requests one at a time,
stream records read fast but exactly as moto writes them, the state saved and restored."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
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
