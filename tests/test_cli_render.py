"""What ``inspect`` prints for people (``cli/render.py``): a held run says why and what to do,
a migrated one where it went or came from, and a run still going claims no duration."""

from __future__ import annotations

import shlex
from typing import Any

from cronflow_actors.cli.main import build_parser
from cronflow_actors.cli.render import render_paused, render_run


def run(**fields: Any) -> dict[str, Any]:
    base = {"id": "r1", "workflow": "orders", "status": "completed", "created_at": 1_000.0}
    base.update(fields)
    return base


def test_a_blocked_run_says_why_and_what_to_do() -> None:
    why = "instance 'r1' is blocked: ...; migrate it to another version, or ..."
    shown = render_run(run(status="blocked", blocked=why))
    assert f"blocked: {why}" in shown
    assert "took" not in shown  # not over: it took nothing yet


def test_a_migrated_run_names_the_run_on_the_other_side() -> None:
    old = render_run(run(status="canceled", finished_at=1_010.0, migrated_to="r2"))
    assert "migrated to r2 (this run was canceled for it)" in old
    assert "took 10.0 s" in old
    assert "migrated from r1" in render_run(run(id="r2", migrated_from="r1"))


def test_a_run_whose_migration_is_pending_says_so_and_how_to_give_it_up() -> None:
    """``inspect`` of such a run read "migrated to r2", a run that does not exist (the
    verifier's h28 N3)."""
    pending = run(status="canceled", finished_at=1_010.0, migrated_to="r2", migration_pending=True)
    shown = render_run(pending)
    assert "migration to r2 pending: that run has not started" in shown
    assert "cancel this run to give the migration up" in shown
    assert "migrated to r2" not in shown
    # one a crash cut goes on by itself: a cancel would give up what would have finished
    # (chaos h33 F2)
    assert "if a crash cut it, the next start of a runtime carries it on" in shown


def test_a_run_whose_work_went_on_through_a_chain_names_where_it_is_now() -> None:
    chain = run(status="failed", finished_at=1_010.0, resumed_as="resume:a", current_run_id="c")
    shown = render_run(chain)
    assert "  resumed as resume:a" in shown.splitlines()  # (not "went on there": retest h33 F9)
    assert "its work now in c (through resumes or migrations)" in shown  # (newcomer h33 F4)
    one_hop = render_run(run(status="failed", resumed_as="resume:a", current_run_id="resume:a"))
    assert "its work now in" not in one_hop
    assert "resumed as resume:a (its work went on there)" in one_hop


def test_a_queued_run_is_queued_not_started() -> None:
    shown = render_run(run(status="waiting", steps=[]))
    assert "  queued " in shown
    assert "started" not in shown
    assert "took" not in shown


def test_a_failed_run_names_its_error_once_and_its_class_on_a_line_of_its_own() -> None:
    error = "step 'reserve': KeyError: 'sku'"
    shown = render_run(run(status="failed", error=error, error_type="builtins.KeyError"))
    assert f"  error: {error}\n" in shown  # was "error: builtins.KeyError: step 'reserve': ..."
    assert "  error type: builtins.KeyError" in shown


def test_a_step_waiting_for_an_event_says_which_and_how_to_publish_it() -> None:
    step = {"id": "await-payment", "kind": "event", "status": "waiting", "attempts": 1}
    shown = render_run(
        run(status="waiting", steps=[{**step, "event": "payment confirmed"}]),
        url_flag=" --url http://127.0.0.1:8731",
    )
    assert (
        "waits for the event 'payment confirmed' (cronflow-actors events publish "
        "'payment confirmed' --url http://127.0.0.1:8731)"
    ) in shown
    done = render_run(run(steps=[{**step, "status": "completed", "event": "paid"}]))
    assert "waits for" not in done


def test_a_run_an_api_caller_started_names_them() -> None:
    assert " ago) by ops-ada," in render_run(run(started_by="ops-ada"))
    assert " by " not in render_run(run())


def test_a_paused_run_shows_the_command_that_approves_it_to_paste_as_it_is() -> None:
    # it printed --payload '{"approved": true}', where `resume` now takes --approve (newcomer h23)
    pause = {"step": "ok", "token": "t-1", "paused_at": 1_000.0}
    shown = render_run(run(status="waiting"), pause, url_flag=" --url http://h:1")
    assert "approve it with (--reject: refuse it):" in shown
    line = shown.splitlines()[-1].strip()
    assert line == "cronflow-actors resume t-1 --approve --url http://h:1"
    args = build_parser().parse_args(shlex.split(line)[1:])
    assert (args.token_id, args.approved, args.payload) == ("t-1", True, None)


def test_a_run_a_webhook_started_says_what_it_kept_of_the_request() -> None:
    trigger = {
        "kind": "webhook",
        "webhook": "/hooks/{t}",
        "params": {"t": "a"},
        "query": {"q": "1"},
    }
    shown = render_run(run(trigger=trigger | {"headers": {"x-id": "7"}}))
    assert "  webhook /hooks/{t}: t=a, q=1, x-id=7" in shown.splitlines()
    assert "webhook" not in render_run(run(trigger={"kind": "manual"}))


def test_a_runs_errors_are_shown_on_one_line_with_a_senders_bytes_escaped() -> None:
    # a webhook's sender filled an error: its ESC, CR and line breaks reached the operator's
    # terminal (retest h33 F4)
    error = "ValueError: L1\n2026-12-03 00:00:00,000 CRITICAL forged\r\x1b[31m\x00\u202e"
    step = {"id": "boom", "kind": "step", "status": "failed", "attempts": 1, "error": error}
    shown = render_run(run(status="failed", error=f"step 'boom': {error}", steps=[step]))
    assert "\x1b" not in shown
    assert "\r" not in shown
    assert "\x00" not in shown
    assert "\u202e" not in shown
    assert "  error: step 'boom': ValueError: L1\\n2026-12-03 00:00:00,000 CRITICAL" in shown
    assert not any(line.startswith("2026") for line in shown.splitlines())


def test_a_pauses_description_is_shown_on_one_line_with_a_senders_bytes_escaped() -> None:
    # a description built from a webhook's payload retitled the operator's terminal (ESC ] 0;)
    # and wrote a row of its own into `paused` (newcomer h34 F1)
    said = "approve claim Z\x1b]0;pwned\x07\r\nfake line\x00\u202e"
    pause = {"step": "ok", "token": "t-1", "paused_at": 1_000.0, "description": said}
    shown = render_run(run(status="waiting"), pause)
    listed = render_paused([pause | {"run_id": "r1", "workflow": "claims"}])
    for text in (shown, listed):
        for raw in ("\x1b", "\x07", "\r", "\x00", "\u202e"):
            assert raw not in text, (raw, text)
        assert not any(line.startswith("fake line") for line in text.splitlines())
    assert "approve claim Z\\x1b]0;pwned\\x07\\r\\nfake line" in shown
    assert len(listed.splitlines()) == 2  # the header and its one row


def test_a_step_carried_over_says_so() -> None:
    # "completed attempts=0", no time: it read as never run (chaos h34 F5)
    step = {"id": "pre", "kind": "step", "status": "completed", "attempts": 0, "carried": True}
    shown = render_run(run(migrated_from="r0", steps=[step]))
    assert "pre [step] completed attempts=0 (carried over: completed in the run" in shown
