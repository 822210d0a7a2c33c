"""Against a LocalStack, when one answers at ``LOCALSTACK_ENDPOINT``/``LOCALSTACK_HOST``.

LocalStack's free, Docker-less build serves SQS; its DynamoDB needs a download and its
WebSocket API a paid plan. So the redrive test needs SQS only, and the full flow (the local
gateway and poller, with queues and tables on LocalStack) runs only where DynamoDB answers
there. Anything that cannot run is reported as skipped, with the reason.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from devstack.stack import DevStack
from infra.provision import template_resources

from .conftest import STACK_ENV, localstack_answers, localstack_endpoint, submit_and_wait

pytestmark = pytest.mark.localstack


@pytest.fixture(scope="module")
def endpoint() -> str:
    url = localstack_endpoint()
    if not localstack_answers(url):
        pytest.skip(f"no LocalStack answers at {url}")
    return url


def _client(service: str, endpoint: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


@pytest.fixture
def sqs(endpoint: str) -> Iterator[Any]:
    client = _client("sqs", endpoint)
    yield client
    client.close()


def test_template_redrive_moves_a_poisoned_message_to_the_dlq(sqs: Any) -> None:
    resources = template_resources()
    main = resources["OrdersQueue"]["Properties"]
    suffix = uuid.uuid4().hex[:8]
    dlq_url = sqs.create_queue(QueueName=f"it-dlq-{suffix}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(main["RedrivePolicy"]["maxReceiveCount"])}
    url = sqs.create_queue(QueueName=f"it-orders-{suffix}",
                           Attributes={"RedrivePolicy": json.dumps(redrive), "VisibilityTimeout": "0"})["QueueUrl"]
    try:
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"orderId": "ord_poison"}))
        receives = 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", [])
            receives += len(got)
            dead = sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=0).get("Messages", [])
            if dead:
                assert json.loads(dead[0]["Body"]) == {"orderId": "ord_poison"}
                break
        else:
            raise AssertionError("the message never reached the DLQ")
        assert receives == int(redrive["maxReceiveCount"])
    finally:
        sqs.delete_queue(QueueUrl=url)
        sqs.delete_queue(QueueUrl=dlq_url)


def test_market_order_to_confirmed_with_localstack_resources(endpoint: str) -> None:
    dynamodb = _client("dynamodb", endpoint)
    try:
        dynamodb.list_tables(Limit=1)
    except Exception as exc:  # LocalStack's DynamoDB needs a download at first use
        pytest.skip(f"LocalStack at {endpoint} serves no DynamoDB here: {exc}")
    finally:
        dynamodb.close()
    with DevStack(rest_port=0, ws_port=0, aws_endpoint_url=endpoint, env=STACK_ENV) as stack:
        status = submit_and_wait(stack.urls["rest"])
        assert status == "confirmed"
