"""The local stack's state files (``devstack.state``): a snapshot is read whole or not at all, one
that cannot be used is set aside with one line, and the journal follows its snapshot or is not used."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devstack.state import FORMAT, Journal, Snapshotter, StateError, read_state, restore, write_state


def document(**body: Any) -> dict[str, Any]:
    return {"format": FORMAT, "version": 1, "part": "sqs", **body}


@pytest.mark.parametrize(("text", "reason"), [
    ('{"format": "order-engine-local-state", "version": 1, "part": "sq', "not a complete snapshot"),
    ("\x00\x01binary", "not a complete snapshot"),
    (json.dumps({"format": "something else"}), "not a sqs snapshot of this stack"),
    (json.dumps(document(part="dynamodb")), "not a sqs snapshot of this stack"),
    (json.dumps(document(version=2)), "snapshot version 2, this stack reads 1"),
])
def test_a_snapshot_that_cannot_be_read_is_set_aside_with_one_line_and_the_part_starts_empty(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, reason: str) -> None:
    path = tmp_path / "sqs.json"
    path.write_text(text)
    with pytest.raises(StateError, match=reason):
        read_state(path, "sqs")
    assert restore(path, "sqs", lambda d: pytest.fail("nothing to load")) is None
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith("state: ") and reason in line and line.endswith(f"(the file is kept as {path}.corrupt)")
    assert "this part starts empty" in line
    assert not path.exists() and (tmp_path / "sqs.json.corrupt").read_text() == text


def test_a_snapshot_whose_content_does_not_fit_is_set_aside_too(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "sqs.json"
    write_state(path, "sqs", {"queues": "none"})

    def load(saved: dict[str, Any]) -> str:
        return str(len(dict(saved["queues"])))

    assert restore(path, "sqs", load) is None
    assert "cannot be restored (ValueError" in capsys.readouterr().out
    assert (tmp_path / "sqs.json.corrupt").exists()


def test_no_snapshot_is_no_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert restore(tmp_path / "sqs.json", "sqs", lambda d: "x") is None
    assert capsys.readouterr().out == ""


def test_a_snapshot_is_saved_while_something_changed_and_once_more_on_stop(tmp_path: Path) -> None:
    changed, saved = [True], []

    def dump() -> dict[str, Any]:
        changed[0] = False
        return {"n": len(saved)}

    snapshots = Snapshotter(tmp_path / "sqs.json", "sqs", dump, lambda: changed[0], interval=0.01,
                            saved=saved.append)
    snapshots.start()
    snapshots.stop()
    assert saved == [{"n": 0}]  # once: nothing changed since
    changed[0] = True
    snapshots.save()
    again = read_state(tmp_path / "sqs.json", "sqs")
    assert again is not None and again["n"] == 1


def test_the_journal_keeps_the_writes_after_its_snapshot_and_drops_a_last_one_cut_short(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "dynamodb.journal")
    journal.start(0)
    for n in range(5):
        journal.append({"write": n})
    journal.trim(2)  # a snapshot holds the first two
    assert [e["seq"] for e in journal.after(2)] == [3, 4, 5]
    with open(journal.path, "a") as f:
        f.write('{"seq": 6, "wri')  # killed while writing: that write was never answered
    assert [e["write"] for e in journal.after(2)] == [2, 3, 4]
    journal.close()
    again = Journal(journal.path)
    again.start(5)
    again.append({"write": 5})
    assert [e["seq"] for e in again.after(2)] == [3, 4, 5, 6]
    again.close()


def test_a_journal_that_does_not_follow_its_snapshot_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dynamodb.journal"
    path.write_text("".join(json.dumps({"seq": n}) + "\n" for n in (4, 5)))
    with pytest.raises(StateError, match=r"do not follow the snapshot's \(write 2, then 4\)"):
        Journal(path).after(2)
    assert [e["seq"] for e in Journal(path).after(3)] == [4, 5]
    path.write_text('{"seq": 1}\nnot json\n{"seq": 3}\n')
    with pytest.raises(StateError, match="line 2 is not a journal entry"):
        Journal(path).after(0)


def test_a_trim_after_a_mark_keeps_exactly_the_writes_made_since(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "dynamodb.journal")
    journal.start(0)
    for n in range(3):
        journal.append({"write": n})
    assert journal.mark() == 3  # the snapshot's dump
    journal.append({"write": 3})  # while the snapshot is written
    journal.trim(3)  # it is on disk
    journal.append({"write": 4})
    assert [(e["seq"], e["write"]) for e in journal.after(3)] == [(4, 3), (5, 4)]
    journal.close()


def test_the_services_state_lives_outside_the_checkout_that_chalice_local_watches(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from devstack.state import default_state_dir, services_state_dir

    checkout = tmp_path / "checkout"
    checkout.mkdir()
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state-home"))
    kept = services_state_dir(checkout)
    assert checkout not in kept.parents  # a file changing there restarts no chalice local
    assert kept == services_state_dir(checkout)  # the same one at every start
    assert kept != services_state_dir(tmp_path / "other")  # one per checkout
    assert checkout in default_state_dir(checkout).parents  # make run's stays in the checkout


def test_services_on_other_ports_say_what_chalice_locals_stage_does_not_point_at(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from devstack.supervise import Supervisor

    monkeypatch.setenv("REDIS_PREFIX", "elsewhere")
    supervisor = Supervisor(with_rest=False)
    supervisor.urls = {"ws": "ws://127.0.0.1:8301", "aws": "http://127.0.0.1:8002", "sqs": "http://127.0.0.1:8003",
                       "redis": "redis://127.0.0.1:6379/0", "api_key": "local-dev-key"}
    warning = "\n".join(supervisor._stage_differences())
    assert "WS_PUBLIC_URL is ws://127.0.0.1:8301 here, ws://127.0.0.1:8001 in the stage" in warning
    assert "REDIS_PREFIX is elsewhere here, oe in the stage" in warning
    assert "AWS_ENDPOINT_URL " not in warning  # the ports that agree are not named
    monkeypatch.delenv("REDIS_PREFIX")
    supervisor.urls["ws"] = "ws://127.0.0.1:8001"
    assert supervisor._stage_differences() == []
