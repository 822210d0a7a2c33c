"""The orders table: each order, its event history and its WebSocket subscribers, in one item.

Keeping the subscribers on the order item is what makes the live stream exact: a
transition and a subscription are both single-item writes, which DynamoDB serialises, and
the table's stream carries each write's whole new image. So the image of a transition holds
precisely the subscribers that must receive its event, and a subscription's write fails
precisely when a transition slipped in that it must send itself (see
``chalicelib.api.subscriptions`` and ``chalicelib.api.fanout``).

Every write says which of its image's events are new, in ``evFrom``: the events with
``seq > evFrom``. Creation writes 0 (its ``pending`` event is new), a transition the version it
moved from, and every other write (subscribing, unsubscribing, dropping a gone connection) the
item's own ``version``: no event. ``subscribing`` maps a connection to the time (epoch ms) until
which its subscription in progress holds the order's claim for that connection.

Orders that wait are in a sparse index, ``waiting``: its key, ``waitKey`` (the order's type),
exists only while an order waits, and from the matcher's trigger until a worker picks the order
up; its sort key ``waitUntil`` is when the sweep must look at it: the order's ``expiresAt``
while it waits, ``TRIGGER_GRACE`` after its trigger while it is ``routing`` (a trigger whose
message to the worker was lost is sent again then). The index is the truth the trigger book
in Redis is rebuilt from, and what the expiry sweep reads.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from ..domain import (
    TERMINAL,
    Order,
    OrderEvent,
    OrderStatus,
    OrderType,
    SniperChecks,
    Token,
    get_token,
    iso,
    parse_iso,
)
from ..execution.ports import StaleOrderError, TransitionRefused, WaitingOrder
from .dynamo import from_item, to_item

__all__ = [
    "TRIGGER_GRACE",
    "WAITING_INDEX",
    "AlreadySubscribedError",
    "ClaimLostError",
    "OrdersTable",
    "SubscriptionClaim",
    "event_from_stored",
    "order_from_record",
    "order_to_record",
]


class AlreadySubscribedError(Exception):
    """The connection follows the order, or is being subscribed to it: a second subscription
    would send a second snapshot and duplicate its events."""


class ClaimLostError(Exception):
    """A subscription's claim expired and another subscription of the same connection took it."""


@dataclass(frozen=True)
class SubscriptionClaim:
    """The order as the claiming write left it, and the claim's expiry (None: a terminal order,
    which has no live events to follow, so nothing was claimed)."""

    order: Order
    until_ms: int | None

# Fields a transition may change; everything else is fixed at creation. (A sniper's token, named
# by its mint until it launches, gets its symbol and decimals when its pool opens.)
_MUTABLE = (
    "status", "version", "attempts", "updatedAt", "venue", "quotes", "amountOut", "minAmountOut",
    "executedPrice", "signature", "lastValidBlockHeight", "tx", "txHash", "error", "waitKey", "waitUntil",
    "tokenOut", "tokenOutDecimals",
)
WAITING_INDEX = "waiting"
# How long a triggered order may sit in ``routing`` before the sweep sends it to the worker again:
# well past any worker's pick-up and the 60 s a worker may run.
TRIGGER_GRACE = timedelta(seconds=90)


# Stored as JSON text, not as nested maps: what the item holds only to be read back whole (each
# history event, the quotes, the signed transaction) is one attribute each, so a write, its
# stream image and every read handle a few strings instead of hundreds of typed attributes.
# Items written before, with maps, still read back (``_decoded``).
_TEXT_FIELDS = ("quotes", "tx")


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):  # a number read back from an item written with maps
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=_json_default)


def _decoded(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def stored_event(event: OrderEvent) -> str:
    """A history entry as the item stores it."""
    return _text(event.to_dict())


def event_from_stored(order_id: str, raw: Any) -> OrderEvent:
    """A history entry of an item (JSON text, or a map in an item written before)."""
    return OrderEvent.from_dict(order_id, _decoded(raw))


def _stored_field(name: str, value: Any) -> Any:
    return _text(value) if name in _TEXT_FIELDS and value is not None else value


def _wait_index(order: Order) -> tuple[str | None, str | None]:
    """(waitKey, waitUntil) of the ``waiting`` index, or (None, None) when the order is not in it."""
    if order.status is OrderStatus.WAITING and order.expires_at:
        return order.type.value, order.expires_at
    if order.trigger is not None:
        return order.type.value, iso(parse_iso(order.last_event.at) + TRIGGER_GRACE)
    return None, None


def order_to_record(order: Order) -> dict[str, Any]:
    wait_key, wait_until = _wait_index(order)
    return {
        "orderId": order.order_id,
        "clientId": order.client_id,
        "clientOrderId": order.client_order_id,
        "requestHash": order.request_hash,
        "type": order.type.value,
        "tokenIn": order.token_in.symbol,
        "tokenOut": order.token_out.symbol,
        # The tokens themselves, so an order on a token launched later reads back without a registry.
        "tokenInMint": order.token_in.mint,
        "tokenInDecimals": order.token_in.decimals,
        "tokenOutMint": order.token_out.mint,
        "tokenOutDecimals": order.token_out.decimals,
        "amountIn": order.amount_in,
        "slippageBps": order.slippage_bps,
        "status": order.status.value,
        "version": order.version,
        "attempts": order.attempts,
        "createdAt": order.created_at,
        "updatedAt": order.updated_at,
        "venue": order.venue,
        "quotes": _text(order.quotes) if order.quotes else None,
        "amountOut": order.amount_out,
        "minAmountOut": order.min_amount_out,
        "executedPrice": order.executed_price,
        "signature": order.signature,
        "lastValidBlockHeight": order.last_valid_block_height,
        "tx": None if order.tx is None else _text(order.tx),
        "txHash": order.tx_hash,
        "error": order.error,
        "limitPrice": order.limit_price,
        "maxPrice": order.max_price,
        "expiresAt": order.expires_at,
        "checks": order.checks.to_data() if order.checks is not None else None,
        "delaySlots": order.delay_slots if order.type is OrderType.SNIPER else None,
        "waitKey": wait_key,
        "waitUntil": wait_until,
        "history": [stored_event(e) for e in order.history],
    }


def order_from_record(r: dict[str, Any]) -> Order:
    order_id = r["orderId"]
    return Order(
        order_id=order_id,
        client_id=r["clientId"],
        type=OrderType(r["type"]),
        token_in=_token(r, "tokenIn"),
        token_out=_token(r, "tokenOut"),
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
        quotes=list(_decoded(r.get("quotes")) or []),
        amount_out=None if r.get("amountOut") is None else int(r["amountOut"]),
        min_amount_out=None if r.get("minAmountOut") is None else int(r["minAmountOut"]),
        executed_price=r.get("executedPrice"),
        signature=r.get("signature"),
        last_valid_block_height=None if r.get("lastValidBlockHeight") is None else int(r["lastValidBlockHeight"]),
        tx=_decoded(r.get("tx")),
        tx_hash=r.get("txHash"),
        error=r.get("error"),
        history=[event_from_stored(order_id, e) for e in r.get("history", [])],
        limit_price=r.get("limitPrice"),
        max_price=r.get("maxPrice"),
        expires_at=r.get("expiresAt"),
        checks=SniperChecks.from_data(r["checks"]) if r.get("checks") is not None else None,
        delay_slots=int(r.get("delaySlots") or 0),
    )


def _token(record: dict[str, Any], side: str) -> Token:
    if record.get(f"{side}Mint"):
        return Token(record[side], record[f"{side}Mint"], int(record[f"{side}Decimals"]))
    return get_token(record[side])  # written before orders carried their tokens


def _conditional_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in (
        "ConditionalCheckFailedException",
        "TransactionCanceledException",
    )


class _Persisted:
    """The mutable fields of orders as last read or written, by (order id, version), so that a
    transition writes only what it changed: a version's fields never change once written, and
    the write's condition on that version proves the stored item still holds them. Bounded;
    an order it does not know is written whole."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._fields: OrderedDict[tuple[str, int], dict[str, Any]] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def remember(self, record: dict[str, Any]) -> None:
        key = (str(record["orderId"]), int(record["version"]))
        with self._lock:
            self._fields[key] = {field: record.get(field) for field in _MUTABLE}
            self._fields.move_to_end(key)
            while len(self._fields) > self._capacity:
                self._fields.popitem(last=False)

    def take(self, order_id: str, version: int) -> dict[str, Any] | None:
        with self._lock:
            return self._fields.pop((order_id, version), None)


class OrdersTable:
    """Speaks orders; one DynamoDB call per method."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._db = client
        self._table = table_name
        self._persisted = _Persisted()

    def _read(self, item: dict[str, Any]) -> Order:
        record = from_item(item)
        self._persisted.remember(record)
        return order_from_record(record)

    def get(self, order_id: str) -> Order | None:
        resp = self._db.get_item(TableName=self._table, Key={"orderId": {"S": order_id}}, ConsistentRead=True)
        item = resp.get("Item")
        return self._read(item) if item else None

    @staticmethod
    def snapshot(order: Order) -> dict[str, Any]:
        """The order as a message may carry it (plain JSON), for ``from_snapshot``."""
        return {k: v for k, v in order_to_record(order).items() if v is not None}

    def from_snapshot(self, record: dict[str, Any]) -> Order:
        """The order a message carried, as if read here at its version: its first transition then
        writes only what it changes, conditioned on that version like any other."""
        order = order_from_record(record)
        self._persisted.remember(record)
        return order

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
                # evFrom 0: every event of the new order is new; nobody is subscribing yet.
                Item=to_item({**order_to_record(order), "evFrom": 0, "subscribing": {}}),
                # the order id is derived from the idempotency key: one id, one order, ever
                ConditionExpression="attribute_not_exists(orderId)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            self._persisted.remember(order_to_record(order))
            return order, True
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
            old: dict[str, Any] | None = exc.response.get("Item")  # type: ignore[assignment]
            if old:
                return self._read(old), False
            existing = self.get(order.order_id)
            if existing is None:
                raise
            return existing, False

    def save(self, order: Order, expected_version: int) -> None:
        """Append the order's new events and write the fields it changed since ``expected_version``
        (all of them when that version was not read here), iff it is still at that version."""
        record = order_to_record(order)
        before = self._persisted.take(order.order_id, expected_version)
        new_events = [stored_event(e) for e in order.history if e.seq > expected_version]
        # evFrom: the events after the version this write moves from are the new ones.
        sets, removes = ["history = list_append(history, :events)", "evFrom = :expected"], []
        names: dict[str, str] = {"#version": "version", "#status": "status", "#createdAt": "createdAt"}
        values: dict[str, Any] = {":events": new_events, ":expected": expected_version,
                                  ":expected_status": _status_at(order, expected_version),
                                  ":created": order.created_at}
        for field in _MUTABLE:
            value = record.get(field)
            if before is not None and before.get(field) == value:
                continue  # unchanged since the version this write is conditioned on
            names[f"#{field}"] = field
            if value is None:
                removes.append(f"#{field}")
            else:
                sets.append(f"#{field} = :{field}")
                values[f":{field}"] = value
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"orderId": {"S": order.order_id}},
                UpdateExpression=expression,
                # version_matches: nobody moved the order since we read it (optimistic lock);
                # status_matches: and it is in the status we moved it from; createdAt: and it is
                # the order we read, not one created anew under the same id (a withdrawn order
                # resubmitted with its key while a message carrying the first one was queued).
                ConditionExpression="#version = :expected AND #status = :expected_status AND #createdAt = :created",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=to_item(values),
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                raise StaleOrderError(f"order {order.order_id} is no longer at version {expected_version}",
                                      expected_version) from exc
            raise
        self._persisted.remember(record)

    def claim_subscription(self, order_id: str, client_id: str, connection_id: str, now_ms: int,
                           until_ms: int) -> SubscriptionClaim:
        """Claim the order's subscription for a connection until ``until_ms``, reading the order in
        the same write. One claim per (order, connection): a concurrent second subscription finds it.

        Raises LookupError (no such order for this client) and AlreadySubscribedError (the
        connection follows the order, or holds an unexpired claim on it, even once the order has
        finished). Another terminal order is returned unclaimed: nothing live follows it. A claim
        expires so that a subscription that died half-way (its Lambda crashed) cannot lock its
        connection out of the order.
        """
        for _ in range(2):  # a second round only for an item written before claims existed
            names = {"#conn": connection_id, "#version": "version", "#status": "status"}
            terminal = {f":terminal{i}": {"S": status.value} for i, status in enumerate(sorted(TERMINAL))}
            try:
                resp = self._db.update_item(
                    TableName=self._table,
                    Key={"orderId": {"S": order_id}},
                    # evFrom = version: this write adds no event.
                    UpdateExpression="SET subscribing.#conn = :until, evFrom = #version",
                    # owned_by_caller: a client subscribes to its own orders only;
                    # live: a terminal order has nothing to follow (it is answered unclaimed);
                    # not_subscribed: the connection does not follow the order yet;
                    # unclaimed: no other subscription of this connection is under way (or it died:
                    # its claim expired).
                    ConditionExpression=(
                        "clientId = :client"
                        f" AND NOT #status IN ({', '.join(terminal)})"
                        " AND NOT contains(subs, :conn_id)"
                        " AND attribute_exists(subscribing)"
                        " AND (attribute_not_exists(subscribing.#conn) OR subscribing.#conn < :now)"),
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues={":until": {"N": str(until_ms)}, ":client": {"S": client_id},
                                               ":conn_id": {"S": connection_id}, ":now": {"N": str(now_ms)},
                                               **terminal},
                    ReturnValues="ALL_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
                return SubscriptionClaim(order_from_record(from_item(resp["Attributes"])), until_ms)
            except ClientError as exc:
                if not _conditional_failed(exc):
                    raise
                old: dict[str, Any] | None = exc.response.get("Item")  # type: ignore[assignment]
                record = from_item(old) if old else None
                if record is None or record.get("clientId") != client_id:
                    raise LookupError(order_id) from exc
                order = order_from_record(record)
                claim = (record.get("subscribing") or {}).get(connection_id)
                if connection_id in (record.get("subs") or ()) or (claim is not None and claim >= now_ms):
                    raise AlreadySubscribedError(order_id) from exc  # finished or not: it has it all
                if order.is_terminal:
                    return SubscriptionClaim(order, None)
                if "subscribing" not in record:
                    self._add_claims(order_id)
                    continue
                raise AlreadySubscribedError(order_id) from exc
        raise LookupError(order_id)

    def _add_claims(self, order_id: str) -> None:
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"orderId": {"S": order_id}},
                UpdateExpression="SET subscribing = :empty, evFrom = #version",
                ConditionExpression="attribute_exists(orderId) AND attribute_not_exists(subscribing)",
                ExpressionAttributeNames={"#version": "version"},
                ExpressionAttributeValues={":empty": {"M": {}}},
            )
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise

    def complete_subscription(self, order_id: str, connection_id: str, version: int, until_ms: int) -> Order | None:
        """Turn the connection's claim into a subscription iff the order is still at ``version``.

        Returns None on success. On a version mismatch returns the order as it is now (read in
        the same failed write), so the caller can send what it missed and try again. Raises
        ClaimLostError when the claim is no longer the caller's, LookupError when the order is gone.
        """
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"orderId": {"S": order_id}},
                # evFrom = version: this write adds no event; the next transition's image will
                # carry this connection among its subscribers.
                UpdateExpression="ADD subs :conn REMOVE subscribing.#conn SET evFrom = :version",
                # unchanged: no transition since the caller sent everything up to ``version``;
                # still_ours: the claim is the caller's (it has not expired into another's).
                ConditionExpression="#version = :version AND subscribing.#conn = :until",
                ExpressionAttributeNames={"#conn": connection_id, "#version": "version"},
                ExpressionAttributeValues={":conn": {"SS": [connection_id]}, ":version": {"N": str(version)},
                                           ":until": {"N": str(until_ms)}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return None
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
            old: dict[str, Any] | None = exc.response.get("Item")  # type: ignore[assignment]
            if not old:
                raise LookupError(order_id) from exc
            record = from_item(old)
            if (record.get("subscribing") or {}).get(connection_id) != until_ms:
                raise ClaimLostError(order_id) from exc
            return order_from_record(record)

    def release_claim(self, order_id: str, connection_id: str, until_ms: int) -> None:
        """Give up a claim (its subscription could not be completed), if it is still the caller's."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"orderId": {"S": order_id}},
                UpdateExpression="REMOVE subscribing.#conn SET evFrom = #version",
                ConditionExpression="subscribing.#conn = :until",
                ExpressionAttributeNames={"#conn": connection_id, "#version": "version"},
                ExpressionAttributeValues={":until": {"N": str(until_ms)}},
            )
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise

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
                # evFrom = version: this write adds no event.
                UpdateExpression="DELETE subs :conn SET evFrom = #version",
                ConditionExpression="attribute_exists(orderId)",
                ExpressionAttributeNames={"#version": "version"},
                ExpressionAttributeValues={":conn": {"SS": [connection_id]}},
            )
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise

    # -- orders that wait ---------------------------------------------------------------------
    def waiting(self, order_type: str, due_by: str | None = None) -> Iterator[WaitingOrder]:
        """The ``waiting`` index for one order type, soonest ``waitUntil`` first (every page)."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": WAITING_INDEX,
            "KeyConditionExpression": "waitKey = :kind" + (" AND waitUntil <= :due" if due_by else ""),
            "ExpressionAttributeValues": to_item({":kind": order_type, ":due": due_by}),
        }
        while True:
            resp = self._db.query(**kwargs)
            records = [from_item(item) for item in resp.get("Items", [])]
            yield from (_waiting_order(r) for r in self._with_tokens(records))
            if "LastEvaluatedKey" not in resp:
                return
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def _with_tokens(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Index rows of an index made before it projected a sniper's token (a table provisioned
        earlier; DynamoDB cannot change an index's projection in place) get it from their items."""
        missing = [r["orderId"] for r in records if r.get("type") == OrderType.SNIPER.value and "tokenOutMint" not in r]
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(missing), 100):  # BatchGetItem's most keys
            request: dict[str, Any] = {self._table: {
                "Keys": [{"orderId": {"S": order_id}} for order_id in missing[start:start + 100]],
                "ProjectionExpression": "orderId, tokenOutMint, tokenOutDecimals, delaySlots",
                "ConsistentRead": True}}
            while request:
                resp = self._db.batch_get_item(RequestItems=request)
                for item in resp.get("Responses", {}).get(self._table, []):
                    extra = from_item(item)
                    found[extra["orderId"]] = extra
                request = resp.get("UnprocessedKeys") or {}
        return [{**r, **found.get(r["orderId"], {})} for r in records]

    def transition_unread(self, order_id: str, expected_version: int, expected_status: OrderStatus,
                          event: OrderEvent, *, fields: Mapping[str, Any] | None = None,
                          expires_before: str | None = None, expires_after: str | None = None,
                          ) -> TransitionRefused | None:
        """One conditional write that moves an order known only from an index or a cache (the
        trigger book, the ``waiting`` index): the event's seq follows the expected version."""
        if event.seq != expected_version + 1:
            raise ValueError(f"event seq {event.seq} does not follow version {expected_version}")
        # The order's place in the ``waiting`` index follows its new status.
        index: dict[str, Any] = {"waitKey": None, "waitUntil": None}
        if event.status is OrderStatus.ROUTING and "trigger" in event.data:
            index = {"waitUntil": iso(parse_iso(event.at) + TRIGGER_GRACE)}
        elif event.status is OrderStatus.WAITING:
            raise ValueError("an order starts waiting through save(), which knows its expiry")
        fields = {**index, **(fields or {})}
        sets = ["#status = :to", "#version = :next", "updatedAt = :at", "history = list_append(history, :events)",
                "evFrom = :expected"]
        removes: list[str] = []
        names = {"#status": "status", "#version": "version"}
        values: dict[str, Any] = {":to": event.status.value, ":next": event.seq, ":at": event.at,
                                  ":events": [stored_event(event)], ":expected": expected_version,
                                  ":expected_status": expected_status.value}
        for i, (name, value) in enumerate(fields.items()):
            names[f"#f{i}"] = name
            if value is None:
                removes.append(f"#f{i}")
            else:
                sets.append(f"#f{i} = :f{i}")
                values[f":f{i}"] = _stored_field(name, value)
        # version_matches and status_matches: the order is where the index or cache said it was;
        condition = "#version = :expected AND #status = :expected_status"
        if expires_before is not None:  # overdue: its expiry has passed
            condition += " AND expiresAt <= :before"
            values[":before"] = expires_before
        if expires_after is not None:  # not overdue: it may still trigger
            condition += " AND expiresAt > :after"
            values[":after"] = expires_after
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"orderId": {"S": order_id}},
                UpdateExpression="SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else ""),
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=to_item(values),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return None
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
            old: dict[str, Any] | None = exc.response.get("Item")  # type: ignore[assignment]
            if not old:
                return TransitionRefused(None, 0)
            record = from_item(old)
            return TransitionRefused(OrderStatus(record["status"]), int(record["version"]))

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


def _waiting_order(r: dict[str, Any]) -> WaitingOrder:
    status = OrderStatus(r["status"])
    return WaitingOrder(
        order_id=r["orderId"], client_id=r["clientId"], status=status, version=int(r["version"]),
        type=r["type"], token_in=_token(r, "tokenIn"), token_out=_token(r, "tokenOut"),
        amount_in=int(r["amountIn"]), limit_price=r.get("limitPrice"), expires_at=r["expiresAt"],
        delay_slots=int(r.get("delaySlots") or 0))


def _status_at(order: Order, version: int) -> str:
    for event in order.history:
        if event.seq == version:
            return event.status.value
    raise ValueError(f"order {order.order_id} has no event with seq {version}")
