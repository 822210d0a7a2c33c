"""Orders in flight with realistic swap times (2.5–4 s): orders from the form and from another
client of the same key share the table and advance live; a failure shows its reason. The
pictures of these states are the ones the README shows (``make screenshots``)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from .conftest import DESKTOP, FAST_STACK_ENV, PHONE, SETTLE_MS, TERMINAL, Dashboard, expect

FINISHED = re.compile(f"^({'|'.join(TERMINAL)})$")


@pytest.fixture(scope="module")
def stack_env() -> dict[str, str]:
    return {**FAST_STACK_ENV, "QUOTE_LATENCY_MS": "20,80", "SWAP_LATENCY_MS": "2500,4000", "CONFIRM_POLL_MS": "100"}


def test_orders_in_flight_from_the_form_and_elsewhere_at_desktop_and_phone_width(
        new_dashboard: Callable[..., Dashboard]) -> None:
    dashboard = new_dashboard(DESKTOP)
    page = dashboard.open()
    # Some price history first, so the chart has lines to show.
    page.wait_for_function(
        "() => [...document.querySelectorAll('.price-chart path.series')]"
        ".filter(p => p.getAttribute('d').split('L').length >= 10).length >= 2",
        timeout=SETTLE_MS)

    # Another client with the same key (a script, the CLI): the page finds its orders.
    elsewhere = []
    for body in ({"tokenIn": "USDC", "tokenOut": "SOL", "amount": "250"},
                 {"tokenIn": "SOL", "tokenOut": "USDT", "amount": "3"},
                 {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1000000"}):  # more than any pool holds
        resp = dashboard.http.post("/api/orders/execute", json={**body, "slippageBps": 100})
        assert resp.status_code == 202, resp.text
        elsewhere.append(resp.json()["orderId"])
    for order_id in elsewhere:
        expect(dashboard.row(order_id)).to_be_visible(timeout=SETTLE_MS)

    mine = [dashboard.submit(amount=amount, slippageBps="100") for amount in ("2", "0.75", "4.2")]
    expect(dashboard.cell(mine[-1], "status")).to_have_text("submitted", timeout=SETTLE_MS)
    dashboard.row(mine[-1]).locator("button[data-action=select]").click()
    expect(page.locator("#detail .order-id")).to_have_text(mine[-1])
    page.evaluate("window.scrollTo(0, 0)")
    dashboard.screenshot("dashboard.png")

    for order_id in elsewhere + mine:
        expect(dashboard.cell(order_id, "status")).to_have_text(FINISHED, timeout=SETTLE_MS)
    failed = dashboard.order(elsewhere[-1])
    assert failed["status"] == "failed"
    expect(dashboard.cell(elsewhere[-1], "status")).to_have_text("failed")
    expect(dashboard.cell(elsewhere[-1], "out")).to_have_text(failed["error"]["code"])
    for order_id in elsewhere[:2] + mine:
        expect(dashboard.cell(order_id, "status")).to_have_text("confirmed")
    expect(page.locator('.count[data-status="confirmed"] .n')).to_have_text("5")
    expect(page.locator('.count[data-status="failed"] .n')).to_have_text("1")
    dashboard.screenshot("dashboard-detail.png", locator=page.locator("#detail"))

    dashboard.row(elsewhere[-1]).locator("button[data-action=select]").click()
    expect(page.locator("#detail .error-box")).to_contain_text(failed["error"]["message"])
    dashboard.screenshot("dashboard-failed.png", locator=page.locator("#detail"))

    page.set_viewport_size(PHONE)
    page.evaluate("window.scrollTo(0, 0)")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    dashboard.screenshot("dashboard-phone.png")
    page.locator("#orders").scroll_into_view_if_needed()
    dashboard.screenshot("dashboard-phone-orders.png")
