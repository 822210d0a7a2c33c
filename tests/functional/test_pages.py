"""The dashboard's routes (``GET /`` and ``/static/{name}``): no key, the right headers, only the
files of ``chalicelib/web``, and every file the page loads is one the app serves."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.api.pages import WEB_DIR
from chalicelib.config import get_settings


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from chalice.test import Client

    from app import app

    monkeypatch.setenv("WS_PUBLIC_URL", "wss://abc123.execute-api.us-east-1.amazonaws.com/dev")
    monkeypatch.setenv("STAGE", "dev")
    get_settings.cache_clear()
    with Client(app) as c:
        yield c
    get_settings.cache_clear()


def test_the_page_needs_no_key_and_names_the_websocket_api_and_stage(client: Any) -> None:
    resp = client.http.get("/")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
    assert resp.headers["Cache-Control"] == "no-cache"
    page = resp.body.decode()
    assert '<meta name="order-engine:ws-url" content="wss://abc123.execute-api.us-east-1.amazonaws.com/dev">' in page
    assert '<meta name="order-engine:stage" content="dev">' in page
    assert "{{" not in page


def test_the_policy_allows_this_origin_and_the_websocket_api_only(client: Any) -> None:
    policy = client.http.get("/").headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'none'"
    for name in ("script-src", "style-src", "img-src"):
        assert directives[name] == "'self'"
    assert directives["connect-src"] == "'self' wss://abc123.execute-api.us-east-1.amazonaws.com"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in policy


@pytest.mark.parametrize(("name", "content_type"), [
    ("app.js", "text/javascript; charset=utf-8"),
    ("style.css", "text/css; charset=utf-8"),
    ("icon.svg", "image/svg+xml; charset=utf-8"),
])
def test_assets_are_served_with_their_type_and_revalidated(client: Any, name: str, content_type: str) -> None:
    resp = client.http.get(f"/static/{name}")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == content_type
    assert resp.headers["Cache-Control"] == "no-cache"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.body.decode() == (WEB_DIR / name).read_text(encoding="utf-8")
    again = client.http.get(f"/static/{name}", headers={"If-None-Match": resp.headers["ETag"]})
    assert again.status_code == 304
    assert again.body in (b"", "")


@pytest.mark.parametrize("name", ["nope.js", "index.html", "app.py", "..", "%2e%2e%2fapp.py"])
def test_anything_else_is_a_404_in_the_contracts_shape(client: Any, name: str) -> None:
    resp = client.http.get(f"/static/{name}")
    assert resp.status_code == 404
    assert json.loads(resp.body)["error"]["code"] == "not_found"


def test_every_file_the_page_loads_is_served(client: Any) -> None:
    page = client.http.get("/").body.decode()
    wanted = set(re.findall(r'(?:src|href)="static/([^"]+)"', page))
    for module in WEB_DIR.glob("*.js"):
        wanted |= set(re.findall(r'from "\./([^"]+)"', module.read_text(encoding="utf-8")))
    assert {"app.js", "style.css", "icon.svg", "api.js", "live.js"} <= wanted
    for name in wanted:
        assert client.http.get(f"/static/{name}").status_code == 200, name
