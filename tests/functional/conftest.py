"""Functional tier: the Chalice app in process, AWS emulated by moto (mock_aws), resources
created from infra/template.yaml, pushes captured by a recording notifier, and the orders
table's stream read from moto and handed to the fan-out Lambda as Lambda's event source would."""

from __future__ import annotations

import json
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from chalicelib.adapters.notifier import PushResult
from chalicelib.api.services import Services, set_services
from chalicelib.config import Settings, parse_api_keys
from devstack.sqs_poller import lambda_record
from devstack.stream_poller import stream_lambda_record

from .aws_calls import RECORDER, attribute_invocations, recording

API_KEY_A, API_KEY_B = "key-a", "key-b"

# Decides one push before it happens: return a PushResult to answer with it instead of
# delivering, None to deliver; it may also block, or raise (a crash of the pusher).
PushHook = Callable[[str, dict[str, Any]], str | None]


@dataclass
class RecordingNotifier:
    """Stands in for API Gateway's management API: records what each connection received."""

    sent: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    gone: set[str] = field(default_factory=set)
    open_: set[str] = field(default_factory=set)
    attempts: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # every push, delivered or not
    hooks: dict[str, PushHook] = field(default_factory=dict)  # by connection
    lock: threading.Lock = field(default_factory=threading.Lock)

    def push(self, connection_id: str, message: dict[str, Any]) -> str:
        RECORDER.record("apigatewaymanagementapi", "PostToConnection", {"ConnectionId": connection_id})
        with self.lock:
            self.attempts[connection_id] += 1
            hook = self.hooks.get(connection_id)
        if hook is not None:
            answer = hook(connection_id, message)
            if answer is not None:
                return answer
        if connection_id in self.gone:
            return PushResult.GONE
        with self.lock:
            self.sent[connection_id].append(json.loads(json.dumps(message)))
        return PushResult.SENT

    def is_connected(self, connection_id: str) -> bool:
        RECORDER.record("apigatewaymanagementapi", "GetConnection", {"ConnectionId": connection_id})
        return connection_id in self.open_ and connection_id not in self.gone

    def of(self, connection_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        return [m for m in self.sent[connection_id] if kind is None or m["type"] == kind]


def _attribute_invocations() -> None:
    """Every invocation of the app's handlers names its function while it runs (see aws_calls.py).
    Registered once, when the tier is collected: Chalice builds an event handler's middleware
    chain at its first invocation, so this must come before any."""
    from app import app

    if all(handler is not attribute_invocations for handler, _ in app.middleware_handlers):
        app.register_middleware(attribute_invocations, "all")


_attribute_invocations()

_TIER = Path(__file__).parent
_CHECKS = _TIER / "test_iam.py"  # checks the calls of all the others, so it runs after them
_deselected: list[str] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path == _CHECKS)  # stable: everything else keeps its order


def pytest_deselected(items: list[pytest.Item]) -> None:
    _deselected.extend(item.nodeid for item in items if item.path.parent == _TIER)


def pytest_collection_finish(session: pytest.Session) -> None:
    selected = {item.path for item in session.items if item.path.parent == _TIER}
    missing = sorted(p.name for p in set(_TIER.glob("test_*.py")) - selected - {_CHECKS})
    parts = ([f"modules not selected: {', '.join(missing)}"] if missing else []) + (
        [f"{len(_deselected)} tests deselected"] if _deselected else [])
    RECORDER.partial = "; ".join(parts) or None


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if RECORDER.report:
        functions = len(RECORDER.functions())
        pairs = len({(c.function, c.action) for c in RECORDER.calls})
        terminalreporter.write_sep("-", f"AWS calls of {functions} functions in the functional tests: "
                                        f"{pairs} (function, action) pairs, in {RECORDER.report}")
        if terminalreporter.config.getoption("verbose") > 0:
            terminalreporter.write_line(RECORDER.table())


@pytest.fixture(autouse=True)
def _record_aws_calls(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[None]:
    """Each AWS call a function makes, recorded for tests/functional/test_iam.py."""
    with recording(monkeypatch, request.node.nodeid.removeprefix("tests/functional/")):
        yield


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
        # Quotes are local here: a venue is never left out for being slow on a loaded machine,
        # only when a test injects a timeout (quote_timeout_rate).
        quote_timeout_ms=60_000,
        swap_latency_ms=(0, 0),
        confirm_poll_ms=1,
        ws_management_endpoint="http://127.0.0.1:1/local",
        rate_limit_per_min=1000,
    )
    base.update(overrides)
    return Settings(**base)


@pytest.fixture
def atomic_dynamodb(monkeypatch: pytest.MonkeyPatch) -> None:
    """DynamoDB applies the writes to one item one at a time, so a conditional write is atomic;
    moto's in-process backend takes no lock, so two writes racing from threads could both pass
    their conditions. Tests that race writes serve DynamoDB's calls one at a time, as the local
    stack's emulator does (``devstack.emulator.SerialDynamoDB``)."""
    import botocore.client

    real = botocore.client.BaseClient._make_api_call
    lock = threading.Lock()

    def serial(client: Any, operation: str, params: dict[str, Any]) -> Any:
        if client.meta.service_model.service_name != "dynamodb":
            return real(client, operation, params)
        with lock:
            return real(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", serial)


@pytest.fixture
def settings() -> Settings:
    return make_settings()


def make_services(settings: Settings, redis_client: Any, redis_prefix: str, **fields: Any) -> Services:
    """One container's services: its own clients and caches, the test's Redis keys and moto."""
    svc = Services(replace(settings, redis_prefix=redis_prefix), redis_client=redis_client, **fields)
    svc.__dict__["notifier"] = svc.__dict__["stream_notifier"] = RecordingNotifier()
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


class OrdersStream:
    """The orders table's stream as Lambda's event source mapping reads it: moto's DynamoDB
    Streams from where the test started, each record shaped by the local stack's poller."""

    def __init__(self, services: Services) -> None:
        region = services.settings.region
        table = services._aws.client("dynamodb").describe_table(TableName=services.settings.orders_table)["Table"]
        self.arn = str(table["LatestStreamArn"])
        # botocore sends calls naming a StreamArn to an account endpoint ({account}.streams-ddb…)
        # that moto's in-process mock does not route; the classic endpoint it does.
        self._streams = boto3.client("dynamodbstreams", region_name=region,
                                     config=Config(account_id_endpoint_mode="disabled"))
        shard = self._streams.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"][0]["ShardId"]
        self._iterator = self._streams.get_shard_iterator(StreamArn=self.arn, ShardId=shard,
                                                          ShardIteratorType="LATEST")["ShardIterator"]
        self._region = region

    def records(self) -> list[dict[str, Any]]:
        """Every record written since the last call, in order, as Lambda would deliver them."""
        response = self._streams.get_records(ShardIterator=self._iterator, Limit=1000)
        self._iterator = response["NextShardIterator"]
        return [stream_lambda_record(r, self.arn, self._region) for r in response["Records"]]


@pytest.fixture
def stream(services: Services) -> OrdersStream:
    return OrdersStream(services)


def fan_out(client: Any, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Invoke the fan-out Lambda with one batch of stream records."""
    return dict(client.lambda_.invoke("fan_out_order_events", {"Records": records}).payload)


def deliver(client: Any, stream: OrdersStream) -> list[dict[str, Any]]:
    """Hand everything the stream holds to the fan-out, as one batch that must succeed."""
    records = stream.records()
    if records:
        assert fan_out(client, records) == {"batchItemFailures": []}
    return records
