"""Redis keeps no stale or immortal key: every key expires, and the active set cannot leak."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.adapters.redis_state import ACTIVE_TTL_SECONDS
from chalicelib.api.services import Services
from tests.functional.aws_calls import invoked_as
from tests.functional.conftest import API_KEY_A, invoke_worker, post_order, receive_records


def _keys(redis_client: Any, prefix: str) -> list[bytes]:
    return list(redis_client.scan_iter(match=f"{prefix}:*"))


def test_every_key_an_order_writes_expires(client: Any, services: Services, redis_client: Any,
                                           redis_prefix: str) -> None:
    order_id = json.loads(post_order(client).body)["orderId"]
    invoke_worker(client, receive_records(services))
    assert services.orders.get(order_id).status.value == "confirmed"  # type: ignore[union-attr]
    post_order(client)  # and one still active
    keys = _keys(redis_client, redis_prefix)
    assert keys, "the order wrote nothing to Redis"
    assert all(redis_client.ttl(k) > 0 for k in keys), {k: redis_client.ttl(k) for k in keys}
    active = f"{redis_prefix}:active:client-a".encode()
    assert 0 < redis_client.ttl(active) <= ACTIVE_TTL_SECONDS


def test_an_order_that_ends_before_intake_returns_does_not_linger_as_active(
        client: Any, services: Services, redis_client: Any, redis_prefix: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a worker so fast that it finishes the order before intake's send even returns
    queue = services.queue
    real_send = queue.send

    def send_and_execute_at_once(payload: dict[str, Any]) -> str:
        message_id = real_send(payload)
        with invoked_as("process_orders"):  # the worker's calls, not intake's
            services.executor.execute(payload["orderId"])
        return message_id

    monkeypatch.setattr(queue, "send", send_and_execute_at_once)
    # WHEN an order is submitted
    order_id = json.loads(post_order(client).body)["orderId"]
    # THEN it ended, and the active set does not keep it
    assert services.orders.get(order_id).status.value == "confirmed"  # type: ignore[union-attr]
    assert order_id.encode() not in redis_client.zrange(f"{redis_prefix}:active:client-a", 0, -1)


def test_stale_active_ids_never_hide_active_orders(client: Any, services: Services, redis_client: Any,
                                                   redis_prefix: str) -> None:
    active_id = json.loads(post_order(client).body)["orderId"]
    key = f"{redis_prefix}:active:client-a"
    # Ids that no longer belong in the set, all newer than the real one.
    stale = {f"ord_stale{i:03d}": 10**13 + i for i in range(30)}
    redis_client.zadd(key, stale)
    resp = client.http.get("/api/orders?status=active&limit=5", headers={"x-api-key": API_KEY_A})
    listed = [o["orderId"] for o in json.loads(resp.body)["orders"]]
    assert listed == [active_id]
    assert redis_client.zrange(key, 0, -1) == [active_id.encode()]  # the stale ids were dropped
