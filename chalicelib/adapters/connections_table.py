"""The connections table: connectionId → clientId and when it connected.

Items expire by TTL after API Gateway's two-hour maximum, so a connection whose
``$disconnect`` never ran (it is best effort on AWS) does not linger.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .dynamo import from_item, to_item

__all__ = ["Connection", "ConnectionsTable"]


@dataclass(frozen=True)
class Connection:
    connection_id: str
    client_id: str
    connected_at: str


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

    def delete(self, connection_id: str) -> None:
        self._db.delete_item(TableName=self._table, Key={"connectionId": {"S": connection_id}})

    @staticmethod
    def _connection(r: dict[str, Any]) -> Connection:
        return Connection(r["connectionId"], r["clientId"], r.get("connectedAt", ""))
