"""Settings from the environment: where each AWS service answers, and the client's validation."""

from __future__ import annotations

import pytest

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
    assert sqs.meta.config.parameter_validation is not False  # botocore validates by default
    assert clients.client("sqs") is sqs  # built once
    quiet = AwsClients(Settings.from_env({**env, "AWS_PARAMETER_VALIDATION": "false"})).client("sqs")
    assert quiet.meta.config.parameter_validation is False


def test_a_bad_boolean_is_refused() -> None:
    with pytest.raises(ValueError, match="AWS_PARAMETER_VALIDATION|bad boolean"):
        Settings.from_env({"AWS_PARAMETER_VALIDATION": "maybe"})
