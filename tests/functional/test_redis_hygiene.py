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


def test_intake_records_a_new_order_in_one_redis_round_trip(client: Any, redis_client: Any, redis_prefix: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import redis.client

    trips: list[list[str]] = []
    real_execute = redis.client.Pipeline.execute

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        trips.append([str(c[0][0]) for c in self.command_stack])
        return real_execute(self, *args, **kwargs)

    monkeypatch.setattr(redis.client.Pipeline, "execute", counted)
    real_call = redis.client.Redis.execute_command

    def single(self: Any, *args: Any, **kwargs: Any) -> Any:
        trips.append([str(args[0])])
        return real_call(self, *args, **kwargs)

    monkeypatch.setattr(redis.client.Redis, "execute_command", single)
    order_id = json.loads(post_order(client).body)["orderId"]
    assert trips == [["INCRBY", "EXPIRE", "ZADD", "EXPIRE"]]  # the rate limit's hit and the active entry
    assert redis_client.zscore(f"{redis_prefix}:active:client-a", order_id) is not None


def test_an_order_the_rate_limit_refuses_leaves_no_active_entry(client: Any, services: Services,
                                                               redis_client: Any, redis_prefix: str) -> None:
    from dataclasses import replace

    from tests.functional.conftest import order_body

    services.settings = replace(services.settings, rate_limit_per_min=1)
    accepted = json.loads(post_order(client).body)["orderId"]
    assert post_order(client).status_code == 429
    assert post_order(client, order_body(clientOrderId="refused-1")).status_code == 429
    assert redis_client.zrange(f"{redis_prefix}:active:client-a", 0, -1) == [accepted.encode()]


def test_a_repeat_of_an_ended_order_does_not_bring_its_active_entry_back(client: Any, services: Services,
                                                                       redis_client: Any,
                                                                       redis_prefix: str) -> None:
    from tests.functional.conftest import order_body

    body = order_body(clientOrderId="ended-1")
    order_id = json.loads(post_order(client, body).body)["orderId"]
    invoke_worker(client, receive_records(services))
    assert services.orders.get(order_id).status.value == "confirmed"  # type: ignore[union-attr]
    assert post_order(client, body).status_code == 200
    assert redis_client.zrange(f"{redis_prefix}:active:client-a", 0, -1) == []


def test_a_refused_duplicate_cannot_take_the_entry_of_the_order_it_duplicates(
        client: Any, services: Services, redis_client: Any, redis_prefix: str) -> None:
    # GIVEN a request admitted as the entry's owner whose order another request then creates
    key = f"{redis_prefix}:active:client-a"
    decision = services.state.admit("client-a", 0, "ord_shared", 1)
    assert decision.added and not decision.allowed
    # WHEN it withdraws its entry but the order exists by then
    services.state.withdraw_active(decision, lambda: False)
    # THEN the entry stays
    assert redis_client.zscore(key, "ord_shared") == 1

    # and a withdrawal raced by the creator's own record (the key changes while watched) backs
    # off, and asked again finds the order created
    looks: list[str] = []

    def creator_records_it() -> bool:
        looks.append("look")
        if len(looks) == 1:
            services.state.add_active("client-a", "ord_shared", 2)
            return True
        return False

    services.state.withdraw_active(decision, creator_records_it)
    assert redis_client.zscore(key, "ord_shared") == 2 and len(looks) == 2


def test_two_refused_requests_at_once_both_take_their_entries_back(
        services: Services, redis_client: Any, redis_prefix: str) -> None:
    key = f"{redis_prefix}:active:client-a"
    first = services.state.admit("client-a", 0, "ord_refused_1", 1)
    second: list[Any] = []

    def other_request_admitted_meanwhile() -> bool:
        if not second:  # the other refused request changes the watched set once
            second.append(services.state.admit("client-a", 0, "ord_refused_2", 2))
        return True

    services.state.withdraw_active(first, other_request_admitted_meanwhile)
    services.state.withdraw_active(second[0], lambda: True)
    assert redis_client.zrange(key, 0, -1) == []
