"""The engine's logs: one JSON object per line, each order's lines carrying its id (and its
client where known) and the Lambda context of the invocation; concurrent records never swap ids."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from chalicelib.api.services import Services
from chalicelib.domain import RpcError
from chalicelib.execution.executor import Outcome, OutcomeKind
from chalicelib.logs import logger

from ..conftest import AppLog
from .conftest import API_KEY_A, invoke_worker, order_body, post_order, receive_records, record_for

BASE_KEYS = {"timestamp", "level", "message", "service", "location"}
LAMBDA_KEYS = {"function_name", "function_request_id", "function_arn", "function_memory_size", "cold_start"}


def submit(client: Any) -> str:
    resp = post_order(client, order_body())
    assert resp.status_code == 202, resp.body
    return str(json.loads(resp.body)["orderId"])


def test_an_order_that_fails_is_logged_as_json_lines_with_its_id(
        client: Any, services: Services, monkeypatch: pytest.MonkeyPatch, app_log: AppLog) -> None:
    order_id = submit(client)

    def rpc_down(*args: Any, **kwargs: Any) -> Any:
        raise RpcError("simulated RPC node timeout")

    for venue in services.market.venues.values():
        monkeypatch.setattr(venue, "quote", rpc_down)
    [record] = receive_records(services)
    record["attributes"]["ApproximateReceiveCount"] = str(services.settings.max_attempts)  # the last attempt
    assert invoke_worker(client, [record]) == {"batchItemFailures": []}

    lines = app_log.lines()  # each line parses as one JSON object
    assert lines and all(line.keys() >= BASE_KEYS and line["service"] == "order-engine" for line in lines)
    worker_lines = [line for line in lines if line.get("function_name", "").endswith("process_orders")]
    assert worker_lines and all(line["orderId"] == order_id for line in worker_lines)
    assert all(line.keys() >= LAMBDA_KEYS for line in worker_lines)
    [failed] = app_log.with_message("execution failed")
    assert failed["level"] == "WARNING" and failed["orderId"] == order_id and failed["clientId"] == "client-a"
    assert failed["code"] == "no_route" and "simulated RPC node timeout" in failed["error"]
    assert failed["attempt"] == services.settings.max_attempts and failed["messageId"] == record["messageId"]
    [ended] = app_log.with_message("order failed")  # and the order's end, on a line of its own
    assert ended["orderId"] == order_id and ended["code"] == "no_route" and ended["clientId"] == "client-a"


def test_grep_of_an_orders_id_tells_its_story_with_its_client_on_every_line(
        client: Any, services: Services, app_log: AppLog) -> None:
    order_id = submit(client)
    assert invoke_worker(client, receive_records(services)) == {"batchItemFailures": []}
    story = [line for line in app_log.lines() if line.get("orderId") == order_id]
    assert all(line["clientId"] == "client-a" for line in story)
    assert story[0]["message"] == "order accepted"
    statuses = [(line["status"], line["seq"]) for line in story if line["message"] == "order status"]
    assert statuses == [("routing", 2), ("building", 3), ("submitted", 4), ("confirmed", 5)]
    assert "route" in [line["message"] for line in story]


def test_the_routing_decision_carries_every_quote_and_the_order(
        client: Any, services: Services, app_log: AppLog) -> None:
    order_id = submit(client)
    assert invoke_worker(client, receive_records(services)) == {"batchItemFailures": []}
    [decision] = app_log.with_message("route")
    assert decision["orderId"] == order_id and decision["function_name"].endswith("process_orders")
    assert {q["venue"] for q in decision["quotes"]} == {"raydium", "meteora"}
    assert all(int(q["amountOut"]) > 0 and "fee" in q and "priceImpactBps" in q for q in decision["quotes"])
    assert decision["winner"] in ("raydium", "meteora") and int(decision["minAmountOut"]) > 0


def test_records_run_at_once_each_log_their_own_order_id(
        client: Any, services: Services, monkeypatch: pytest.MonkeyPatch, app_log: AppLog) -> None:
    both_running = threading.Barrier(2, timeout=10)  # passes only while both records are in flight

    def execute(order_id: str, receive_count: int = 1, carried: Any = None) -> Outcome:
        logger.info("record started", extra={"expected": order_id})
        both_running.wait()
        logger.info("record ending", extra={"expected": order_id})
        return Outcome(OutcomeKind.DONE)

    monkeypatch.setattr(services.executor, "execute", execute)
    ids = ["ord_logs_first", "ord_logs_second"]
    assert invoke_worker(client, [record_for(order_id) for order_id in ids]) == {"batchItemFailures": []}
    logger.info("after the batch")

    lines = app_log.lines()
    mine = [line for line in lines if "expected" in line]
    assert sorted(line["expected"] for line in mine) == sorted(ids * 2)
    assert all(line["orderId"] == line["expected"] for line in mine)  # no record's id on another's line
    assert len({line["function_request_id"] for line in mine}) == 1  # the one invocation, on both threads
    [after] = app_log.with_message("after the batch")
    assert "orderId" not in after and "function_name" not in after  # nothing outlives the invocation


def test_a_rest_request_logs_its_client_and_order_and_leaves_no_keys_behind(
        client: Any, services: Services, monkeypatch: pytest.MonkeyPatch, app_log: AppLog) -> None:
    def broken(order_id: str) -> Any:
        raise RuntimeError("the table is away")

    monkeypatch.setattr(services.orders, "get", broken)
    resp = client.http.get("/api/orders/ord_missing", headers={"x-api-key": API_KEY_A})
    assert resp.status_code == 500
    logger.info("after the request")

    [error] = app_log.with_message("unhandled error")
    assert error["level"] == "ERROR" and error["orderId"] == "ord_missing" and error["clientId"] == "client-a"
    assert error["route"] == "get_order" and "the table is away" in error["exception"]
    assert error["exception_name"] == "RuntimeError" and error.keys() >= LAMBDA_KEYS
    [after] = app_log.with_message("after the request")
    assert "orderId" not in after and "clientId" not in after and "function_name" not in after


def test_a_websocket_message_logs_its_connection_client_and_order(
        client: Any, services: Services, monkeypatch: pytest.MonkeyPatch, app_log: AppLog) -> None:
    from chalicelib.api.websocket import handle_message

    services.connections.put("conn-logs", "client-a", "2026-01-01T00:00:00Z", 4_102_444_800)

    def broken(*args: Any, **kwargs: Any) -> Any:
        logger.warning("cancel reached")
        raise RuntimeError("nope")

    monkeypatch.setattr("chalicelib.api.websocket.cancel_order", broken)
    with pytest.raises(RuntimeError):
        handle_message(services, "conn-logs", json.dumps({"action": "cancel", "orderId": "ord_ws"}))
    logger.info("after the message")

    [reached] = app_log.with_message("cancel reached")
    assert reached["orderId"] == "ord_ws" and reached["clientId"] == "client-a"
    assert reached["connectionId"] == "conn-logs"
    [after] = app_log.with_message("after the message")
    assert not {"orderId", "clientId", "connectionId"} & after.keys()
