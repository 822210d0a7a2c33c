"""Where the project is and its Chalice config: what the supervisor needs before it starts any
part, kept apart from the servers' modules so that finding them imports no server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chalice.config import Config

__all__ = ["REPO_ROOT", "chalice_config", "first_api_key", "project_dir"]

REPO_ROOT = Path(__file__).resolve().parent.parent


def project_dir(given: str | Path | None) -> Path:
    """``given``; else the working directory when it holds a Chalice app; else this checkout."""
    if given is not None:
        return Path(given).resolve()
    cwd = Path.cwd()
    if (cwd / "app.py").is_file() and (cwd / ".chalice" / "config.json").is_file():
        return cwd
    return REPO_ROOT


def chalice_config(app: Any, stage: str, project_dir: str | Path | None = None,
                   function_name: str = "api_handler") -> Config:
    """Chalice's config for ``stage``, read from ``{project_dir}/.chalice/config.json`` when present."""
    from_disk: dict[str, Any] = {}
    if project_dir is not None:
        path = Path(project_dir) / ".chalice" / "config.json"
        if path.is_file():
            from_disk = json.loads(path.read_text(encoding="utf-8"))
    params: dict[str, Any] = {"chalice_app": app, "app_name": getattr(app, "app_name", "app")}
    if project_dir is not None:
        params["project_dir"] = str(project_dir)
    return Config(chalice_stage=stage, function_name=function_name, user_provided_params=params,
                  config_from_disk=from_disk)


def first_api_key(raw: str | None) -> str:
    """The first key of an ``API_KEYS`` value (``key:clientId,…``), the app's default when unset."""
    from chalicelib.config import DEFAULT_API_KEYS, parse_api_keys

    return next(iter(parse_api_keys(raw or DEFAULT_API_KEYS)))
