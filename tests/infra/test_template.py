"""infra/template.yaml: valid CloudFormation, and the contract the app relies on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from cfnlint.api import lint_file

from chalicelib.config import Settings
from infra.provision import TEMPLATE_PATH, load_template, template_resources

PROJECT_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def resources() -> dict[str, dict[str, Any]]:
    return template_resources()


@pytest.fixture(scope="module")
def chalice_config() -> dict[str, Any]:
    config: dict[str, Any] = json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text(encoding="utf-8"))
    return config


def _props(resources: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    props: dict[str, Any] = resources[name]["Properties"]
    return props


def _function_timeout(config: dict[str, Any], function: str) -> int:
    per_function = config.get("lambda_functions", {}).get(function, {})
    return int(per_function.get("lambda_timeout", config.get("lambda_timeout", 3)))


def test_template_passes_cfn_lint() -> None:
    matches = lint_file(TEMPLATE_PATH)
    assert matches == [], "\n".join(str(m) for m in matches)


def test_template_reads_with_a_plain_yaml_loader() -> None:
    # Long-form intrinsics only, so provision.py and Chalice's merge can load it without CloudFormation tags.
    parsed = yaml.safe_load(TEMPLATE_PATH.read_text(encoding="utf-8"))
    assert parsed["AWSTemplateFormatVersion"] == "2010-09-09"
    assert set(parsed["Resources"]) == {"OrdersQueue", "OrdersDeadLetterQueue", "OrdersTable", "ConnectionsTable",
                                        "FanoutFailuresQueue", "MarketEventsQueue"}


def test_resource_names_are_the_settings_defaults(resources: dict[str, dict[str, Any]],
                                                  chalice_config: dict[str, Any]) -> None:
    defaults = Settings()
    env = chalice_config["environment_variables"]
    assert _props(resources, "OrdersQueue")["QueueName"] == defaults.orders_queue == env["ORDERS_QUEUE"]
    assert _props(resources, "OrdersDeadLetterQueue")["QueueName"] == defaults.orders_dlq == env["ORDERS_DLQ"]
    assert _props(resources, "OrdersTable")["TableName"] == defaults.orders_table == env["ORDERS_TABLE"]
    assert _props(resources, "ConnectionsTable")["TableName"] == defaults.connections_table == env["CONNECTIONS_TABLE"]
    assert _props(resources, "MarketEventsQueue")["QueueName"] == defaults.market_events_queue


def test_orders_queue_redrives_to_the_dlq_after_three_receives(resources: dict[str, dict[str, Any]]) -> None:
    redrive = _props(resources, "OrdersQueue")["RedrivePolicy"]
    assert redrive == {"deadLetterTargetArn": {"Fn::GetAtt": ["OrdersDeadLetterQueue", "Arn"]}, "maxReceiveCount": 3}
    assert redrive["maxReceiveCount"] == Settings().max_attempts


def test_visibility_timeouts_are_six_times_the_function_timeouts(resources: dict[str, dict[str, Any]],
                                                                 chalice_config: dict[str, Any]) -> None:
    assert _function_timeout(chalice_config, "process_orders") == 60
    assert _props(resources, "OrdersQueue")["VisibilityTimeout"] >= 6 * _function_timeout(
        chalice_config, "process_orders")
    assert _props(resources, "OrdersDeadLetterQueue")["VisibilityTimeout"] >= 6 * _function_timeout(
        chalice_config, "process_dead_letters")
    assert _props(resources, "MarketEventsQueue")["VisibilityTimeout"] >= 6 * _function_timeout(
        chalice_config, "match_market_events")


def test_market_events_are_short_lived_hints_without_a_dead_letter_queue(resources: dict[str, dict[str, Any]]) -> None:
    # A later event supersedes an earlier one (the matcher reads the market as it is), so an old
    # one is worth nothing: kept five minutes, never dead-lettered.
    props = _props(resources, "MarketEventsQueue")
    assert props["MessageRetentionPeriod"] == 300
    assert "RedrivePolicy" not in props


def test_dead_letters_outlive_the_orders_queue(resources: dict[str, dict[str, Any]]) -> None:
    dlq = _props(resources, "OrdersDeadLetterQueue")["MessageRetentionPeriod"]
    assert dlq == 14 * 24 * 3600
    assert dlq > _props(resources, "OrdersQueue")["MessageRetentionPeriod"]


def test_orders_table_is_keyed_by_order_with_a_by_client_index(resources: dict[str, dict[str, Any]]) -> None:
    props = _props(resources, "OrdersTable")
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["KeySchema"] == [{"AttributeName": "orderId", "KeyType": "HASH"}]
    types = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    assert types == {"orderId": "S", "clientId": "S", "createdAt": "S", "waitKey": "S", "waitUntil": "S"}
    index, _waiting = props["GlobalSecondaryIndexes"]
    assert index == {
        "IndexName": "byClient",
        "KeySchema": [{"AttributeName": "clientId", "KeyType": "HASH"},
                      {"AttributeName": "createdAt", "KeyType": "RANGE"}],
        "Projection": {"ProjectionType": "ALL"},
    }


def test_orders_that_wait_are_in_a_sparse_index_by_when_to_look_at_them(
        resources: dict[str, dict[str, Any]]) -> None:
    _by_client, index = _props(resources, "OrdersTable")["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "waiting"
    assert index["KeySchema"] == [{"AttributeName": "waitKey", "KeyType": "HASH"},
                                  {"AttributeName": "waitUntil", "KeyType": "RANGE"}]
    # what the expiry sweep and the book's rebuild read, without a read of the order itself
    assert index["Projection"]["ProjectionType"] == "INCLUDE"
    assert {"status", "version", "type", "tokenIn", "tokenOut", "amountIn", "limitPrice", "expiresAt",
            "clientId"} <= set(index["Projection"]["NonKeyAttributes"])


def test_orders_table_streams_new_images_to_the_fan_out(resources: dict[str, dict[str, Any]]) -> None:
    # NEW_IMAGE: each record carries the whole item after the write, so the fan-out reads the
    # new events (seq > evFrom) and the subscribers (subs) from the same image.
    assert _props(resources, "OrdersTable")["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}
    assert "StreamSpecification" not in _props(resources, "ConnectionsTable")


def test_fan_out_failures_are_kept_for_the_longest_retention(resources: dict[str, dict[str, Any]]) -> None:
    props = _props(resources, "FanoutFailuresQueue")
    assert props["QueueName"] == "order-engine-fanout-failures"
    assert props["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert "RedrivePolicy" not in props


def test_connections_expire_by_ttl(resources: dict[str, dict[str, Any]]) -> None:
    props = _props(resources, "ConnectionsTable")
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["KeySchema"] == [{"AttributeName": "connectionId", "KeyType": "HASH"}]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}


def test_outputs_name_every_queue_and_table() -> None:
    outputs = load_template()["Outputs"]
    assert set(outputs) == {
        "OrdersQueueUrl", "OrdersQueueArn", "OrdersDeadLetterQueueUrl", "OrdersDeadLetterQueueArn",
        "OrdersTableName", "OrdersTableArn", "OrdersTableStreamArn", "ConnectionsTableName", "ConnectionsTableArn",
        "FanoutFailuresQueueUrl", "FanoutFailuresQueueArn", "MarketEventsQueueUrl", "MarketEventsQueueArn",
    }
