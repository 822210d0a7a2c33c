"""Settings from the environment: where each AWS service answers, and the client's validation."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ParamValidationError
from botocore.stub import Stubber

from chalicelib.adapters.aws import AwsClients
from chalicelib.config import Settings


def test_a_service_endpoint_wins_over_the_general_one() -> None:
    settings = Settings.from_env({"AWS_ENDPOINT_URL": "http://127.0.0.1:8002",
                                  "AWS_ENDPOINT_URL_SQS": "http://127.0.0.1:8003",
                                  "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": "http://127.0.0.1:8004"})
    assert settings.endpoint_for("sqs") == "http://127.0.0.1:8003"
    assert settings.endpoint_for("dynamodbstreams") == "http://127.0.0.1:8004"  # the SDKs' name for it
    assert settings.endpoint_for("dynamodb") == "http://127.0.0.1:8002"
    assert settings.endpoint_for("ssm") == "http://127.0.0.1:8002"


def test_without_endpoints_every_service_is_aws() -> None:
    settings = Settings.from_env({"AWS_ENDPOINT_URL_SQS": ""})
    assert settings.endpoint_for("sqs") is None and settings.endpoint_for("dynamodb") is None


def test_clients_use_their_service_endpoint_and_validate_unless_told_not_to() -> None:
    env = {"AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL_SQS": "http://127.0.0.1:8003"}
    clients = AwsClients(Settings.from_env(env))
    sqs = clients.client("sqs")
    assert sqs.meta.endpoint_url == "http://127.0.0.1:8003"
    assert clients.client("sqs") is sqs  # built once
    with pytest.raises(ParamValidationError):
        _send_a_number(sqs)
    quiet = AwsClients(Settings.from_env({**env, "AWS_PARAMETER_VALIDATION": "false"})).client("sqs")
    assert _send_a_number(quiet) == {"MessageId": "m1"}  # not validated: it reaches the (stubbed) wire


def _send_a_number(client: Any) -> Any:
    with Stubber(client) as stub:
        stub.add_response("send_message", {"MessageId": "m1"})
        return {k: v for k, v in client.send_message(QueueUrl="http://q", MessageBody=5).items()
                if k != "ResponseMetadata"}


def test_a_bad_boolean_is_refused() -> None:
    with pytest.raises(ValueError, match="bad boolean"):
        Settings.from_env({"AWS_PARAMETER_VALIDATION": "maybe"})


def test_the_quote_timeout_is_a_setting_the_router_keeps_to() -> None:
    from chalicelib.api.services import Services

    assert Settings.from_env({}).quote_timeout_ms == 2_000
    settings = Settings.from_env({"QUOTE_TIMEOUT_MS": "30000"})
    assert settings.quote_timeout_ms == 30_000
    assert Services(settings).router._timeout == 30.0
