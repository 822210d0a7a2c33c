"""API keys: who a presented key belongs to, compared in constant time.

Keys are held as SHA-256 digests, never as the strings themselves, and a lookup compares the
presented key's digest with every stored digest (``hmac.compare_digest``), so neither the
time taken nor an early exit tells how much of a key was right, or which key it was close to.
Keys come from ``API_KEYS`` or, where ``API_KEYS_PARAMETER`` names one, from an SSM
SecureString parameter read through Powertools Parameters (cached ``max_age`` seconds).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Callable, Mapping

from ..config import ConfigurationError, Settings, parse_api_keys
from ..logs import logger as log

__all__ = ["KeyRing", "KeySource", "KeysUnavailableError", "check_keys"]


class KeysUnavailableError(RuntimeError):
    """No key can be checked (none configured for this stage, or the key store cannot be read):
    every request is refused until that changes."""


def check_keys(settings: Settings) -> None:
    """For whatever starts the engine (the local stack): refuse at once with the reason."""
    problem = settings.key_problem()
    if problem:
        raise ConfigurationError(problem)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


class KeyRing:
    def __init__(self, keys: Mapping[str, str]) -> None:
        self._entries = [(_digest(key), client) for key, client in keys.items() if key]

    def __len__(self) -> int:
        return len(self._entries)

    def client_for(self, presented: str | None) -> str | None:
        """The client id the key belongs to, or None. Examines every entry whatever matches."""
        if not presented:
            return None
        digest = _digest(presented)
        found: str | None = None
        for stored, client in self._entries:
            if hmac.compare_digest(stored, digest):
                found = client
        return found


class KeySource:
    """The current key ring: from the settings, or from the parameter store when one is named.

    ``fetch(name, max_age)`` returns the parameter's decrypted value (cached by the caller's
    library); the ring is rebuilt only when that value changes.
    """

    def __init__(self, settings: Settings, fetch: Callable[[str, int], str] | None = None) -> None:
        problem = settings.key_problem()
        if problem:
            log.error("refusing every request: " + problem, extra={"stage": settings.stage})
        self._problem = problem
        self._settings = settings
        self._fetch = fetch
        self._lock = threading.Lock()
        self._raw: str | None = None
        self._ring = KeyRing(settings.api_keys)

    def ring(self) -> KeyRing:
        if self._problem:
            raise KeysUnavailableError(self._problem)
        name = self._settings.api_keys_parameter
        if not name:
            return self._ring
        if self._fetch is None:
            raise KeysUnavailableError("API_KEYS_PARAMETER is set but no parameter store is configured")
        try:
            raw = self._fetch(name, self._settings.api_keys_max_age_seconds)
        except Exception as exc:
            log.error("API keys could not be read; refusing requests",
                      extra={"parameter": name, "error": type(exc).__name__})
            raise KeysUnavailableError(f"API keys parameter {name!r} could not be read") from exc
        with self._lock:
            if raw != self._raw:
                ring = KeyRing(parse_api_keys(raw))
                if not len(ring):
                    raise KeysUnavailableError(f"API keys parameter {name!r} holds no key")
                self._raw, self._ring = raw, ring
            return self._ring
