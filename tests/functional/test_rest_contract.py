"""The REST contract of API.md: every error class, idempotency, ownership, listing, quotes."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import httpx
import pytest

from chalicelib.api import intake
from chalicelib.api.errors import ApiError
from chalicelib.api.intake import submit_order
from chalicelib.api.services import Services
from chalicelib.domain import WSOL_MINT

from .conftest import API_KEY_A, API_KEY_B, order_body, post_order


def error_of(resp: Any) -> dict[str, Any]:
    return dict(json.loads(resp.body)["error"])


def test_health_is_200_when_every_dependency_answers(client: Any) -> None:
    resp = client.http.get("/health")
    assert resp.status_code == 200
    assert json.loads(resp.body)["checks"] == {"redis": "ok", "ordersTable": "ok", "queue": "ok"}


def test_accepted_order_is_202_pending_with_ws_url(client: Any) -> None:
    resp = post_order(client)
    assert resp.status_code == 202
    body = json.loads(resp.body)
    assert body["status"] == "pending" and body["orderId"].startswith("ord_")
    assert body["wsUrl"].endswith(f"/?orderId={body['orderId']}")


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "wrong"}])
def test_missing_or_bad_key_is_401(client: Any, headers: dict[str, str]) -> None:
    resp = client.http.post("/api/orders/execute", headers={"Content-Type": "application/json", **headers},
                            body=json.dumps(order_body()))
    assert resp.status_code == 401
    assert error_of(resp)["code"] == "unauthorized"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (order_body(tokenIn="DOGE"), "tokenIn"),
        (order_body(tokenOut="SOL"), "tokenOut"),
        (order_body(amount=1.5), "amount"),
        (order_body(amount="0"), "amount"),
        (order_body(amount="-3"), "amount"),
        (order_body(amount="1.0000000001"), "amount"),
        (order_body(slippageBps=0), "slippageBps"),
        (order_body(slippageBps=5001), "slippageBps"),
        (order_body(slippageBps="50"), "slippageBps"),
        (order_body(type="stop"), "type"),
        (order_body(type="sniper", tokenOut="EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v", maxPrice="1"), "tokenOut"),
        (order_body(type="limit"), "limitPrice"),
        (order_body(type="limit", limitPrice="0"), "limitPrice"),
        (order_body(type="limit", limitPrice="1e3"), "limitPrice"),
        (order_body(type="limit", limitPrice=160), "limitPrice"),
        (order_body(type="limit", limitPrice="160", expiresAt="2020-01-01T00:00:00Z"), "expiresAt"),
        (order_body(type="limit", limitPrice="160", expiresAt="2999-01-01T00:00:00Z"), "expiresAt"),
        (order_body(type="limit", limitPrice="160", expiresAt="2030-01-01T00:00:00"), "expiresAt"),
        (order_body(type="limit", limitPrice="160", expiresAt="tomorrow"), "expiresAt"),
        (order_body(limitPrice="100"), "limitPrice"),
        (order_body(maxPrice="1"), "maxPrice"),
        (order_body(surprise=1), "surprise"),
        ({"tokenIn": "SOL", "amount": "1"}, "tokenOut"),
        (order_body(clientOrderId="has spaces"), "clientOrderId"),
        ([1, 2], "body"),
    ],
)
def test_validation_errors_are_400_naming_the_field(client: Any, body: Any, field: str) -> None:
    resp = post_order(client, body)
    assert resp.status_code == 400, resp.body
    assert error_of(resp)["field"] == field
    assert error_of(resp)["message"]


def test_malformed_json_is_400(client: Any) -> None:
    resp = client.http.post("/api/orders/execute", headers={"Content-Type": "application/json", "x-api-key": API_KEY_A},
                            body="{not json")
    assert resp.status_code == 400 and error_of(resp)["code"] == "invalid_json"


def test_body_over_16_kib_is_413(client: Any) -> None:
    resp = post_order(client, order_body(clientOrderId="x", padding="y" * 17_000))
    assert resp.status_code == 413 and error_of(resp)["code"] == "payload_too_large"


def test_same_client_order_id_same_body_returns_the_same_order_200(client: Any) -> None:
    first = post_order(client, order_body(clientOrderId="abc-1"))
    again = post_order(client, order_body(clientOrderId="abc-1"))
    assert (first.status_code, again.status_code) == (202, 200)
    assert json.loads(first.body)["orderId"] == json.loads(again.body)["orderId"]


def test_idempotency_key_header_works_like_client_order_id(client: Any) -> None:
    first = post_order(client, headers={"Idempotency-Key": "hdr-1"})
    again = post_order(client, order_body(clientOrderId="hdr-1"))
    assert again.status_code == 200
    assert json.loads(first.body)["orderId"] == json.loads(again.body)["orderId"]


def test_the_same_order_written_differently_is_still_the_same_order(client: Any) -> None:
    first = post_order(client, order_body(clientOrderId="norm-1", amount="1.5", tokenIn="SOL"))
    again = post_order(client, order_body(clientOrderId="norm-1", amount="1.50", tokenIn=WSOL_MINT))
    assert (first.status_code, again.status_code) == (202, 200)
    assert json.loads(first.body)["orderId"] == json.loads(again.body)["orderId"]


@pytest.mark.parametrize(("overrides", "field", "code"), [
    ({"tokenIn": "sol"}, "tokenIn", "unknown_token"),  # symbols as the document lists them, not case-folded
    ({"tokenOut": " USDC"}, "tokenOut", "unknown_token"),  # nor trimmed
    ({"amount": "01.5"}, "amount", "validation_error"),
    ({"amount": " 1.5"}, "amount", "validation_error"),
    ({"amount": "1000000000"}, "amount", "validation_error"),
    ({"tokenIn": "USDC", "tokenOut": "SOL", "amount": "1.0000001"}, "amount", "validation_error"),
])
def test_what_the_document_refuses_the_code_refuses(client: Any, overrides: dict[str, Any], field: str,
                                                    code: str) -> None:
    resp = post_order(client, order_body(**overrides))
    assert resp.status_code == 400, resp.body
    assert error_of(resp)["field"] == field and error_of(resp)["code"] == code


@pytest.mark.parametrize("overrides", [
    {"amount": "0.000000001"},  # a lamport: SOL has 9 decimals
    {"amount": "0.10"},
    {"tokenIn": "USDC", "tokenOut": "SOL", "amount": "1.5000000"},  # zeros past USDC's 6 decimals change nothing
    {"slippageBps": 75.0},  # an integer as JSON Schema counts one
])
def test_what_the_document_accepts_the_code_accepts(client: Any, overrides: dict[str, Any]) -> None:
    assert post_order(client, order_body(**overrides)).status_code == 202


def test_same_key_different_body_is_409(client: Any) -> None:
    post_order(client, order_body(clientOrderId="abc-2"))
    resp = post_order(client, order_body(clientOrderId="abc-2", amount="2"))
    assert resp.status_code == 409 and error_of(resp)["field"] == "clientOrderId"


def test_keys_are_per_client(client: Any) -> None:
    a = json.loads(post_order(client, order_body(clientOrderId="shared")).body)["orderId"]
    b = json.loads(post_order(client, order_body(clientOrderId="shared", amount="9"), key=API_KEY_B).body)["orderId"]
    assert a != b


def test_two_concurrent_identical_posts_create_one_order(services: Services) -> None:
    barrier = threading.Barrier(8)
    results: list[tuple[str, bool]] = []

    def submit() -> None:
        barrier.wait()
        accepted = submit_order(services, "client-a", order_body(clientOrderId="race-1"))
        results.append((accepted.order.order_id, accepted.created))

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({oid for oid, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    sqs = services._aws.client("sqs")
    attrs = sqs.get_queue_attributes(QueueUrl=services.queue.url, AttributeNames=["ApproximateNumberOfMessages"])
    assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "1"


def test_replay_of_an_order_left_pending_re_enqueues_it(services: Services,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN an order persisted whose queue message was lost (as after a crash between the two writes)
    first = submit_order(services, "client-a", order_body(clientOrderId="lost-1"))
    sqs = services._aws.client("sqs")
    for m in sqs.receive_message(QueueUrl=services.queue.url, MaxNumberOfMessages=10).get("Messages", []):
        sqs.delete_message(QueueUrl=services.queue.url, ReceiptHandle=m["ReceiptHandle"])
    # WHEN the client retries the same request once the order is older than the window
    monkeypatch.setattr(intake, "REENQUEUE_AFTER_SECONDS", 0)
    again = submit_order(services, "client-a", order_body(clientOrderId="lost-1"))
    # THEN it is the same order, queued again
    assert again.order.order_id == first.order.order_id and not again.created
    messages = sqs.receive_message(QueueUrl=services.queue.url, MaxNumberOfMessages=10).get("Messages", [])
    assert [json.loads(m["Body"])["orderId"] for m in messages] == [first.order.order_id]


def test_an_order_that_cannot_be_queued_is_not_kept_and_can_be_submitted_again(
        client: Any, services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    body = order_body(clientOrderId="queue-down-1")

    def queue_down(message: dict[str, Any]) -> None:
        raise ConnectionError("SQS unreachable")

    monkeypatch.setattr(services.queue, "send", queue_down)
    resp = post_order(client, body)
    assert resp.status_code == 503 and error_of(resp)["code"] == "enqueue_failed"
    monkeypatch.undo()
    again = post_order(client, body)
    assert again.status_code == 202  # created afresh, and queued this time
    sqs = services._aws.client("sqs")
    messages = sqs.receive_message(QueueUrl=services.queue.url, MaxNumberOfMessages=10).get("Messages", [])
    assert [json.loads(m["Body"])["orderId"] for m in messages] == [json.loads(again.body)["orderId"]]


def test_a_message_that_outlived_its_withdrawn_order_never_executes_the_one_created_anew(
        client: Any, services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    from .conftest import invoke_worker, receive_records

    # GIVEN a send that reached the queue but answered an error: the order is withdrawn (503) ...
    real_send = services.queue.send

    def sent_then_timed_out(message: dict[str, Any]) -> str:
        real_send(message)
        raise ConnectionError("read timeout")

    monkeypatch.setattr(services.queue, "send", sent_then_timed_out)
    first = post_order(client, order_body(clientOrderId="gone-1", amount="1.5"))
    assert first.status_code == 503
    monkeypatch.undo()
    # ... and the client submits again, with the same key and another body: a new order, same id
    again = post_order(client, order_body(clientOrderId="gone-1", amount="0.1"))
    assert again.status_code == 202
    order_id = json.loads(again.body)["orderId"]
    # WHEN the first message (carrying the withdrawn 1.5 SOL order) and the second are delivered
    records = receive_records(services)
    assert len(records) == 2
    for record in records:
        assert invoke_worker(client, [record]) == {"batchItemFailures": []}
    # THEN what executes is the order as stored, 0.1 SOL, once
    stored = services.orders.get(order_id)
    assert stored is not None and stored.status.value == "confirmed" and stored.amount_in == 10**8
    assert [e.status.value for e in stored.history].count("confirmed") == 1
    assert stored.amount_out is not None and stored.amount_out < 20 * 10**6  # 0.1 SOL's worth of USDC


def test_deeply_nested_json_is_a_400_not_a_crash(client: Any) -> None:
    resp = client.http.post("/api/orders/execute", headers={"Content-Type": "application/json", "x-api-key": API_KEY_A},
                            body="[" * 15_000)
    assert resp.status_code == 400 and error_of(resp)["code"] == "invalid_json"


def test_orders_are_accepted_and_listed_while_redis_is_away(client: Any, services: Services,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    def away(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("Redis unreachable")

    for name in ("admit", "hit_rate_limit", "add_active", "active", "active_entries"):
        monkeypatch.setattr(services.state, name, away)
    resp = post_order(client)
    assert resp.status_code == 202
    active = client.http.get("/api/orders?status=active", headers={"x-api-key": API_KEY_A})
    assert active.status_code == 200
    assert [o["orderId"] for o in json.loads(active.body)["orders"]] == [json.loads(resp.body)["orderId"]]


def test_empty_query_parameters_count_as_absent(client: Any) -> None:
    post_order(client)
    resp = client.http.get("/api/orders?status=&limit=", headers={"x-api-key": API_KEY_A})
    assert resp.status_code == 200 and json.loads(resp.body)["count"] == 1


def test_get_order_returns_it_with_history(client: Any) -> None:
    order_id = json.loads(post_order(client).body)["orderId"]
    resp = client.http.get(f"/api/orders/{order_id}", headers={"x-api-key": API_KEY_A})
    assert resp.status_code == 200
    order = json.loads(resp.body)
    for key in ("orderId", "clientOrderId", "type", "tokenIn", "tokenOut", "amount", "slippageBps", "status",
                "createdAt", "updatedAt", "attempts", "venue", "quotes", "amountOut", "executedPrice", "txHash",
                "error", "history"):
        assert key in order
    assert order["amount"] == "1.5" and order["history"][0]["seq"] == 1


def test_another_clients_order_is_404(client: Any) -> None:
    order_id = json.loads(post_order(client).body)["orderId"]
    resp = client.http.get(f"/api/orders/{order_id}", headers={"x-api-key": API_KEY_B})
    assert resp.status_code == 404 and error_of(resp)["code"] == "not_found"
    assert client.http.get("/api/orders/ord_nope", headers={"x-api-key": API_KEY_A}).status_code == 404


def test_list_returns_only_the_callers_orders_newest_first(client: Any) -> None:
    mine = [json.loads(post_order(client).body)["orderId"] for _ in range(3)]
    post_order(client, key=API_KEY_B)
    resp = client.http.get("/api/orders?limit=10", headers={"x-api-key": API_KEY_A})
    listed = [o["orderId"] for o in json.loads(resp.body)["orders"]]
    assert listed == list(reversed(mine))
    active = client.http.get("/api/orders?status=active", headers={"x-api-key": API_KEY_A})
    assert {o["orderId"] for o in json.loads(active.body)["orders"]} == set(mine)
    bad = client.http.get("/api/orders?status=nope", headers={"x-api-key": API_KEY_A})
    assert bad.status_code == 400 and error_of(bad)["field"] == "status"


def test_quotes_show_every_venue_and_the_route(client: Any, services: Services,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []
    for venue in services.market.venues.values():
        monkeypatch.setattr(venue, "quote", lambda *a, _v=venue, _q=venue.quote: (asked.append(_v.name), _q(*a))[1])
    resp = client.http.get("/api/quotes?tokenIn=SOL&tokenOut=USDC&amount=1.5", headers={"x-api-key": API_KEY_A})
    assert resp.status_code == 200
    body = json.loads(resp.body)
    assert {q["venue"] for q in body["quotes"]} == {"raydium", "meteora"}
    best = max(body["quotes"], key=lambda q: float(q["amountOut"]))
    assert body["route"]["venue"] == best["venue"] and body["route"]["amountOut"] == best["amountOut"]
    assert sorted(asked) == ["meteora", "raydium"]  # the route is built from these very quotes
    bad = client.http.get("/api/quotes?tokenIn=SOL&tokenOut=NOPE&amount=1", headers={"x-api-key": API_KEY_A})
    assert bad.status_code == 400 and error_of(bad)["field"] == "tokenOut"


@pytest.mark.parametrize(("query", "field"), [
    ("tokenIn=sol&tokenOut=USDC&amount=1", "tokenIn"),
    ("tokenIn=SOL&tokenOut=USDC&amount=1e3", "amount"),
    ("tokenIn=SOL&tokenOut=USDC&amount=1&slippageBps=+50", "slippageBps"),
    ("tokenIn=SOL&tokenOut=USDC&amount=1&slippageBps=5_0", "slippageBps"),
    ("tokenIn=USDC&tokenOut=SOL&amount=1.0000001", "amount"),  # more decimals than USDC has
    ("tokenIn=SOL&tokenOut=So11111111111111111111111111111111111111112&amount=1", "tokenOut"),  # the same token
])
def test_quote_queries_the_document_refuses_are_400(client: Any, query: str, field: str) -> None:
    resp = client.http.get(f"/api/quotes?{query}", headers={"x-api-key": API_KEY_A})
    assert resp.status_code == 400 and error_of(resp)["field"] == field


def test_a_list_limit_is_digits_only(client: Any) -> None:
    for limit in ("+5", " 5", "5.0", "5_0"):
        resp = client.http.get(f"/api/orders?limit={limit}", headers={"x-api-key": API_KEY_A})
        assert resp.status_code == 400 and error_of(resp)["field"] == "limit", limit
    assert client.http.get("/api/orders?limit=5", headers={"x-api-key": API_KEY_A}).status_code == 200


def test_rate_limit_is_429_with_retry_after(client: Any, services: Services) -> None:
    services.settings = replace(services.settings, rate_limit_per_min=3)
    codes = [post_order(client).status_code for _ in range(4)]
    assert codes == [202, 202, 202, 429]
    resp = post_order(client)
    assert resp.status_code == 429
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    assert post_order(client, key=API_KEY_B).status_code == 202  # per client


def test_a_resubmission_is_never_refused_by_the_rate_limit_nor_counted_against_it(
        client: Any, services: Services) -> None:
    services.settings = replace(services.settings, rate_limit_per_min=2)
    first = post_order(client, order_body(clientOrderId="again-1"))
    assert first.status_code == 202
    # repeats create nothing: each answers the same order and leaves the minute's budget as it was
    for _ in range(4):
        again = post_order(client, order_body(clientOrderId="again-1"))
        assert again.status_code == 200 and json.loads(again.body)["orderId"] == json.loads(first.body)["orderId"]
    assert post_order(client).status_code == 202  # the budget's second order
    refused = post_order(client)
    assert refused.status_code == 429
    # with the budget spent, a repeat is still the same order, and a new key is still refused
    repeat = post_order(client, order_body(clientOrderId="again-1"))
    assert repeat.status_code == 200 and json.loads(repeat.body)["orderId"] == json.loads(first.body)["orderId"]
    assert post_order(client, order_body(clientOrderId="again-2")).status_code == 429


def test_a_resubmission_that_cannot_be_queued_again_keeps_the_order(services: Services,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN an accepted order whose first message may still be waiting in a backlog
    first = submit_order(services, "client-a", order_body(clientOrderId="kept-1"))
    monkeypatch.setattr(intake, "REENQUEUE_AFTER_SECONDS", 0)

    def queue_down(message: dict[str, Any]) -> None:
        raise ConnectionError("SQS unreachable")

    monkeypatch.setattr(services.queue, "send", queue_down)
    # WHEN the client resubmits it and sending it again fails
    with pytest.raises(ApiError) as refused:
        submit_order(services, "client-a", order_body(clientOrderId="kept-1"))
    # THEN it is told to submit again, and the accepted order is still there with its message
    assert refused.value.status == 503 and refused.value.code == "enqueue_failed"
    stored = services.orders.get(first.order.order_id)
    assert stored is not None and stored.status.value == "pending"
    sqs = services._aws.client("sqs")
    messages = sqs.receive_message(QueueUrl=services.queue.url, MaxNumberOfMessages=10).get("Messages", [])
    assert [json.loads(m["Body"])["orderId"] for m in messages] == [first.order.order_id]


@pytest.mark.parametrize(("body", "field", "words"), [
    (order_body(limitPrice="100"), "limitPrice", "limit orders only"),
    (order_body(maxPrice="1"), "maxPrice", "sniper orders only"),
    (order_body(delaySlots=2), "delaySlots", "sniper orders only"),
    (order_body(type=7), "type", "market"),
])
def test_a_field_of_another_order_type_is_named_with_its_type(client: Any, body: dict[str, Any], field: str,
                                                              words: str) -> None:
    resp = post_order(client, body)
    assert resp.status_code == 400
    assert error_of(resp)["field"] == field and words in error_of(resp)["message"]


# -- every error in the contract's shape: what Chalice and API Gateway answer by themselves --------

@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
def test_a_body_that_is_not_json_is_415_naming_the_content_type(client: Any, content_type: str) -> None:
    resp = client.http.post("/api/orders/execute", headers={"Content-Type": content_type, "x-api-key": API_KEY_A},
                            body=json.dumps(order_body()))
    assert resp.status_code == 415
    assert error_of(resp) == {"code": "unsupported_media_type", "field": "Content-Type",
                              "message": f"the body must be application/json, not {content_type}"}
    assert resp.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("PUT", "/api/orders/execute", "POST"),
    ("GET", "/api/orders/execute", "POST"),
    ("DELETE", "/health", "GET, HEAD"),
    ("POST", "/api/orders/ord_123", "GET, HEAD, DELETE"),
    ("PATCH", "/api/quotes", "GET, HEAD"),
    ("OPTIONS", "/api/orders", "GET, HEAD"),
    ("TRACE", "/health", "GET, HEAD"),  # a method no route names: Chalice answers, Allow as above
    ("CONNECT", "/api/orders/execute", "POST"),
])
def test_a_method_the_path_does_not_serve_is_405_with_allow(client: Any, method: str, path: str, allow: str) -> None:
    resp = client.http.request(method, path, headers={"x-api-key": API_KEY_A, "Content-Type": "text/plain"},
                               body=b"anything")
    assert resp.status_code == 405
    assert error_of(resp)["code"] == "method_not_allowed" and method in error_of(resp)["message"]
    assert resp.headers["Allow"] == allow


def test_head_is_served_wherever_get_is(client: Any) -> None:
    assert client.http.head("/health").status_code == 200
    order_id = json.loads(post_order(client).body)["orderId"]
    assert client.http.head(f"/api/orders/{order_id}", headers={"x-api-key": API_KEY_A}).status_code == 200
    assert client.http.head("/api/orders/ord_none", headers={"x-api-key": API_KEY_A}).status_code == 404


def test_an_error_chalice_catches_itself_is_a_500_in_the_contracts_shape(client: Any,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from app import app

    def unguarded() -> None:  # a view without api_route: its exception reaches Chalice
        raise RuntimeError("boom")

    monkeypatch.setattr(app.routes["/health"]["GET"], "view_function", unguarded)
    resp = client.http.get("/health")
    assert resp.status_code == 500 and error_of(resp)["code"] == "internal_error"


@pytest.fixture
def through_local_gateway(services: Services) -> Iterator[Callable[..., httpx.Response]]:
    """Requests through the local stack's REST front (API Gateway's routing and gateway
    responses, then Chalice), in process, without a socket."""
    from app import app
    from devstack.rest import ChaliceAsgi, chalice_config

    with ThreadPoolExecutor(max_workers=1) as executor:
        front = ChaliceAsgi(app, chalice_config(app, "local"), executor)

        def request(method: str, path: str, **kwargs: Any) -> httpx.Response:
            async def go() -> httpx.Response:
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app=front), base_url="http://local") as http:
                    return await http.request(method, path, **kwargs)

            return asyncio.run(go())

        yield request


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/nope"), ("POST", "/api/order/execute"), ("GET", "/api/orders/ord_1/extra"), ("DELETE", "/nope/deeper"),
])
def test_an_unknown_path_is_404_in_the_contracts_shape(through_local_gateway: Callable[..., httpx.Response],
                                                        method: str, path: str) -> None:
    resp = through_local_gateway(method, path, headers={"x-api-key": API_KEY_A})
    assert resp.status_code == 404
    assert resp.json() == {"error": {"code": "not_found", "message": "no route matches this path"}}
    assert resp.headers["content-type"] == "application/json"


def test_the_local_gateway_serves_the_routes_and_their_errors_alike(
        through_local_gateway: Callable[..., httpx.Response]) -> None:
    accepted = through_local_gateway("POST", "/api/orders/execute", json=order_body(),
                                     headers={"x-api-key": API_KEY_A})
    assert accepted.status_code == 202 and accepted.json()["status"] == "pending"
    refused = through_local_gateway("PUT", "/api/orders/execute", headers={"x-api-key": API_KEY_A})
    assert refused.status_code == 405 and refused.json()["error"]["code"] == "method_not_allowed"
    head = through_local_gateway("HEAD", "/health")
    assert head.status_code == 200
