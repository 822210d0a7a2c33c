"""The AsyncAPI document of the WebSocket API: valid against the published AsyncAPI 3.0 schema,
committed unchanged, covering every action the handler takes, and describing what it really sends."""

from __future__ import annotations

import copy
import json
import typing
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from chalicelib.api.contract import SERVER_MESSAGES
from chalicelib.api.models import CLIENT_ACTIONS, WsMessage
from chalicelib.api.services import Services
from devstack.asyncapi import document
from devstack.contract_docs import DOCS, asyncapi_text

from .conftest import RecordingNotifier, invoke_worker, receive_records
from .test_websocket import connect, say

SCHEMA = Path(__file__).resolve().parent.parent / "contract_schemas" / "asyncapi-3.0.0.json"


def _validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))


def test_the_document_is_valid_asyncapi_3() -> None:
    doc = yaml.safe_load(asyncapi_text())
    assert doc["asyncapi"] == "3.0.0"
    assert list(_validator().iter_errors(doc)) == []


def test_the_validator_would_catch_a_broken_document() -> None:
    broken = copy.deepcopy(document())
    broken["operations"]["receivePing"]["action"] = "listen"
    assert list(_validator().iter_errors(json.loads(json.dumps(broken))))


def test_the_committed_copy_matches_the_code() -> None:
    assert (DOCS / "asyncapi.yaml").read_text(encoding="utf-8") == asyncapi_text(), \
        "docs/asyncapi.yaml is out of date: run `make docs`"


def test_every_action_the_handler_takes_is_documented() -> None:
    handled = set(typing.get_args(WsMessage.model_fields["action"].annotation))
    documented = {typing.get_args(m.model_fields["action"].annotation)[0] for m in CLIENT_ACTIONS}
    assert handled == documented


def _fits(message: dict[str, Any]) -> bool:
    for model in SERVER_MESSAGES:
        kind = typing.get_args(model.model_fields["type"].annotation)[0]
        if kind == message["type"]:
            model.model_validate(message)
            return True
    return False


@pytest.mark.parametrize("actions", [
    [{"action": "ping"}],
    [{"action": "execute", "order": {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1"}}],
    [{"action": "execute", "order": {"tokenIn": "SOL", "tokenOut": "SOL", "amount": "1"}}],
    [{"action": "subscribe", "orderId": "ord_0000000000000000000000000"}],
    [{"action": "jump"}],
])
def test_what_the_socket_sends_fits_the_documented_messages(client: Any, services: Services,
                                                            notifier: RecordingNotifier,
                                                            actions: list[dict[str, Any]]) -> None:
    cid = connect(notifier)
    for action in actions:
        say(cid, action)
    records = receive_records(services)
    if records:
        invoke_worker(client, records)
    sent = notifier.sent[cid]
    assert sent
    for message in sent:
        assert _fits(message), message
