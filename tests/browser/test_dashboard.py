"""The dashboard as a user sees it: orders submitted from the form, the API's errors beside their
fields, a dropped socket caught up with ``afterSeq``, waiting orders and their cancel button."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

from .conftest import PHONE, SETTLE_MS, Dashboard, expect


def test_market_order_from_the_form_reaches_confirmed_with_its_venue_and_amount(dashboard: Dashboard) -> None:
    page = dashboard.open(remember_key=False)
    # First visit: the page asks for the key, once, and keeps it.
    dialog = page.locator("#key-dialog")
    expect(dialog).to_be_visible()
    page.get_by_label("Key", exact=True).fill(dashboard.key)
    page.click("#key-save")
    expect(dialog).to_be_hidden()
    expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=SETTLE_MS)
    assert page.evaluate("localStorage.getItem('order-engine.apiKey')") == dashboard.key

    order_id = dashboard.submit(amount="1.5", slippageBps="100")
    expect(dashboard.cell(order_id, "status")).to_have_text("confirmed", timeout=SETTLE_MS)
    order = dashboard.order(order_id)
    assert order["status"] == "confirmed"
    expect(dashboard.cell(order_id, "venue")).to_have_text(order["venue"])
    expect(dashboard.cell(order_id, "out")).to_have_text(f"{order['amountOut']} USDC")
    expect(dashboard.cell(order_id, "amount")).to_have_text("1.5 SOL")

    # The detail: every venue's quote, the chosen one marked with its margin, the transaction.
    detail = page.locator("#detail")
    expect(detail.locator(".order-id")).to_have_text(order_id)
    quotes = detail.locator("table.quotes tbody tr")
    expect(quotes).to_have_count(len(order["quotes"]))
    chosen = detail.locator("table.quotes tr.chosen")
    expect(chosen).to_have_attribute("data-venue", order["venue"])
    expect(chosen).to_contain_text(re.compile(r"chosen [+-]\d+\.\d\d % over \w+"))
    expect(detail.locator('[data-fact="minAmountOut"] dd')).to_have_text(f"{order['minAmountOut']} USDC")
    expect(detail.locator('[data-fact="amountOut"] dd')).to_have_text(f"{order['amountOut']} USDC")
    expect(detail.locator('[data-fact="signature"] dd')).to_have_text(order["signature"])
    expect(detail.locator('[data-fact="executedPrice"] dd')).to_contain_text("USDC per SOL")
    timeline = detail.locator(".timeline .t-status")
    expect(timeline).to_have_text(["pending", "routing", "building", "submitted", "confirmed"])

    # Counts by status and the last minute's throughput (this key's only order).
    expect(page.locator('.count[data-status="confirmed"] .n')).to_have_text("1")
    expect(page.locator("#throughput")).to_have_text("1")
    # A reload keeps the key and lists the order again, from GET /api/orders.
    page.reload()
    expect(page.locator("#key-dialog")).to_be_hidden()
    expect(dashboard.cell(order_id, "status")).to_have_text("confirmed", timeout=SETTLE_MS)


def test_a_bad_amount_shows_the_apis_message_beside_the_amount_field(dashboard: Dashboard) -> None:
    page = dashboard.open()
    page.fill("#amount", "abc")
    page.click("#submit-button")
    # What the API itself says about this body, asked directly.
    answer = dashboard.http.post("/api/orders/execute", json={
        "type": "market", "tokenIn": "SOL", "tokenOut": "USDC", "amount": "abc", "slippageBps": 50})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["field"] == "amount"
    expect(page.locator("#amount-error")).to_have_text(error["message"])
    expect(page.locator("#amount")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#submit-status")).to_have_attribute("data-state", "error")
    expect(page.locator("#order-rows tr")).to_have_count(0)
    dashboard.screenshot("dashboard-field-error.png", locator=page.locator("section.submit"))

    # Fixing the field clears the message.
    dashboard.submit(amount="0.25")
    expect(page.locator("#amount-error")).to_be_empty()
    expect(page.locator("#amount")).to_have_attribute("aria-invalid", "false")


def test_after_a_dropped_socket_the_page_reconnects_and_shows_the_statuses_it_missed(
        dashboard: Dashboard) -> None:
    page = dashboard.page
    sent: list[dict[str, Any]] = []
    sockets: list[Any] = []
    dropping = {"on": False}

    def route(ws: Any) -> None:
        """Every socket of the page passes through here; the first one stops delivering on demand."""
        server = ws.connect_to_server()
        first = not sockets
        sockets.append((ws, server))

        def from_page(message: str | bytes) -> None:
            sent.append(json.loads(message))
            server.send(message)

        def from_server(message: str | bytes) -> None:
            if first and dropping["on"]:
                return
            ws.send(message)

        ws.on_message(from_page)
        server.on_message(from_server)

    page.route_web_socket(re.compile(r"^wss?://"), route)
    dashboard.open()
    conn = page.locator("#conn")
    expect(conn).to_have_attribute("data-connections", "1")

    dropping["on"] = True  # from here on, nothing the server sends on this socket reaches the page
    order_id = dashboard.submit(amount="1.25", slippageBps="100")
    final = dashboard.wait_terminal(order_id)
    assert final["status"] == "confirmed"
    # The page knows only what POST told it.
    expect(dashboard.cell(order_id, "status")).to_have_text("pending")

    # The socket drops (as API Gateway drops idle ones): the page reconnects and catches up.
    ws, server = sockets[0]
    ws.close(code=1001, reason="going away")
    server.close()
    expect(conn).to_have_attribute("data-connections", "2", timeout=SETTLE_MS)
    expect(conn).to_have_attribute("data-state", "live")
    expect(dashboard.cell(order_id, "status")).to_have_text("confirmed", timeout=SETTLE_MS)
    expect(dashboard.cell(order_id, "out")).to_have_text(f"{final['amountOut']} USDC")
    expect(page.locator("#detail .timeline .t-status")).to_have_text(
        ["pending", "routing", "building", "submitted", "confirmed"])
    resubscribe = [m for m in sent if m.get("action") == "subscribe" and m.get("orderId") == order_id]
    assert resubscribe[-1] == {"action": "subscribe", "orderId": order_id, "afterSeq": 1}, resubscribe
    dashboard.screenshot("dashboard-reconnected.png")


def test_a_status_seen_twice_is_shown_once(dashboard: Dashboard) -> None:
    page = dashboard.page
    doubled: list[str] = []

    def route(ws: Any) -> None:
        server = ws.connect_to_server()

        def from_server(message: str | bytes) -> None:
            ws.send(message)
            if json.loads(message).get("type") == "order.status":
                ws.send(message)  # as after a fault: the same seq again
                doubled.append(str(message))

        server.on_message(from_server)

    page.route_web_socket(re.compile(r"^wss?://"), route)
    dashboard.open()
    order_id = dashboard.submit(amount="0.5")
    expect(dashboard.cell(order_id, "status")).to_have_text("confirmed", timeout=SETTLE_MS)
    assert doubled
    expect(page.locator("#detail .timeline .t-status")).to_have_text(
        ["pending", "routing", "building", "submitted", "confirmed"])
    expect(page.locator('.count[data-status="confirmed"] .n')).to_have_text("1")


def test_phone_width_stacks_every_panel_without_overlap(new_dashboard: Any) -> None:
    dashboard = new_dashboard(PHONE)
    page = dashboard.open()
    order_id = dashboard.submit(amount="0.8")
    expect(dashboard.cell(order_id, "status")).to_have_text("confirmed", timeout=SETTLE_MS)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    boxes = [page.locator(sel).bounding_box() for sel in
             ("section.stats", "section.submit", "section.orders", "section.detail", "section.markets")]
    assert all(boxes)
    for above, below in itertools.pairwise(boxes):
        assert above is not None and below is not None
        assert above["y"] + above["height"] <= below["y"], (above, below)
        assert below["x"] >= 0 and below["x"] + below["width"] <= PHONE["width"]
    # Keyboard: every control has a label, and Tab reaches the submit button.
    unlabeled = page.evaluate("""() => [...document.querySelectorAll('input, select, button')]
        .filter(el => el.offsetParent !== null && !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                && !el.textContent.trim())
        .map(el => el.outerHTML)""")
    assert unlabeled == []
    page.locator("#amount").focus()
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "submit-button":
            break
    assert page.evaluate("document.activeElement.id") == "submit-button"


def test_a_limit_order_waits_at_its_level_and_can_be_cancelled(dashboard: Dashboard) -> None:
    page = dashboard.open()
    page.locator("label[for=type-limit]").click()
    expect(page.locator("#limitPrice")).to_be_visible()
    # Far above the market (SOL trades near 150 USDC): it can only wait.
    order_id = dashboard.submit(amount="1", limitPrice="1000", slippageBps="50")
    expect(dashboard.cell(order_id, "status")).to_have_text(
        re.compile("^(waiting|confirmed|failed|cancelled|expired)$"), timeout=SETTLE_MS)
    expect(dashboard.cell(order_id, "status")).to_have_text("waiting")
    expect(dashboard.cell(order_id, "pair")).to_contain_text("limit ≥ 1000 USDC/SOL")
    expect(page.locator(".price-chart .level")).to_have_count(1, timeout=SETTLE_MS)
    dashboard.screenshot("dashboard-limit-waiting.png")

    dashboard.cell(order_id, "actions").get_by_role("button", name=re.compile("Cancel")).click()
    expect(dashboard.cell(order_id, "status")).to_have_text("cancelled", timeout=SETTLE_MS)
    expect(dashboard.cell(order_id, "actions").get_by_role("button")).to_have_count(0)
    assert dashboard.order(order_id)["status"] == "cancelled"
    expect(page.locator(".price-chart .level")).to_have_count(0)


def test_a_launch_followed_by_a_sniper_order_fills(dashboard: Dashboard) -> None:
    page = dashboard.open()
    page.click("#launch-toggle")  # next to the prices, on local and dev stages
    expect(page.locator("#launch-form")).to_be_visible()
    page.fill("#launch-symbol", "SNIPE")
    page.fill("#launch-open", "10")
    page.click("#launch-button")
    result = page.locator("#launch-result")
    expect(result).to_have_attribute("data-state", re.compile("^(ok|error)$"), timeout=SETTLE_MS)
    assert result.get_attribute("data-state") == "ok", result.inner_text()
    mint = result.get_attribute("data-mint")
    assert mint

    page.click("#snipe-button")
    expect(page.locator("#type-sniper")).to_be_checked()
    expect(page.locator("#tokenOut")).to_have_value(mint)
    order_id = dashboard.submit(amount="0.5", maxPrice="1", slippageBps="500")
    expect(dashboard.cell(order_id, "pair")).to_contain_text("watching")
    expect(dashboard.cell(order_id, "status")).to_have_text("confirmed", timeout=SETTLE_MS * 2)
    order = dashboard.order(order_id)
    expect(dashboard.cell(order_id, "out")).to_have_text(re.compile(re.escape(order["amountOut"])))
    dashboard.screenshot("dashboard-sniper-filled.png")
