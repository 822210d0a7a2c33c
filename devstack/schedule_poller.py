"""EventBridge schedules, locally: runs every ``@app.schedule`` handler of ``app.event_sources``
with an event shaped like EventBridge's "Scheduled Event", at the declared rate or at one a
setting shortens.

As EventBridge does:

- each schedule fires once per period, the first time one period after it is created; a
  ``rate(…)`` expression (or Chalice's ``Rate``) gives the period;
- the event is EventBridge's: ``detail-type`` "Scheduled Event", ``source`` "aws.events", the
  rule's ARN in ``resources``, the firing time in ``time``, an empty ``detail``;
- the handler is the Chalice-wrapped entry point, invoked asynchronously: its failure is logged
  (Lambda would retry an asynchronous invocation twice; a schedule fires again anyway).

Unlike EventBridge, two firings of one schedule never overlap here: one that is still running
when the next is due delays it (logged). A ``cron(…)`` expression runs only at an override rate.

Rates: ``rates`` maps a handler's name to seconds (``MARKET_TICK_SECONDS`` style settings,
see ``rates_from_env``), and ``at_most`` caps every schedule's period (``SCHEDULE_SECONDS``).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .emulator import ACCOUNT_ID
from .event_sources import EventSourcePoller

__all__ = ["SchedulePoller", "period_seconds", "rates_from_env", "scheduled_event"]

log = logging.getLogger("devstack.schedules")

_UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86_400, "days": 86_400}
_RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")
GLOBAL_SETTING = "SCHEDULE_SECONDS"


def period_seconds(expression: Any) -> float | None:
    """A schedule expression's period in seconds: Chalice's ``Rate``, or ``rate(N unit)``;
    ``None`` for a ``cron(…)`` (no fixed period)."""
    text = expression.to_string() if hasattr(expression, "to_string") else str(expression)
    match = _RATE.match(text.strip())
    if match is None:
        return None
    return float(int(match.group(1)) * _UNITS[match.group(2)])


def rates_from_env(function_names: list[str], env: Mapping[str, str]) -> tuple[dict[str, float], float | None]:
    """Per handler ``<NAME>_SECONDS`` (``market_tick`` → ``MARKET_TICK_SECONDS``), and the cap
    ``SCHEDULE_SECONDS`` on every schedule."""
    rates = {name: float(env[f"{name.upper()}_SECONDS"]) for name in function_names
             if env.get(f"{name.upper()}_SECONDS")}
    cap = env.get(GLOBAL_SETTING)
    return rates, (float(cap) if cap else None)


def scheduled_event(rule_arn: str, region: str, at: datetime | None = None) -> dict[str, Any]:
    """The event EventBridge sends a schedule's target."""
    when = (at or datetime.now(UTC)).astimezone(UTC)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }


@dataclass(frozen=True)
class _Schedule:
    name: str
    rule_arn: str
    period: float


class SchedulePoller(EventSourcePoller):
    """Fires each scheduled handler of a Chalice app at its period until ``stop()``."""

    thread_prefix = "devstack-schedule"
    log = log

    def __init__(self, app: Any, *, region: str = "us-east-1", stage: str = "local",
                 rates: Mapping[str, float] | None = None, at_most: float | None = None,
                 function_timeouts: Mapping[str, float] | None = None,
                 function_memory: Mapping[str, int] | None = None) -> None:
        super().__init__(app, region=region, stage=stage, function_timeouts=function_timeouts,
                         function_memory=function_memory)
        self._rates = dict(rates or {})
        self._at_most = at_most
        self._schedules: list[_Schedule] = []
        self.fired: dict[str, int] = {}

    @property
    def schedules(self) -> dict[str, float]:
        """Handler name → the period it runs at, in seconds."""
        return {s.name: s.period for s in self._schedules}

    def _start(self) -> None:
        from chalice.app import ScheduledEventConfig

        self._schedules = []
        for config in self.app.event_sources:
            if not isinstance(config, ScheduledEventConfig):
                continue
            period = self._rates.get(config.name, period_seconds(config.schedule_expression))
            if self._at_most is not None:
                period = min(period, self._at_most) if period is not None else self._at_most
            if period is None or period <= 0:
                log.warning("schedule %s (%s) has no rate to run at here; set %s_SECONDS", config.name,
                            config.schedule_expression, config.name.upper())
                continue
            rule = f"arn:aws:events:{self._region}:{ACCOUNT_ID}:rule/{self.app.app_name}-{self._stage}-{config.name}"
            self._schedules.append(_Schedule(config.name, rule, period))
        for schedule in self._schedules:
            self.fired[schedule.name] = 0
            self._spawn(schedule.name, self._run, schedule)
            log.info("running %s every %g s", schedule.name, schedule.period)

    def _run(self, schedule: _Schedule) -> None:
        due = time.monotonic() + schedule.period
        while not self._sleep(max(0.0, due - time.monotonic())):
            invocation = self.invoke(schedule.name, scheduled_event(schedule.rule_arn, self._region))
            self.fired[schedule.name] += 1
            if invocation.error is not None:
                log.error("%s failed", schedule.name, exc_info=invocation.error)
            elif invocation.timed_out:
                log.warning("%s ran %.1f s, past its %g s timeout", schedule.name, invocation.elapsed,
                            invocation.timeout)
            due += schedule.period
            late = time.monotonic() - due
            if late > 0:
                log.warning("%s ran longer than its %g s period; the next firing is %.1f s late", schedule.name,
                            schedule.period, late)
                due = time.monotonic()
