"""The orders table: each order, its event history and its WebSocket subscribers, in one item.

Keeping the subscribers on the order item is what makes the live stream exact: a
transition and a subscription are both single-item writes, which DynamoDB serialises, so
every transition's write returns precisely the subscribers that must receive it, and every
subscription's write returns precisely the history it must be sent (see
``chalicelib.api.subscriptions``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from ..domain import Order, OrderEvent, OrderStatus, OrderType, get_token
from ..execution.ports import StaleOrderError
from .dynamo import from_item, to_item

__all__ = ["AlreadySubscribedError", "OrdersTable", "order_from_record", "order_to_record"]


class AlreadySubscribedError(Exception):
    """The connection already follows the order: subscribing it again would duplicate its events."""

# Fields a transition may change; everything else is fixed at creation.
_MUTABLE = (
    "status", "version", "attempts", "updatedAt", "venue", "quotes", "amountOut", "minAmountOut",
    "executedPrice", "signature", "lastValidBlockHeight", "tx", "txHash", "error",
)


def order_to_record(order: Order) -> dict[str, Any]:
    return {
        "orderId": order.order_id,
        "clientId": order.client_id,
        "clientOrderId": order.client_order_id,
        "requestHash": order.request_hash,
        "type": order.type.value,
        "tokenIn": order.token_in.symbol,
        "tokenOut": order.token_out.symbol,
        "amountIn": order.amount_in,
        "slippageBps": order.slippage_bps,
        "status": order.status.value,
        "version": order.version,
        "attempts": order.attempts,
        "createdAt": order.created_at,
        "updatedAt": order.updated_at,
        "venue": order.venue,
        "quotes": order.quotes or None,
        "amountOut": order.amount_out,
        "minAmountOut": order.min_amount_out,
        "executedPrice": order.executed_price,
        "signature": order.signature,
        "lastValidBlockHeight": order.last_valid_block_height,
        "tx": order.tx,
        "txHash": order.tx_hash,
        "error": order.error,
        "limitPrice": order.limit_price,
        "maxPrice": order.max_price,
        "history": [e.to_dict() for e in order.history],
    }


def order_from_record(r: dict[str, Any]) -> Order:
    order_id = r["orderId"]
    return Order(
        order_id=order_id,
        client_id=r["clientId"],
        type=OrderType(r["type"]),
        token_in=get_token(r["tokenIn"]),
        token_out=get_token(r["tokenOut"]),
        amount_in=int(r["amountIn"]),
        slippage_bps=int(r["slippageBps"]),
        client_order_id=r.get("clientOrderId"),
        request_hash=r.get("requestHash", ""),
        status=OrderStatus(r["status"]),
        version=int(r["version"]),
        attempts=int(r.get("attempts", 0)),
        created_at=r["createdAt"],
        updated_at=r["updatedAt"],
        venue=r.get("venue"),
        quotes=list(r.get("quotes") or []),
        amount_out=None if r.get("amountOut") is None else int(r["amountOut"]),
        min_amount_out=None if r.get("minAmountOut") is None else int(r["minAmountOut"]),
        executed_price=r.get("executedPrice"),
        signature=r.get("signature"),
        last_valid_block_height=None if r.get("lastValidBlockHeight") is None else int(r["lastValidBlockHeight"]),
        tx=r.get("tx"),
        tx_hash=r.get("txHash"),
        error=r.get("error"),
        history=[OrderEvent.from_dict(order_id, e) for e in r.get("history", [])],
        limit_price=r.get("limitPrice"),
        max_price=r.get("maxPrice"),
    )


def _conditional_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in (
        "ConditionalCheckFailedException",
        "TransactionCanceledException",
    )


class OrdersTable:
    """Speaks orders; one DynamoDB call per method."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._db = client
        self._table = table_name

    def get(self, order_id: str) -> Order | None:
        resp = self._db.get_item(TableName=self._table, Key={"orderId": {"S": order_id}}, ConsistentRead=True)
        item = resp.get("Item")
        return order_from_record(from_item(item)) if item else None

    def get_with_subscribers(self, order_id: str) -> tuple[Order, list[str]] | None:
        resp = self._db.get_item(TableName=self._table, Key={"orderId": {"S": order_id}}, ConsistentRead=True)
        item = resp.get("Item")
        if not item:
            return None
        return self._with_subscribers(from_item(item))

    @staticmethod
    def _with_subscribers(record: dict[str, Any]) -> tuple[Order, list[str]]:
        return order_from_record(record), list(record.get("subs") or [])

    def create(self, order: Order) -> tuple[Order, bool]:
        try:
            self._db.put_item(
                TableName=self._table,
                Item=to_item(order_to_record(order)),
                # the order id is derived from the idempotency key: one id, one order, ever
                ConditionExpression="attribute_not_exists(orderId)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return order, True
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
            old: dict[str, Any] | None = exc.response.get("Item")  # type: ignore[assignment]
            if old:
                return order_from_record(from_item(old)), False
            existing = self.get(order.order_id)
            if existing is None:
                raise
            return existing, False

    def save(self, order: Order, expected_version: int) -> Sequence[str]:
        record = order_to_record(order)
        new_events = [e.to_dict() for e in order.history if e.seq > expected_version]
        sets, removes = ["history = list_append(history, :events)"], []
        names: dict[str, str] = {}
        values: dict[str, Any] = {":events": new_events, ":expected": expected_version,
                                  ":expected_status": _status_at(order, expected_version)}
        for field in _MUTABLE:
            names[f"#{field}"] = field
            if record.get(field) is None:
                removes.append(f"#{field}")
            else:
                sets.append(f"#{field} = :{field}")
                values[f":{field}"] = record[field]
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        try:
            resp = self._db.update_item(
                TableName=self._table,
                Key={"orderId": {"S": order.order_id}},
                UpdateExpression=expression,
                # version_matches: nobody moved the order since we read it (optimistic lock);
                # status_matches: and it is in the status we moved it from.
                ConditionExpression="#version = :expected AND #status = :expected_status",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=to_item(values),
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                raise StaleOrderError(f"order {order.order_id} is no longer at version {expected_version}") from exc
            raise
        subs = from_item(resp.get("Attributes", {})).get("subs") or []
        return list(subs)

    def subscribe_if_at(self, order_id: str, client_id: str, connection_id: str, version: int) -> Order | None:
        """Add a subscriber iff the order is still at ``version``; else return the order as it is now.

        Returns None on success. On a version mismatch returns the current order (read in the
        same failed write), so the caller can send what it missed and try again.
        """
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"orderId": {"S": order_id}},
                UpdateExpression="ADD subs :conn",
                # owned_by_caller: a client subscribes to its own orders only;
                # unchanged: no transition since the caller's snapshot was read.
                # not_yet: a second subscription of the same connection would push everything twice.
                ConditionExpression=("clientId = :client AND version = :version"
                                     " AND NOT contains(subs, :conn_id)"),
                ExpressionAttributeValues={":conn": {"SS": [connection_id]}, ":client": {"S": client_id},
                                           ":version": {"N": str(version)}, ":conn_id": {"S": connection_id}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return None
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
            old: dict[str, Any] | None = exc.response.get("Item")  # type: ignore[assignment]
            found = self._with_subscribers(from_item(old)) if old else self.get_with_subscribers(order_id)
            if found is None or found[0].client_id != client_id:
                raise LookupError(order_id) from exc
            if connection_id in found[1]:
                raise AlreadySubscribedError(order_id) from exc
            return found[0]

    def delete_unstarted(self, order_id: str) -> bool:
        """Remove an order nothing has touched since it was created; False if something has."""
        try:
            self._db.delete_item(
                TableName=self._table,
                Key={"orderId": {"S": order_id}},
                # untouched: still pending at its first version, so no worker has claimed it
                ConditionExpression="#status = :pending AND #version = :first",
                ExpressionAttributeNames={"#status": "status", "#version": "version"},
                ExpressionAttributeValues={":pending": {"S": "pending"}, ":first": {"N": "1"}},
            )
            return True
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise

    def unsubscribe(self, order_id: str, connection_id: str) -> None:
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"orderId": {"S": order_id}},
                UpdateExpression="DELETE subs :conn",
                ConditionExpression="attribute_exists(orderId)",
                ExpressionAttributeValues={":conn": {"SS": [connection_id]}},
            )
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise

    def list_for_client(self, client_id: str, *, status: str | None = None, limit: int = 50) -> list[Order]:
        """Newest first, from the ``byClient`` index; filtered by status when asked."""
        orders: list[Order] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": "byClient",
            "KeyConditionExpression": "clientId = :c",
            "ExpressionAttributeValues": {":c": {"S": client_id}},
            "ScanIndexForward": False,
            "Limit": max(limit, 10),
        }
        if status:
            kwargs["FilterExpression"] = "#s = :s"
            kwargs["ExpressionAttributeNames"] = {"#s": "status"}
            kwargs["ExpressionAttributeValues"][":s"] = {"S": status}
        for _ in range(20):  # bounded: a filter may need a few pages
            resp = self._db.query(**kwargs)
            orders.extend(order_from_record(from_item(i)) for i in resp.get("Items", []))
            if len(orders) >= limit or "LastEvaluatedKey" not in resp:
                break
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        return orders[:limit]


def _status_at(order: Order, version: int) -> str:
    for event in order.history:
        if event.seq == version:
            return event.status.value
    raise ValueError(f"order {order.order_id} has no event with seq {version}")
