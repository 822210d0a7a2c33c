"""Browser tier: the dashboard (``GET /``) in a real Chromium driven by Playwright, against the
whole local stack started in process on random free ports.

Chromium is Debian's (``apt-get install chromium``), started through ``executable_path``; the
tier never downloads a browser. Where Playwright or Chromium is missing every test here is
skipped with one line saying which. Screenshots go to ``build/screenshots`` (``SCREENSHOTS_DIR``
moves them; ``make screenshots`` writes the ones the README shows, under ``docs/screenshots``).
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from devstack.stack import DevStack

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # the tier is skipped (see _unavailable below); nothing here runs
    expect = sync_playwright = None

REPO = Path(__file__).resolve().parents[2]
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--no-first-run", "--disable-sync"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
TERMINAL = ("confirmed", "failed", "cancelled", "expired")
# Deadlines: generous, the machine may be busy; the tests wait on conditions, never on time.
SETTLE_MS = 60_000

RUN = uuid.uuid4().hex[:8]
KEYS = [f"browser-{RUN}-{i}" for i in range(16)]
CLIENTS = [f"browser-client-{RUN}-{i}" for i in range(16)]
FAST_STACK_ENV = {
    "API_KEYS": ",".join(f"{k}:{c}" for k, c in zip(KEYS, CLIENTS, strict=True)),
    "QUOTE_LATENCY_MS": "0,5",
    "QUOTE_TIMEOUT_MS": "30000",  # no venue left out for being slow on a loaded machine
    "SWAP_LATENCY_MS": "50,150",
    "CONFIRM_POLL_MS": "20",
    "RATE_LIMIT_PER_MIN": "10000",
    "REDIS_PREFIX": f"test-browser-{RUN}",
}


def chromium_path() -> str | None:
    """``CHROMIUM`` when set (and only it), else Debian's, else one on PATH."""
    explicit = os.environ.get("CHROMIUM")
    candidates = [explicit] if explicit else ["/usr/bin/chromium", shutil.which("chromium")]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def screenshots_dir() -> Path:
    path = Path(os.environ.get("SCREENSHOTS_DIR") or REPO / "build" / "screenshots")
    path = path if path.is_absolute() else REPO / path
    path.mkdir(parents=True, exist_ok=True)
    return path


def _unavailable() -> str | None:
    """Why the tier cannot run here, or None."""
    if sync_playwright is None:
        return "Playwright is not installed (pip install -e '.[dev]')"
    if chromium_path() is None:
        where = os.environ.get("CHROMIUM") or "/usr/bin/chromium"
        return f"no Chromium at {where} (apt-get install chromium)"
    return None


UNAVAILABLE = _unavailable()
_HERE = Path(__file__).resolve().parent


def _in_tier(item: pytest.Item) -> bool:
    return Path(str(item.path)).resolve().is_relative_to(_HERE)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if UNAVAILABLE is None:
        return
    for item in items:
        if _in_tier(item):
            item.add_marker(pytest.mark.skip(reason=f"browser tier skipped: {UNAVAILABLE}"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    """Every skipped test of the tier reports from one place, so the summary has one line for it."""
    outcome: Any = yield
    report = outcome.get_result()
    if UNAVAILABLE is not None and report.skipped and isinstance(report.longrepr, tuple) and _in_tier(item):
        report.longrepr = (str(Path(__file__).relative_to(REPO)), None, f"Skipped: browser tier skipped: {UNAVAILABLE}")


# Package-scoped: Playwright's sync API keeps an event loop running in this thread while it is open,
# and every asyncio.run() of the tiers that run after this one would fail on it.
@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    executable = chromium_path()
    assert sync_playwright is not None and executable is not None
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=executable, args=LAUNCH_ARGS)
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def stack_env() -> dict[str, str]:
    return FAST_STACK_ENV


@pytest.fixture(scope="module")
def stack(browser: Browser, stack_env: dict[str, str], redis_client: Any) -> Iterator[DevStack]:
    with DevStack(rest_port=0, ws_port=0, env=stack_env) as s:
        yield s
    _forget_redis_keys(redis_client, stack_env)


def _forget_redis_keys(redis_client: Any, env: dict[str, str]) -> None:
    """What the stack wrote for these tests' clients (under the prefix, or keyed by client id)."""
    try:
        redis_client.ping()
    except Exception:
        return
    patterns = [f"{env['REDIS_PREFIX']}:*", *(f"*:{c}" for c in CLIENTS), *(f"*:{c}:*" for c in CLIENTS)]
    for pattern in patterns:
        keys = list(redis_client.scan_iter(match=pattern, count=500))
        if keys:
            redis_client.delete(*keys)


_key_counter = itertools.count()


class Dashboard:
    """The page, with what the tests do on it; each test has its own API key, so its own orders."""

    def __init__(self, page: Page, stack: DevStack, key: str) -> None:
        self.page = page
        self.rest = stack.urls["rest"]
        self.key = key
        self.http = httpx.Client(base_url=self.rest, headers={"x-api-key": key}, timeout=30)
        self.errors: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def open(self, *, remember_key: bool = True) -> Page:
        if remember_key:
            self.page.add_init_script(f"localStorage.setItem('order-engine.apiKey', {self.key!r})")
        self.page.goto(f"{self.rest}/")
        if remember_key:
            expect(self.page.locator("#conn")).to_have_attribute("data-state", "live", timeout=SETTLE_MS)
        return self.page

    def submit(self, **fields: str) -> str:
        """Fill the order form (input id → value), submit, return the order id the page shows."""
        page = self.page
        for name, value in fields.items():
            page.fill(f"#{name}", value)
        page.click("#submit-button")
        status = page.locator("#submit-status")
        expect(status).to_have_attribute("data-state", re.compile("^(ok|error)$"), timeout=SETTLE_MS)
        if status.get_attribute("data-state") != "ok":
            beside = [t for t in page.locator("#order-form [data-error-for]").all_inner_texts() if t.strip()]
            raise AssertionError(f"the order was refused: {status.inner_text()} {beside}")
        order_id = status.get_attribute("data-order-id")
        assert order_id and order_id.startswith("ord_")
        return order_id

    def row(self, order_id: str) -> Locator:
        return self.page.locator(f'#order-rows tr[data-order-id="{order_id}"]')

    def cell(self, order_id: str, column: str) -> Locator:
        return self.row(order_id).locator(f'td[data-col="{column}"]')

    def order(self, order_id: str) -> dict[str, Any]:
        resp = self.http.get(f"/api/orders/{order_id}")
        assert resp.status_code == 200, resp.text
        data: dict[str, Any] = resp.json()
        return data

    def wait_terminal(self, order_id: str, timeout: float = SETTLE_MS / 1000) -> dict[str, Any]:
        """Polls the order over REST (the page is not asked) until it has finished."""
        deadline = time.monotonic() + timeout
        order = self.order(order_id)
        while order["status"] not in TERMINAL:
            assert time.monotonic() < deadline, f"{order_id} still {order['status']}"
            time.sleep(0.1)
            order = self.order(order_id)
        return order

    def screenshot(self, name: str, *, full_page: bool = False, locator: Locator | None = None) -> Path:
        path = screenshots_dir() / name
        # The caret and the live step bars pulse: stop animations for a stable picture.
        if locator is not None:
            locator.screenshot(path=str(path), animations="disabled", caret="hide")
        else:
            self.page.screenshot(path=str(path), full_page=full_page, animations="disabled", caret="hide")
        return path

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def new_dashboard(browser: Browser, stack: DevStack) -> Iterator[Callable[..., Dashboard]]:
    made: list[tuple[Any, Dashboard]] = []

    def make(viewport: dict[str, int] | None = None) -> Dashboard:
        context = browser.new_context(viewport=viewport or DESKTOP)
        context.set_default_timeout(SETTLE_MS)
        board = Dashboard(context.new_page(), stack, KEYS[next(_key_counter) % len(KEYS)])
        made.append((context, board))
        return board

    yield make
    for context, board in made:
        board.close()
        context.close()
    for _, board in made:
        assert not board.errors, f"uncaught errors in the page: {board.errors}"


@pytest.fixture
def dashboard(new_dashboard: Callable[..., Dashboard]) -> Dashboard:
    return new_dashboard()
