"""The OpenAPI document: valid, served, committed unchanged, covering exactly the app's routes, and
describing what the routes really answer."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate

from chalicelib.api.contract import (
    AcceptedOrder,
    ErrorResponse,
    Health,
    OrderList,
    OrderView,
    QuotesResponse,
)
from chalicelib.api.openapi import OPERATIONS, document
from chalicelib.api.services import Services
from devstack.contract_docs import DOCS, openapi_text

from .conftest import API_KEY_A, invoke_worker, order_body, post_order, receive_records


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = document()
    assert doc["openapi"] == "3.1.0"
    validate(doc)


def test_the_committed_copy_matches_the_code() -> None:
    committed = (DOCS / "openapi.json").read_text(encoding="utf-8")
    assert committed == openapi_text(), "docs/openapi.json is out of date: run `make docs`"


def test_the_table_covers_exactly_the_apps_routes() -> None:
    from app import app

    def shape(path: str) -> str:  # parameter names are the code's business: /api/orders/{}
        return re.sub(r"\{[^}]+\}", "{}", path)

    served = {(shape(path), method) for path, entries in app.routes.items() for method, entry in entries.items()
              # HEAD is GET without a body, and the 405 view answers every method a path does not serve
              if method != "HEAD" and entry.view_function.__name__ != "method_not_allowed"}
    documented = {(shape(op.path), op.method) for op in OPERATIONS}
    assert documented == served


def test_every_keyed_operation_declares_the_key_and_a_401() -> None:
    doc = document()
    assert doc["components"]["securitySchemes"]["apiKey"] == {"type": "apiKey", "in": "header", "name": "x-api-key"}
    for op in OPERATIONS:
        operation = doc["paths"][op.path][op.method.lower()]
        if op.authenticated:
            assert operation["security"] == [{"apiKey": []}] and "401" in operation["responses"], op.operation_id
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")) or status == "default":
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorResponse"} or op.operation_id == "getHealth"


def test_an_accepted_order_links_to_the_order() -> None:
    accepted = document()["paths"]["/api/orders/execute"]["post"]["responses"]["202"]
    assert accepted["links"]["GetOrder"]["operationId"] == "getOrder"
    assert accepted["links"]["GetOrder"]["parameters"] == {"orderId": "$response.body#/orderId"}


def test_it_is_served_without_a_key_with_this_deployment_as_its_server(client: Any) -> None:
    resp = client.http.get("/openapi.json", headers={"host": "api.example.com", "x-forwarded-proto": "https"})
    assert resp.status_code == 200
    body = json.loads(resp.body)
    assert body["servers"] == [{"url": "https://api.example.com"}]
    assert body["paths"] == document()["paths"]


# -- the routes answer what the document says -----------------------------------------------------


def _get(client: Any, path: str) -> Any:
    return client.http.get(path, headers={"x-api-key": API_KEY_A})


def test_real_answers_fit_their_models(client: Any, services: Services) -> None:
    Health.model_validate_json(client.http.get("/health").body)
    accepted = post_order(client, order_body(clientOrderId="doc-1"))
    assert accepted.status_code == 202
    order_id = AcceptedOrder.model_validate_json(accepted.body).orderId
    replay = post_order(client, order_body(clientOrderId="doc-1"))
    assert replay.status_code == 200
    AcceptedOrder.model_validate_json(replay.body)
    OrderView.model_validate_json(_get(client, f"/api/orders/{order_id}").body)  # pending
    invoke_worker(client, receive_records(services))
    done = OrderView.model_validate_json(_get(client, f"/api/orders/{order_id}").body)
    assert done.status == "confirmed" and [e.seq for e in done.history] == [1, 2, 3, 4, 5]
    assert OrderList.model_validate_json(_get(client, "/api/orders?limit=5").body).count >= 1
    QuotesResponse.model_validate_json(_get(client, "/api/quotes?tokenIn=SOL&tokenOut=USDC&amount=2").body)


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/api/orders/ord_00000000000000000000000000", None),
    ("GET", "/api/orders?limit=0", None),
    ("GET", "/api/quotes?tokenIn=SOL", None),
    ("POST", "/api/orders/execute", order_body(amount="-1")),
])
def test_errors_fit_the_error_model(client: Any, method: str, path: str, body: Any) -> None:
    headers = {"x-api-key": API_KEY_A, "Content-Type": "application/json"}
    resp = (client.http.get(path, headers=headers) if method == "GET"
            else client.http.post(path, headers=headers, body=json.dumps(body)))
    assert resp.status_code >= 400
    ErrorResponse.model_validate_json(resp.body)


def test_the_committed_postman_files_match_the_document() -> None:
    from devstack.contract_docs import postman_collection_text, postman_environment_text

    assert (DOCS / "postman" / "order-engine.postman_collection.json").read_text() == postman_collection_text()
    assert (DOCS / "postman" / "local.postman_environment.json").read_text() == postman_environment_text()


def test_the_collection_has_a_request_per_operation_and_example_with_a_test_script() -> None:
    from devstack.postman import collection

    coll = collection(document())
    requests = [item for folder in coll["item"] for item in folder["item"]]
    documented = sum(max(1, len((op.body_examples) or {})) for op in OPERATIONS)
    assert len(requests) == documented
    assert {v["key"] for v in coll["variable"]} >= {"baseUrl", "wsUrl", "apiKey", "orderId"}
    for item in requests:
        assert item["event"][0]["listen"] == "test" and "pm.response.code" in "\n".join(
            item["event"][0]["script"]["exec"])
    assert "WebSocket" in coll["info"]["description"]


# -- the request schema admits exactly what the code accepts ----------------------------------------


def test_the_body_lists_only_the_order_types_the_engine_executes() -> None:
    from chalicelib.api.models import ORDER_REQUESTS
    from chalicelib.domain.orders import SUPPORTED_TYPES

    schemas = document()["components"]["schemas"]
    listed = [branch["$ref"].rsplit("/", 1)[1] for branch in schemas["ExecuteOrderRequest"]["oneOf"]]
    assert listed == [model.__name__ for kind, model in ORDER_REQUESTS.items() if kind in SUPPORTED_TYPES]
    for kind, model in ORDER_REQUESTS.items():  # nor does a type the code refuses hide among the components
        assert (model.__name__ in schemas) == (kind in SUPPORTED_TYPES)


def _body_validator() -> Any:
    from jsonschema import Draft202012Validator

    doc = document()
    schema = {"$ref": "#/components/schemas/ExecuteOrderRequest", "components": doc["components"]}
    return Draft202012Validator(schema)


def _code_accepts(body: dict[str, Any]) -> bool:
    """What POST /api/orders/execute decides before it stores anything: parse, then build the order."""
    from chalicelib.api.errors import ApiError
    from chalicelib.api.intake import parse_order_request
    from chalicelib.domain import DomainError, Order, OrderType, get_token, to_base_units

    try:
        request = parse_order_request(body)
        token_in = get_token(request.tokenIn, field="tokenIn")
        Order.create(client_id="c", token_in=token_in, token_out=get_token(request.tokenOut, field="tokenOut"),
                     amount_in=to_base_units(request.amount, token_in), slippage_bps=request.slippageBps,
                     order_type=OrderType(request.type))
    except (ApiError, DomainError):
        return False
    return True


_NAMES = ["SOL", "USDC", "BONK", "JUP", "So11111111111111111111111111111111111111112",
          "DezXAZ8z7PnrnRJjz3wXBoRgixCa6xjnB7YaB1pPB263", "sol", " USDC", "DOGE"]
_AMOUNTS = st.one_of(st.builds(lambda whole, fraction: f"{whole}.{fraction}" if fraction else str(whole),
                               st.integers(0, 2 * 10**9), st.from_regex(r"\A[0-9]{0,10}\Z")), st.sampled_from(
    ["1.5", "0.000000001", "0.00001", "0.000001", "1.5000000", "01.5", "999999999.9", "1000000000", "0.10", " 1",
     "1e3", "-1", "0"]))


_SLIPPAGE = st.one_of(st.integers(1, 5000), st.sampled_from([None, 50.0, 0, 5001, 50.5, "50", True]))
_KINDS = st.sampled_from(["market", None, "market", None, "limit", "sniper"])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(token_in=st.sampled_from(_NAMES), token_out=st.sampled_from(_NAMES), amount=_AMOUNTS, slippage=_SLIPPAGE,
       kind=_KINDS)
def test_a_body_is_valid_by_the_document_exactly_when_the_code_accepts_it(
        token_in: str, token_out: str, amount: str, slippage: Any, kind: str | None) -> None:
    body: dict[str, Any] = {"tokenIn": token_in, "tokenOut": token_out, "amount": amount}
    if slippage is not None:
        body["slippageBps"] = slippage
    if kind is not None:
        body["type"] = kind
    assert _BODY.is_valid(body) == _code_accepts(body), body


_BODY = _body_validator()


def _sniper_code_accepts(body: dict[str, Any]) -> bool:
    """What POST decides of a sniper body before it looks at the market (whether its mint already
    trades is the market's to say, which no schema can)."""
    from chalicelib.api.errors import ApiError
    from chalicelib.api.intake import _sniper_terms, parse_order_request
    from chalicelib.api.models import SniperOrderRequest
    from chalicelib.domain import DomainError, Order, OrderType, get_token, to_base_units, unlaunched

    try:
        request = parse_order_request(body)
        assert isinstance(request, SniperOrderRequest)
        checks, delay = _sniper_terms(request)
        token_in = get_token(request.tokenIn, field="tokenIn")
        Order.create(client_id="c", token_in=token_in, token_out=unlaunched(request.tokenOut),
                     amount_in=to_base_units(request.amount, token_in), slippage_bps=request.slippageBps,
                     order_type=OrderType.SNIPER, max_price=request.maxPrice, checks=checks, delay_slots=delay)
    except (ApiError, DomainError):
        return False
    return True


_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_MINTS = st.one_of(st.text(alphabet=_BASE58, min_size=30, max_size=46),
                   st.text(alphabet=_BASE58 + "0OIl+/ ", min_size=32, max_size=44),
                   st.sampled_from(["7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU", "USDC", ""]))
_PRICES = st.one_of(st.from_regex(r"\A[0-9]{1,6}(\.[0-9]{1,12})?\Z"),
                    st.sampled_from(["0", "0.0", "00.000", "0.00001", "1e-5", "-1", ".5", "5.", " 1", 0.5, 1, None]))
_CHECK_VALUES = st.one_of(st.booleans(), st.sampled_from(["true", 1, None]))
_CHECKS = st.one_of(st.none(), st.fixed_dictionaries({}, optional={
    "mintRenounced": _CHECK_VALUES, "freezeRenounced": _CHECK_VALUES, "lpBurned": _CHECK_VALUES,
    "minLiquidity": st.one_of(st.from_regex(r"\A[0-9]{1,4}(\.[0-9]{1,3})?\Z"), st.sampled_from(["", "-1", 5, "1e2"])),
    "honeypot": st.booleans()}))
_DELAYS = st.one_of(st.none(), st.integers(-2, 160), st.sampled_from([3.0, 2.5, "2", True, 1e3]))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(token_in=st.sampled_from(["SOL", "So11111111111111111111111111111111111111112", "USDC", "sol"]),
       token_out=_MINTS, amount=_AMOUNTS, max_price=_PRICES, checks=_CHECKS, delay=_DELAYS)
def test_a_sniper_body_is_valid_by_the_document_exactly_when_the_code_accepts_it(
        token_in: str, token_out: str, amount: str, max_price: Any, checks: Any, delay: Any) -> None:
    body: dict[str, Any] = {"type": "sniper", "tokenIn": token_in, "tokenOut": token_out, "amount": amount}
    for name, value in (("maxPrice", max_price), ("checks", checks), ("delaySlots", delay)):
        if value is not None:
            body[name] = value
    assert _BODY.is_valid(body) == _sniper_code_accepts(body), body


def test_a_sniper_buys_with_sol_spelled_as_the_registry_spells_it() -> None:
    from typing import get_args

    from chalicelib.api.models import SniperOrderRequest
    from chalicelib.domain import TOKENS

    sol = TOKENS["SOL"]
    assert set(get_args(SniperOrderRequest.model_fields["tokenIn"].annotation)) == {sol.symbol, sol.mint}
