"""A start whose answer was lost: ``run`` said "cannot reach the server", exit 4, which scripts
retry, though the stalled server went on to start the run (chaos h35 F1). The start names its
run and is sent again with that id; exit 4 only for a start never sent, and a 500 of the
server's own is told as one (exit 6), not as a server to retry."""

from __future__ import annotations

import json
import time
from typing import Any, ClassVar

import pytest

from tests.test_cli_client import _Older, cli, stub

PROBLEM = "urn:cronflow:problem:"


def lossy(*, answers: bool, first: str = "drop", run: dict[str, Any] | None = None) -> type[_Older]:
    """A server (each test its own record) that reads the first start and drops its connection
    unanswered, as a stalled server or one killed after its commit does; ``answers``: the start
    sent again is refused as its run exists (409), and the run reads completed (``run``: what
    else it reads); else every start is dropped so."""
    record = {"reads": [], "starts": [], "answers": answers, "first": first, "run": run or {}}
    return type("Lossy", (_Lossy,), record)


class _Lossy(_Older):
    starts: ClassVar[list[dict[str, Any]]] = []
    run: ClassVar[dict[str, Any]] = {}
    answers: ClassVar[bool] = True
    first: ClassVar[str] = "drop"
    """How the first start's answer is lost: ``drop`` (no answer), ``proxy`` (a proxy's 504
    page), ``proxy-500`` (its 500 page: retest h36 R3, exit 4 "nothing started"), ``cut`` (its
    headers, and part of its body), ``cut-proxy`` (a proxy's 502 so cut: retest2 h35 R6, a
    traceback)."""

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        self.starts.append(json.loads(self.rfile.read(length)))
        if len(self.starts) == 1 and self.first.startswith("proxy"):
            code = 504 if self.first == "proxy" else int(self.first.removeprefix("proxy-"))
            self._json(code, "<html>Gateway Timeout</html>", "text/html")
            return
        if len(self.starts) == 1 and self.first in ("cut", "cut-proxy"):
            self.send_response(201 if self.first == "cut" else 502)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", "200")
            self.end_headers()
            self.wfile.write(b'{"run_id": "')
            self.close_connection = True
            return
        if len(self.starts) == 1 or not self.answers:
            self.close_connection = True  # read, and no answer: the client sees it dropped
            return
        detail = f"a run with the id {self.starts[0]['instance_id']!r} exists already"
        problem = {"type": f"{PROBLEM}instance-exists", "detail": detail}
        self._json(409, problem, "application/problem+json")

    def do_GET(self) -> None:
        self.reads.append(self.path)
        run_id = self.starts[0]["instance_id"]
        run = {"id": run_id, "workflow": "w", "status": "completed", "output": 7}
        self._json(200, run | {"created_at": time.time()} | self.run)


def test_a_start_whose_answer_was_lost_is_sent_again_and_started_once() -> None:
    server = lossy(answers=True)
    with stub(server) as url:
        result = cli("run", "w", "--url", url)
    assert result.returncode == 0, result.stderr
    first, again = server.starts
    assert first == again  # the same start, naming the same run
    assert first["workflow"] == "w"
    run_id = first["instance_id"]
    assert len(run_id) == 32  # one of the command's own
    assert f"run {run_id}  w  completed" in result.stdout
    assert "asking again with the same run id, so that it starts once" in result.stderr


@pytest.mark.parametrize("first", ["proxy", "proxy-500", "cut", "cut-proxy"])
def test_a_start_whose_answer_a_proxy_lost_or_cut_is_sent_again(first: str) -> None:
    """A proxy's 504 was exit 4 "retry later", and an answer cut after its headers a traceback
    and exit 1, though the run may have started (review h35 F4, F5)."""
    server = lossy(answers=True, first=first)
    with stub(server) as url:
        result = cli("run", "w", "--url", url)
    assert result.returncode == 0, result.stderr
    first_start, again = server.starts
    assert first_start == again
    assert f"run {first_start['instance_id']}  w  completed" in result.stdout
    assert "Traceback" not in result.stderr


def test_a_start_the_server_never_answers_may_have_started_exit_5() -> None:
    server = lossy(answers=False)
    with stub(server) as url:
        result = cli("run", "w", "--json", "--timeout", "2", "--url", url)
    assert result.returncode == 5, result.stderr  # not 4: a retry could start it twice
    [run_id] = {start["instance_id"] for start in server.starts}
    assert len(server.starts) >= 2
    assert json.loads(result.stdout) == {"run_id": run_id}
    assert f"the start of run {run_id} was sent to the server at {url}" in result.stderr
    assert "it may have started" in result.stderr
    assert f"starting it again with --instance-id {run_id} starts it at most once" in result.stderr


def test_a_proxys_page_that_passed_nothing_on_is_exit_4_at_once() -> None:
    """A 511 is a proxy's own login, asked before it passes a request on: nothing started."""
    server = lossy(answers=True, first="proxy-511")
    with stub(server) as url:
        result = cli("run", "w", "--url", url)
    assert result.returncode == 4, result.stderr
    assert len(server.starts) == 1
    assert "asking again" not in result.stderr


def test_a_start_never_sent_is_exit_4_at_once() -> None:
    with stub(_Older) as url:
        pass  # its port, closed again: the connection is refused
    result = cli("run", "w", "--url", url)
    assert result.returncode == 4, result.stderr
    assert "cannot reach the server" in result.stderr
    assert "asking again" not in result.stderr


@pytest.mark.parametrize(
    "before",
    [{"workflow": "nightly"}, {"created_at": 1_000_000.0}],
    ids=["another flow's", "from before"],
)
def test_an_id_given_that_names_a_run_from_before_is_not_taken_for_the_lost_start(
    before: dict[str, Any],
) -> None:
    """The first start lost on its way (a proxy's 502 that never reached the server), the one
    sent again met the run of that id from before: taken for its own, exit 0 and the other
    run's output, and the run asked for never started (hostile h36 F2)."""
    server = lossy(answers=True, first="proxy", run=before)
    with stub(server) as url:
        result = cli("run", "w", "--instance-id", "same-1", "--url", url)
    assert result.returncode == 3, result.stderr
    assert "a run with the id 'same-1' exists already" in result.stderr
    assert "nothing was started" in result.stderr
    assert not result.stdout


def test_an_id_given_whose_first_start_was_lost_is_its_own_run() -> None:
    server = lossy(answers=True, first="proxy")
    with stub(server) as url:
        result = cli("run", "w", "--instance-id", "mine-1", "--url", url)
    assert result.returncode == 0, result.stderr
    assert "run mine-1  w  completed" in result.stdout
    assert [start["instance_id"] for start in server.starts] == ["mine-1", "mine-1"]


class _Faulty(_Older):
    """A server whose every read is its own 500 problem (a bug, or the app's code raising)."""

    def do_GET(self) -> None:
        detail = "the server failed to answer this request; the error is in the server's log"
        problem = {"type": "urn:cronflow:problem:internal-error", "detail": detail}
        self._json(500, problem, "application/problem+json")


def test_a_500_of_the_servers_own_is_not_told_as_a_busy_server() -> None:
    """It read "it may be stopping ...: retry later", exit 4, which scripts retry; the same
    request fails again (newcomer h36 F4)."""
    with stub(_Faulty) as url:
        result = cli("inspect", "r1", "--url", url)
    assert result.returncode == 6, result.stderr
    assert "the server failed on this request (500: the server failed to answer" in result.stderr
    assert "it is likely to fail again" in result.stderr
    assert "retry later" not in result.stderr
