"""Functional tier: the Chalice app in process, AWS emulated by moto (mock_aws), resources
created from infra/template.yaml, pushes captured by a recording notifier."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from moto import mock_aws

from chalicelib.adapters.notifier import PushResult
from chalicelib.api.services import Services, set_services
from chalicelib.config import Settings, parse_api_keys
from devstack.sqs_poller import lambda_record

API_KEY_A, API_KEY_B = "key-a", "key-b"


@dataclass
class RecordingNotifier:
    """Stands in for API Gateway's management API: records what each connection received."""

    sent: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    gone: set[str] = field(default_factory=set)
    open_: set[str] = field(default_factory=set)
    attempts: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # every push, delivered or not

    def push(self, connection_id: str, message: dict[str, Any]) -> str:
        self.attempts[connection_id] += 1
        if connection_id in self.gone:
            return PushResult.GONE
        self.sent[connection_id].append(json.loads(json.dumps(message)))
        return PushResult.SENT

    def is_connected(self, connection_id: str) -> bool:
        return connection_id in self.open_ and connection_id not in self.gone

    def of(self, connection_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        return [m for m in self.sent[connection_id] if kind is None or m["type"] == kind]


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        from infra.provision import provision

        provision(None, "us-east-1")
        yield


def make_settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = dict(
        api_keys=parse_api_keys(f"{API_KEY_A}:client-a,{API_KEY_B}:client-b"),
        quote_latency_ms=(0, 0),
        swap_latency_ms=(0, 0),
        confirm_poll_ms=1,
        ws_management_endpoint="http://127.0.0.1:1/local",
        rate_limit_per_min=1000,
    )
    base.update(overrides)
    return Settings(**base)


@pytest.fixture
def settings() -> Settings:
    return make_settings()


def make_services(settings: Settings, redis_client: Any, redis_prefix: str, **fields: Any) -> Services:
    """One container's services: its own clients and caches, the test's Redis keys and moto."""
    svc = Services(replace(settings, redis_prefix=redis_prefix), redis_client=redis_client, **fields)
    svc.__dict__["notifier"] = RecordingNotifier()
    return svc


@pytest.fixture
def services(aws_env: None, settings: Settings, redis_client: Any, redis_prefix: str) -> Iterator[Services]:
    svc = make_services(settings, redis_client, redis_prefix)
    set_services(svc)
    yield svc
    set_services(None)


@pytest.fixture
def notifier(services: Services) -> RecordingNotifier:
    n = services.notifier
    assert isinstance(n, RecordingNotifier)
    return n


@pytest.fixture
def client(services: Services) -> Iterator[Any]:
    from chalice.test import Client

    from app import app

    with Client(app) as c:
        yield c


def order_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "market", "tokenIn": "SOL", "tokenOut": "USDC", "amount": "1.5", "slippageBps": 50}
    body.update(overrides)
    return body


def post_order(client: Any, body: dict[str, Any] | None = None, key: str = API_KEY_A,
               headers: dict[str, str] | None = None) -> Any:
    return client.http.post(
        "/api/orders/execute",
        headers={"Content-Type": "application/json", "x-api-key": key, **(headers or {})},
        body=json.dumps(order_body() if body is None else body),
    )


def receive_records(services: Services, queue: str | None = None, max_messages: int = 10,
                    wait: int = 0) -> list[dict[str, Any]]:
    """Receive from the (moto) queue and shape the messages as Lambda's event source would."""
    sqs = services._aws.client("sqs")
    url = sqs.get_queue_url(QueueName=queue or services.settings.orders_queue)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    resp = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=max_messages, AttributeNames=["All"],
                               WaitTimeSeconds=wait)
    return [lambda_record(m, arn, "us-east-1") for m in resp.get("Messages", [])]


def record_for(order_id: str, receive_count: int = 1, **extra: Any) -> dict[str, Any]:
    """A hand-built record (unique messageId) for a message that is not on any queue."""
    return {
        "messageId": str(uuid.uuid4()),
        "receiptHandle": f"handle-{uuid.uuid4()}",
        "body": json.dumps({"orderId": order_id, **extra}),
        "attributes": {"ApproximateReceiveCount": str(receive_count), "SentTimestamp": "0"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:order-engine-orders",
        "awsRegion": "us-east-1",
    }


def invoke_worker(client: Any, records: list[dict[str, Any]], name: str = "process_orders") -> dict[str, Any]:
    resp = client.lambda_.invoke(name, {"Records": records})
    return dict(resp.payload)
