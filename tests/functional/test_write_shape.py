"""A transition writes only what it changed: the same item in the end, smaller writes on the way."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.adapters.dynamo import from_item
from chalicelib.api.services import Services

from .conftest import invoke_worker, make_services, post_order, receive_records


def _spy(services: Services) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    client = services._aws.client("dynamodb")

    def record(params: dict[str, Any], **_: Any) -> None:
        if "UpdateExpression" in params and "history" in params["UpdateExpression"]:
            calls.append(params)

    client.meta.events.register("provide-client-params.dynamodb.UpdateItem", record)
    return calls


def _item(services: Services, order_id: str) -> dict[str, Any]:
    item = services._aws.client("dynamodb").get_item(TableName=services.settings.orders_table,
                                                    Key={"orderId": {"S": order_id}}, ConsistentRead=True)["Item"]
    return from_item(item)


def test_each_transition_sets_only_the_fields_it_changed(client: Any, services: Services) -> None:
    calls = _spy(services)
    order_id = json.loads(post_order(client).body)["orderId"]
    invoke_worker(client, receive_records(services))
    assert len(calls) == 3  # routing and building, submitted, confirmed
    first = calls[0]["UpdateExpression"]
    assert "#status" in first and "#quotes" in first and "#venue" in first
    assert "#tx " not in first and "REMOVE" not in first
    confirmed = calls[-1]["UpdateExpression"]
    assert "#txHash" in confirmed and "#amountOut" in confirmed and "#quotes" not in confirmed
    assert _item(services, order_id)["status"] == "confirmed"


def test_a_worker_that_did_not_read_the_version_writes_every_field_and_the_item_is_the_same(
        client: Any, services: Services, redis_client: Any, redis_prefix: str) -> None:
    # GIVEN two orders run, one by a worker that read every version it wrote, one by a worker
    # that forgot what it had read (a container that wrote a version it did not read itself)
    diffing = json.loads(post_order(client).body)["orderId"]
    invoke_worker(client, receive_records(services))
    forgetful = make_services(services.settings, redis_client, redis_prefix)
    forgetful.orders._persisted.take = lambda order_id, version: None  # type: ignore[method-assign]
    whole = json.loads(post_order(client).body)["orderId"]
    forgetful.executor.execute(whole)
    receive_records(services)  # drop its message: it has run
    # THEN both items hold the same fields, whichever way they were written
    a, b = _item(services, diffing), _item(services, whole)
    assert a["status"] == b["status"] == "confirmed"
    skip = {"orderId", "createdAt", "updatedAt", "history", "tx", "signature", "txHash", "lastValidBlockHeight"}
    assert {k for k in a if k not in skip} == {k for k in b if k not in skip}
