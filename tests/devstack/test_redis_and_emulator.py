"""Redis and the AWS emulator: embedded when nothing is given, the given one otherwise."""

from __future__ import annotations

import logging
import os
import threading
import uuid

import boto3
import pytest
import redis
from botocore.config import Config

from devstack.emulator import AwsEmulator, LambdaContext
from devstack.redis_server import redis_answers, start_redis

from .conftest import CREDENTIALS, devstack_threads


def test_an_embedded_redis_serves_and_stops_cleanly() -> None:
    before = devstack_threads()
    url, stop = start_redis(None, try_default=False)
    client = redis.Redis.from_url(url)
    try:
        assert client.set("k", "v") and client.get("k") == b"v"
    finally:
        client.close()
        stop()
    stop()  # twice is harmless
    assert not redis_answers(url)
    assert devstack_threads() == before


def test_a_redis_url_that_does_not_answer_falls_back_to_an_embedded_one(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="devstack.redis"):
        url, stop = start_redis("redis://127.0.0.1:1/0")
    try:
        assert url != "redis://127.0.0.1:1/0" and redis_answers(url)
        assert "does not answer" in caplog.text
    finally:
        stop()


def test_a_redis_url_that_answers_is_used_as_it_is() -> None:
    given = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    if not redis_answers(given):
        pytest.skip(f"no Redis answers at {given}")
    url, stop = start_redis(given)
    assert url == given
    stop()
    assert redis_answers(given)


def test_the_embedded_emulator_serves_aws_apis_on_a_free_port() -> None:
    emulator = AwsEmulator()
    endpoint = emulator.start()
    try:
        assert emulator.embedded and endpoint.startswith("http://127.0.0.1:")
        sqs = boto3.client("sqs", endpoint_url=endpoint, **CREDENTIALS)
        try:
            url = sqs.create_queue(QueueName="devstack-emulator-check")["QueueUrl"]
            sqs.delete_queue(QueueUrl=url)
        finally:
            sqs.close()
    finally:
        emulator.stop()


def test_a_given_endpoint_starts_nothing() -> None:
    emulator = AwsEmulator("http://127.0.0.1:4566/")
    assert emulator.start() == "http://127.0.0.1:4566"
    assert not emulator.embedded
    emulator.stop()


def test_the_lambda_context_carries_what_powertools_reads() -> None:
    context = LambdaContext("order-engine-local-process_orders", memory_mb=256, timeout_seconds=60)
    assert context.function_name == "order-engine-local-process_orders"
    assert context.invoked_function_arn == (
        "arn:aws:lambda:us-east-1:123456789012:function:order-engine-local-process_orders")
    assert context.memory_limit_in_mb == 256
    assert context.function_version == "$LATEST"
    assert context.log_group_name == "/aws/lambda/order-engine-local-process_orders"
    assert 0 < context.get_remaining_time_in_millis() <= 60_000


def test_the_emulator_applies_writes_to_one_item_one_at_a_time(moto_endpoint: str) -> None:
    # As DynamoDB does: concurrent updates of one (streamed) item never interleave. moto alone
    # loses or repeats increments here, or fails building the stream record of a changing item.
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_endpoint, **CREDENTIALS)
    name = f"devstack-serial-{uuid.uuid4().hex[:8]}"
    dynamodb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                          AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                          KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                          StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})
    dynamodb.put_item(TableName=name, Item={"pk": {"S": "k"}, "n": {"N": "0"}, "seen": {"M": {}}})
    results: list[int] = []
    lock = threading.Lock()

    def writer(w: int) -> None:
        client = boto3.client("dynamodb", endpoint_url=moto_endpoint, config=Config(retries={"max_attempts": 1}),
                              **CREDENTIALS)
        for i in range(25):
            got = client.update_item(TableName=name, Key={"pk": {"S": "k"}},
                                     UpdateExpression="SET n = n + :one, seen.#w = :one",
                                     ExpressionAttributeNames={"#w": f"{w}-{i}"},
                                     ExpressionAttributeValues={":one": {"N": "1"}}, ReturnValues="UPDATED_NEW")
            with lock:
                results.append(int(got["Attributes"]["n"]["N"]))
        client.close()

    try:
        writers = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
        for t in writers:
            t.start()
        for t in writers:
            t.join(60)
        item = dynamodb.get_item(TableName=name, Key={"pk": {"S": "k"}}, ConsistentRead=True)["Item"]
        assert sorted(results) == list(range(1, 151))  # each update saw the one before it, none twice
        assert int(item["n"]["N"]) == 150 and len(item["seen"]["M"]) == 150
    finally:
        dynamodb.delete_table(TableName=name)
        dynamodb.close()
