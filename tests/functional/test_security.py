"""Keys fail closed, keys from SSM, constant-time lookup, idempotency keys and amounts held to one rule."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from chalicelib.adapters.redis_state import RedisState
from chalicelib.api.keys import KeyRing, KeySource, KeysUnavailableError, check_keys
from chalicelib.api.services import Services, set_services
from chalicelib.config import ConfigurationError, Settings
from tests.functional.conftest import API_KEY_A, make_settings, order_body, post_order

# -- keys fail closed ------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["dev", "prod", "staging"])
def test_a_stage_other_than_local_without_keys_refuses_to_start(stage: str) -> None:
    settings = Settings.from_env({"STAGE": stage})
    assert settings.api_keys == {}
    with pytest.raises(ConfigurationError) as info:
        check_keys(settings)
    assert "API_KEYS" in str(info.value) and "API_KEYS_PARAMETER" in str(info.value)
    with pytest.raises(KeysUnavailableError):
        KeySource(settings).ring()


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_a_deployed_stage_without_keys_answers_every_request_503(
        aws_env: None, redis_client: Any, redis_prefix: str, stage: str) -> None:
    from chalice.test import Client

    from app import app

    svc = Services(Settings.from_env({"STAGE": stage, "WS_MANAGEMENT_ENDPOINT": "http://127.0.0.1:1/x"}))
    svc.__dict__["state"] = RedisState(redis_client, prefix=redis_prefix)
    set_services(svc)
    try:
        with Client(app) as client:
            for key in ("local-dev-key", "anything"):
                resp = post_order(client, key=key)
                assert resp.status_code == 503
                assert json.loads(resp.body)["error"]["code"] == "keys_unavailable"
    finally:
        set_services(None)


def test_only_the_local_stage_falls_back_to_the_public_key() -> None:
    assert dict(Settings.from_env({}).api_keys) == {"local-dev-key": "local"}
    assert dict(Settings.from_env({"STAGE": "local"}).api_keys) == {"local-dev-key": "local"}
    check_keys(Settings.from_env({}))


def test_the_public_local_key_is_refused_on_any_other_stage() -> None:
    with pytest.raises(ConfigurationError) as info:
        check_keys(Settings.from_env({"STAGE": "prod", "API_KEYS": "k1:a,local-dev-key:b"}))
    assert "local-dev-key" in str(info.value)


def test_configured_keys_replace_the_default() -> None:
    settings = Settings.from_env({"STAGE": "prod", "API_KEYS": "k1:alice,k2:bob"})
    assert dict(settings.api_keys) == {"k1": "alice", "k2": "bob"}
    check_keys(settings)


def test_key_ring_holds_digests_and_finds_the_owner() -> None:
    ring = KeyRing({"k1": "alice", "k2": "bob"})
    assert ring.client_for("k1") == "alice" and ring.client_for("k2") == "bob"
    for wrong in ("", None, "k", "k1 ", "K1", "k3"):
        assert ring.client_for(wrong) is None
    assert "k1" not in repr(ring.__dict__)  # only digests are held


def test_keys_come_from_an_ssm_secure_string(aws_env: None, redis_client: Any, redis_prefix: str) -> None:
    ssm = boto3.client("ssm", region_name="us-east-1")
    ssm.put_parameter(Name="/order-engine/test/api-keys", Value="ssm-key:ssm-client", Type="SecureString")
    settings = Settings.from_env({"STAGE": "prod", "API_KEYS_PARAMETER": "/order-engine/test/api-keys"})
    assert dict(settings.api_keys) == {}
    svc = Services(make_settings(api_keys={}, api_keys_parameter="/order-engine/test/api-keys"))
    svc.__dict__["state"] = RedisState(redis_client, prefix=redis_prefix)
    assert svc.keys.ring().client_for("ssm-key") == "ssm-client"
    assert svc.keys.ring().client_for("local-dev-key") is None


def test_an_unreadable_key_store_refuses_every_request(aws_env: None, redis_client: Any, redis_prefix: str) -> None:
    from chalice.test import Client

    from app import app

    svc = Services(make_settings(api_keys={API_KEY_A: "client-a"}, api_keys_parameter="/missing/parameter"))
    svc.__dict__["state"] = RedisState(redis_client, prefix=redis_prefix)
    set_services(svc)
    try:
        with Client(app) as client:
            resp = post_order(client)
            assert resp.status_code == 503
            assert json.loads(resp.body)["error"]["code"] == "keys_unavailable"
            assert client.http.get("/api/orders", headers={"x-api-key": API_KEY_A}).status_code == 503
    finally:
        set_services(None)


def test_a_parameter_store_value_change_is_picked_up() -> None:
    values = {"p": "a:alice"}
    source = KeySource(make_settings(api_keys={}, api_keys_parameter="p", api_keys_max_age_seconds=0),
                       lambda name, max_age: values[name])
    assert source.ring().client_for("a") == "alice"
    values["p"] = "b:bob"
    assert source.ring().client_for("a") is None and source.ring().client_for("b") == "bob"


# -- idempotency keys and amounts ------------------------------------------------------------------


@pytest.mark.parametrize("key", ["a b/../c", "ключ", "k\u200b", "x" * 65, "", "a\nb"])
def test_the_idempotency_key_header_follows_the_client_order_id_rules(client: Any, key: str) -> None:
    resp = post_order(client, headers={"Idempotency-Key": key})
    assert resp.status_code == 400, key
    error = json.loads(resp.body)["error"]
    assert error["field"] == "Idempotency-Key" and error["code"] == "validation_error"
    body_resp = post_order(client, order_body(clientOrderId=key) if key else order_body(clientOrderId=""))
    assert body_resp.status_code == 400


def test_a_conflict_on_a_header_key_names_the_header(client: Any) -> None:
    assert post_order(client, headers={"Idempotency-Key": "hdr-conflict"}).status_code == 202
    resp = post_order(client, order_body(amount="2"), headers={"Idempotency-Key": "hdr-conflict"})
    assert resp.status_code == 409
    assert json.loads(resp.body)["error"]["field"] == "Idempotency-Key"
    body_key = post_order(client, order_body(clientOrderId="body-conflict"))
    assert body_key.status_code == 202
    resp = post_order(client, order_body(clientOrderId="body-conflict", amount="2"))
    assert json.loads(resp.body)["error"]["field"] == "clientOrderId"


@pytest.mark.parametrize("amount", ["١٢", "۱۲", "１２", "1e2", "1_000"])
def test_amounts_take_ascii_digits_only(client: Any, amount: str) -> None:
    resp = post_order(client, order_body(amount=amount))
    assert resp.status_code == 400
    error = json.loads(resp.body)["error"]
    assert error["field"] == "amount"


def test_two_idempotency_keys_that_disagree_are_a_conflict(client: Any) -> None:
    resp = post_order(client, order_body(clientOrderId="body-key"), headers={"Idempotency-Key": "header-key"})
    assert resp.status_code == 409
    error = json.loads(resp.body)["error"]
    assert error["code"] == "idempotency_conflict" and error["field"] == "Idempotency-Key"
    same = post_order(client, order_body(clientOrderId="same-key"), headers={"Idempotency-Key": "same-key"})
    assert same.status_code == 202
