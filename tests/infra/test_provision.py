"""infra.provision: the template's resources, created on moto, equal the template."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from infra import provision as provision_module
from infra.provision import ProvisionError, load_template, main, provision, template_resources

REGION = "us-east-1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                        "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        yield


@pytest.fixture
def created(aws: None) -> dict[str, str]:
    return provision(None, REGION)


def _queue_attributes(url: str) -> dict[str, str]:
    sqs = boto3.client("sqs", region_name=REGION)
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return {str(name): value for name, value in attrs.items()}


def test_queues_have_the_template_attributes(created: dict[str, str]) -> None:
    resources = template_resources()
    for name in ("OrdersQueue", "OrdersDeadLetterQueue", "MarketEventsQueue"):
        props = resources[name]["Properties"]
        attrs = _queue_attributes(created[f"{name}Url"])
        assert created[f"{name}Url"].endswith("/" + props["QueueName"])
        assert attrs["QueueArn"] == created[f"{name}Arn"]
        assert int(attrs["VisibilityTimeout"]) == props["VisibilityTimeout"]
        assert int(attrs["MessageRetentionPeriod"]) == props["MessageRetentionPeriod"]


def test_orders_queue_redrives_to_the_dead_letter_queue(created: dict[str, str]) -> None:
    redrive = json.loads(_queue_attributes(created["OrdersQueueUrl"])["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == created["OrdersDeadLetterQueueArn"]
    assert int(redrive["maxReceiveCount"]) == template_resources()["OrdersQueue"]["Properties"]["RedrivePolicy"][
        "maxReceiveCount"] == 3
    assert "RedrivePolicy" not in _queue_attributes(created["OrdersDeadLetterQueueUrl"])


def test_tables_have_the_template_keys_and_indexes(created: dict[str, str]) -> None:
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    for name in ("OrdersTable", "ConnectionsTable"):
        props = template_resources()[name]["Properties"]
        table = dynamodb.describe_table(TableName=created[f"{name}Name"])["Table"]
        assert table["TableName"] == props["TableName"]
        assert table["KeySchema"] == props["KeySchema"]
        assert sorted(table["AttributeDefinitions"], key=str) == sorted(props["AttributeDefinitions"], key=str)
        assert table["BillingModeSummary"]["BillingMode"] == props["BillingMode"]
        expected = [{k: i[k] for k in ("IndexName", "KeySchema", "Projection")}
                    for i in props.get("GlobalSecondaryIndexes", [])]
        actual = [{k: i[k] for k in ("IndexName", "KeySchema", "Projection")}
                  for i in table.get("GlobalSecondaryIndexes", [])]
        assert actual == expected
    assert created["OrdersTableName"] == "order-engine-orders"


def test_the_orders_table_streams_new_images(created: dict[str, str]) -> None:
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    orders = dynamodb.describe_table(TableName=created["OrdersTableName"])["Table"]
    assert orders["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    assert orders["LatestStreamArn"] == created["OrdersTableStreamArn"]
    assert created["OrdersTableStreamArn"].startswith(created["OrdersTableArn"] + "/stream/")
    connections = dynamodb.describe_table(TableName=created["ConnectionsTableName"])["Table"]
    assert not connections.get("StreamSpecification", {}).get("StreamEnabled")
    # the stream answers: one shard, as moto serves it (botocore sends calls naming a StreamArn to an
    # account endpoint, {account}.streams-ddb…, which moto does not route; the classic one it does)
    streams = boto3.client("dynamodbstreams", region_name=REGION, config=Config(account_id_endpoint_mode="disabled"))
    description = streams.describe_stream(StreamArn=created["OrdersTableStreamArn"])["StreamDescription"]
    assert description["StreamViewType"] == "NEW_IMAGE" and description["TableName"] == "order-engine-orders"
    assert len(description["Shards"]) == 1


def test_the_fan_out_failures_queue_exists(created: dict[str, str]) -> None:
    attrs = _queue_attributes(created["FanoutFailuresQueueUrl"])
    assert created["FanoutFailuresQueueUrl"].endswith("/order-engine-fanout-failures")
    assert attrs["QueueArn"] == created["FanoutFailuresQueueArn"]
    assert int(attrs["MessageRetentionPeriod"]) == 14 * 24 * 3600


def test_a_table_created_without_its_stream_gets_it(aws: None) -> None:
    # GIVEN the orders table as an earlier template created it: no stream
    props = template_resources()["OrdersTable"]["Properties"]
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    dynamodb.create_table(**{k: v for k, v in props.items() if k != "StreamSpecification"})
    assert "LatestStreamArn" not in dynamodb.describe_table(TableName=props["TableName"])["Table"]
    # WHEN the resources are provisioned (the existing table is adopted, not recreated)
    created = provision(None, REGION)
    # THEN it streams new images
    table = dynamodb.describe_table(TableName=props["TableName"])["Table"]
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    assert created["OrdersTableStreamArn"] == table["LatestStreamArn"]


def test_a_table_created_without_the_waiting_index_gets_it(aws: None) -> None:
    # GIVEN the orders table as the template created it before orders could wait: no waiting index
    props = template_resources()["OrdersTable"]["Properties"]
    earlier = {**props, "GlobalSecondaryIndexes": [i for i in props["GlobalSecondaryIndexes"]
                                                   if i["IndexName"] != "waiting"],
               "AttributeDefinitions": [a for a in props["AttributeDefinitions"]
                                        if a["AttributeName"] not in ("waitKey", "waitUntil")]}
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    dynamodb.create_table(**{k: v for k, v in earlier.items() if k != "StreamSpecification"})
    # WHEN the resources are provisioned (the existing table is adopted, not recreated)
    provision(None, REGION)
    # THEN it has the index, keyed as the template says
    indexes = {i["IndexName"]: i for i in dynamodb.describe_table(TableName=props["TableName"])["Table"][
        "GlobalSecondaryIndexes"]}
    assert set(indexes) == {"byClient", "waiting"}
    assert indexes["waiting"]["KeySchema"] == [{"AttributeName": "waitKey", "KeyType": "HASH"},
                                               {"AttributeName": "waitUntil", "KeyType": "RANGE"}]


def test_time_to_live_is_enabled_where_the_template_asks(created: dict[str, str]) -> None:
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    connections = dynamodb.describe_time_to_live(TableName=created["ConnectionsTableName"])["TimeToLiveDescription"]
    assert connections == {"TimeToLiveStatus": "ENABLED", "AttributeName": "ttl"}
    orders = dynamodb.describe_time_to_live(TableName=created["OrdersTableName"])["TimeToLiveDescription"]
    assert orders["TimeToLiveStatus"] == "DISABLED"


def test_result_is_keyed_like_the_template_outputs(created: dict[str, str]) -> None:
    assert set(created) == set(load_template()["Outputs"])


def test_provisioning_twice_changes_nothing(aws: None) -> None:
    first = provision(None, REGION)
    second = provision(None, REGION)
    assert second == first
    sqs = boto3.client("sqs", region_name=REGION)
    assert len(sqs.list_queues()["QueueUrls"]) == len(provision_module._of_type(template_resources(),
                                                                               provision_module.QUEUE_TYPE))


def test_a_queue_that_exists_with_other_attributes_is_brought_in_line(aws: None) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    sqs.create_queue(QueueName="order-engine-orders-dlq", Attributes={"VisibilityTimeout": "5"})
    created = provision(None, REGION)
    props = template_resources()["OrdersDeadLetterQueue"]["Properties"]
    attributes = _queue_attributes(created["OrdersDeadLetterQueueUrl"])
    assert int(attributes["VisibilityTimeout"]) == props["VisibilityTimeout"]


def test_each_service_may_have_an_endpoint_of_its_own(aws: None) -> None:
    # moto's in-process mock answers any endpoint; what matters is that each client was given its own
    seen: dict[str, str | None] = {}
    real = provision_module._client

    def client(session: Any, endpoints: Any, service: str, config: Any = None) -> Any:
        seen[service] = endpoints.get(service)
        return real(session, {}, service, config)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(provision_module, "_client", client)
        provision("http://127.0.0.1:9", REGION, endpoints={"sqs": "http://127.0.0.1:10"}, check_services=False)
    assert seen == {"sqs": "http://127.0.0.1:10", "dynamodb": "http://127.0.0.1:9"}


def test_an_endpoint_without_dynamodb_gets_its_queues_and_an_error_naming_the_rest(
        aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # As LocalStack's free build here: SQS answers, DynamoDB cannot fetch DynamoDB Local.
    monkeypatch.setattr(provision_module, "_unavailable_services",
                        lambda session, endpoint, resources: {"dynamodb": "InternalError"})
    with pytest.raises(ProvisionError, match="does not serve dynamodb; created only: OrdersQueue"):
        provision(None, REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.get_queue_url(QueueName="order-engine-orders")["QueueUrl"]
    assert json.loads(_queue_attributes(url)["RedrivePolicy"])["maxReceiveCount"] == 3
    assert boto3.client("dynamodb", region_name=REGION).list_tables()["TableNames"] == []


def test_an_endpoint_where_nothing_listens_fails_at_once() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ProvisionError, match="does not serve dynamodb, sqs; created only: nothing"):
        provision(f"http://127.0.0.1:{port}", REGION)


def test_cli_prints_the_result_as_json(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--region", REGION]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["OrdersQueueUrl"].endswith("/order-engine-orders")
    assert printed["ConnectionsTableName"] == "order-engine-connections"


def test_probe_reports_an_endpoint_where_nothing_listens() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["--endpoint-url", f"http://127.0.0.1:{port}", "--probe"]) == 3


def test_probe_reports_an_endpoint_that_answers() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert main(["--endpoint-url", f"http://127.0.0.1:{port}", "--probe"]) == 0
