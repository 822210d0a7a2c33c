"""The schedule poller runs a Chalice app's ``@app.schedule`` handlers as EventBridge does."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from chalice import Chalice, Cron, Rate

from devstack.schedule_poller import SchedulePoller, period_seconds, rates_from_env

from .conftest import devstack_threads, threads_since, wait_until, wait_until_ended


def make_app(seen: dict[str, list[Any]], fail: bool = False) -> Chalice:
    app = Chalice(app_name="fake-schedules", configure_logs=False, env={})
    lock = threading.Lock()

    @app.schedule(Rate(1, unit=Rate.MINUTES))
    def every_minute(event: Any) -> None:
        with lock:
            seen.setdefault("every_minute", []).append((event.to_dict(), event.context))
        if fail:
            raise RuntimeError("a failing schedule")

    @app.schedule("rate(2 hours)")
    def every_two_hours(event: Any) -> None:
        with lock:
            seen.setdefault("every_two_hours", []).append((event.to_dict(), event.context))

    @app.schedule(Cron(0, 12, "*", "*", "?", "*"))
    def at_noon(event: Any) -> None:
        with lock:
            seen.setdefault("at_noon", []).append((event.to_dict(), event.context))

    return app


def test_periods_come_from_the_expression() -> None:
    assert period_seconds(Rate(1, unit=Rate.MINUTES)) == 60
    assert period_seconds(Rate(3, unit=Rate.HOURS)) == 3 * 3600
    assert period_seconds("rate(2 days)") == 2 * 86_400
    assert period_seconds("cron(0 12 * * ? *)") is None


def test_settings_name_the_handler_or_cap_every_schedule() -> None:
    env = {"EVERY_MINUTE_SECONDS": "0.5", "SCHEDULE_SECONDS": "3", "OTHER_SECONDS": "9"}
    assert rates_from_env(["every_minute", "at_noon"], env) == ({"every_minute": 0.5}, 3.0)
    assert rates_from_env(["every_minute"], {}) == ({}, None)


def test_each_schedule_fires_at_its_shortened_rate_with_an_eventbridge_event() -> None:
    seen: dict[str, list[Any]] = {}
    before = set(threading.enumerate())
    poller = SchedulePoller(make_app(seen), region="eu-west-1", stage="local", rates={"every_minute": 0.05},
                            function_timeouts={"every_minute": 7})
    with poller:
        # the cron has no rate of its own and none was given: it does not run here
        assert poller.schedules == {"every_minute": 0.05, "every_two_hours": 7200.0}
        wait_until(lambda: len(seen.get("every_minute", [])) >= 3)
        assert "every_two_hours" not in seen  # at its declared rate: not within a test
    wait_until_ended(threads_since(before))
    assert not devstack_threads() & threads_since(before)
    event, context = seen["every_minute"][0]
    assert event["detail-type"] == "Scheduled Event" and event["source"] == "aws.events"
    assert event["detail"] == {} and event["region"] == "eu-west-1" and event["account"] == "123456789012"
    assert event["resources"] == ["arn:aws:events:eu-west-1:123456789012:rule/fake-schedules-local-every_minute"]
    assert event["time"].endswith("Z")
    assert len({e["id"] for e, _ in seen["every_minute"]}) == len(seen["every_minute"])
    assert context.function_name == "fake-schedules-local-every_minute"
    assert context.get_remaining_time_in_millis() <= 7000


def test_a_cap_runs_every_schedule_at_most_that_far_apart_crons_included() -> None:
    seen: dict[str, list[Any]] = {}
    with SchedulePoller(make_app(seen), at_most=0.05) as poller:
        assert poller.schedules == {"every_minute": 0.05, "every_two_hours": 0.05, "at_noon": 0.05}
        wait_until(lambda: all(len(seen.get(name, [])) >= 2 for name in poller.schedules))


def test_a_failing_schedule_is_logged_and_fires_again(caplog: pytest.LogCaptureFixture) -> None:
    seen: dict[str, list[Any]] = {}
    with SchedulePoller(make_app(seen, fail=True), rates={"every_minute": 0.05}):
        wait_until(lambda: len(seen.get("every_minute", [])) >= 2)
    assert any("every_minute failed" in r.getMessage() for r in caplog.records)


def test_stop_ends_a_poller_whose_schedules_are_far_off() -> None:
    before = set(threading.enumerate())
    poller = SchedulePoller(make_app({}))
    poller.start()
    poller.stop()
    wait_until_ended(threads_since(before))
