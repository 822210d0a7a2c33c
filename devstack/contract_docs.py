"""Writes the contract documents under ``docs/`` from the code: ``python -m devstack.contract_docs``
(``make docs``). Tests fail when a committed copy differs from what this would write."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def render_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def openapi_text() -> str:
    from chalicelib.api.openapi import document

    return render_json(document())


def postman_collection_text() -> str:
    from chalicelib.api.openapi import document

    from .postman import collection

    return render_json(collection(document()))


def postman_environment_text() -> str:
    from .postman import environment

    return render_json(environment())


def asyncapi_text() -> str:
    import yaml

    from .asyncapi import document

    header = "# The WebSocket API (AsyncAPI 3.0). Written by `make docs` from the models; do not edit.\n"
    return header + yaml.safe_dump(document(), sort_keys=False, allow_unicode=True, width=110)


# file name under docs/ -> what it should hold
DOCUMENTS: dict[str, Callable[[], str]] = {
    "openapi.json": openapi_text,
    "asyncapi.yaml": asyncapi_text,
    "postman/order-engine.postman_collection.json": postman_collection_text,
    "postman/local.postman_environment.json": postman_environment_text,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write (or --check) the contract documents under docs/.")
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed document is out of date")
    args = parser.parse_args(argv)
    stale = []
    for name, render in DOCUMENTS.items():
        path = DOCS / name
        text = render()
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == text:
            continue
        if args.check:
            stale.append(name)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote docs/{name}")
    if stale:
        print("out of date (run `make docs`): " + ", ".join(f"docs/{n}" for n in stale))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
