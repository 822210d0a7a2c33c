"""A transition writes only what it changed: the same item in the end, smaller writes on the way."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.adapters.dynamo import from_item, to_item
from chalicelib.api.services import Services

from .conftest import invoke_worker, make_services, post_order, receive_records, record_for


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


def test_history_quotes_and_transaction_are_stored_as_json_text_and_read_back_whole(
        client: Any, services: Services) -> None:
    order_id = json.loads(post_order(client).body)["orderId"]
    invoke_worker(client, receive_records(services))
    raw = services._aws.client("dynamodb").get_item(TableName=services.settings.orders_table,
                                                   Key={"orderId": {"S": order_id}}, ConsistentRead=True)["Item"]
    assert all(set(e) == {"S"} for e in raw["history"]["L"])
    assert set(raw["quotes"]) == {"S"} and set(raw["tx"]) == {"S"}
    body = json.loads(client.http.get(f"/api/orders/{order_id}", headers={"x-api-key": "key-a"}).body)
    assert [e["seq"] for e in body["history"]] == [1, 2, 3, 4, 5]
    assert body["history"][1]["data"]["quotes"] == body["quotes"] and len(body["quotes"]) == 2
    order = services.orders.get(order_id)
    assert order is not None and order.tx is not None and order.tx["signature"] == order.signature


def test_an_item_written_with_maps_before_still_reads_and_runs(client: Any, services: Services) -> None:
    # GIVEN a pending order stored the way items were written before: events and quotes as maps
    order_id = json.loads(post_order(client).body)["orderId"]
    receive_records(services)  # its message is replaced by a bare one, below
    record = _item(services, order_id)
    record["history"] = [json.loads(e) for e in record["history"]]
    record["quotes"] = [{"venue": "raydium", "poolId": "p", "amountOut": "1", "fee": "0", "priceImpactBps": 0}]
    services._aws.client("dynamodb").put_item(TableName=services.settings.orders_table, Item=to_item(record))
    assert services.orders.get(order_id) is not None
    # WHEN a worker runs it (reading the table), THEN it ends confirmed with every event, old and new
    assert invoke_worker(client, [record_for(order_id)]) == {"batchItemFailures": []}
    body = json.loads(client.http.get(f"/api/orders/{order_id}", headers={"x-api-key": "key-a"}).body)
    assert body["status"] == "confirmed"
    assert [(e["seq"], e["status"]) for e in body["history"]] == [
        (1, "pending"), (2, "routing"), (3, "building"), (4, "submitted"), (5, "confirmed")]
