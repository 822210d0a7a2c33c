"""The connections table: connectionId → clientId, when it connected, what it follows.

Items expire by TTL after API Gateway's two-hour maximum, so a connection whose
``$disconnect`` never ran (it is best effort on AWS) does not linger.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from .dynamo import from_item, to_item

__all__ = ["Connection", "ConnectionsTable"]


@dataclass(frozen=True)
class Connection:
    connection_id: str
    client_id: str
    connected_at: str
    subscriptions: list[str] = field(default_factory=list)


class ConnectionsTable:
    def __init__(self, client: Any, table_name: str) -> None:
        self._db = client
        self._table = table_name

    def put(self, connection_id: str, client_id: str, connected_at: str, expires_at_epoch: int) -> None:
        self._db.put_item(
            TableName=self._table,
            Item=to_item({"connectionId": connection_id, "clientId": client_id,
                          "connectedAt": connected_at, "ttl": expires_at_epoch}),
        )

    def get(self, connection_id: str) -> Connection | None:
        resp = self._db.get_item(TableName=self._table, Key={"connectionId": {"S": connection_id}})
        item = resp.get("Item")
        return self._connection(from_item(item)) if item else None

    def delete(self, connection_id: str) -> Connection | None:
        """Remove the connection; returns what it was (with its subscriptions), if anything."""
        resp = self._db.delete_item(
            TableName=self._table, Key={"connectionId": {"S": connection_id}}, ReturnValues="ALL_OLD"
        )
        item = resp.get("Attributes")
        return self._connection(from_item(item)) if item else None

    def add_subscription(self, connection_id: str, order_id: str) -> None:
        self._update_subscription(connection_id, order_id, "ADD")

    def remove_subscription(self, connection_id: str, order_id: str) -> None:
        self._update_subscription(connection_id, order_id, "DELETE")

    def _update_subscription(self, connection_id: str, order_id: str, op: str) -> None:
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"connectionId": {"S": connection_id}},
                UpdateExpression=f"{op} subs :o",
                # connected: never resurrect a connection that $disconnect already removed
                ConditionExpression="attribute_exists(connectionId)",
                ExpressionAttributeValues={":o": {"SS": [order_id]}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    @staticmethod
    def _connection(r: dict[str, Any]) -> Connection:
        return Connection(r["connectionId"], r["clientId"], r.get("connectedAt", ""), list(r.get("subs") or []))
