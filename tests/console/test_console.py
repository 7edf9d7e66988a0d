"""The web console in a real headless Chromium (Debian's ``chromium``, driven by Playwright),
against a real ``serve`` process with API tokens configured. Each page is saved as a screenshot
under ``test-output/console/``."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serving import ROOT, Served, serving

CHROMIUM = shutil.which("chromium")
SHOTS = ROOT / "test-output" / "console"
TOKEN = "console-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (make test-deps installs it)"
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("console")
    config = folder / "cronflow.toml"
    config.write_text(f'[tokens."{TOKEN}"]\nid = "ada"\nscopes = []\n')
    app = "tests.console.console_app:workflows"
    with serving(app, folder / "console.db", "--config", str(config)) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, served: Served) -> Iterator[Any]:
    """A new tab, signed in with the API token."""
    tab, errors = signed_in(browser, served.url)
    yield tab
    tab.context.close()
    assert errors == [], errors  # no script error on any page


def shot(tab: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def signed_in(browser: Any, url: str) -> tuple[Any, list[str]]:
    """A new tab of ``browser`` signed in to the console at ``url`` with the test's token, and
    the script errors its pages raise (close its context when done: ``tab.context.close()``)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.goto(f"{url}/ui/")
    tab.fill("#token", TOKEN)
    tab.click("form.signin button[type=submit]")
    tab.wait_for_selector("#runs-table")
    return tab, errors


def api(served: Served, method: str, path: str, body: Any = None) -> Any:
    answer = httpx.request(method, f"{served.url}{path}", json=body, headers=AUTH, timeout=10)
    assert answer.status_code < 300, answer.text
    return answer.json()


def eventually(check: Callable[[], Any], seconds: float = 10) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def until(tab: Any, expression: str, seconds: float = 10) -> None:
    """Wait for a JavaScript expression to hold in the page (polled from here: the pages'
    Content-Security-Policy forbids the eval that Playwright's wait_for_function uses)."""
    assert eventually(lambda: tab.evaluate(expression), seconds), expression


def run_status(served: Served, run_id: str) -> str:
    return str(api(served, "GET", f"/runs/{run_id}")["status"])


def wait_ended(served: Served, run_id: str) -> dict[str, Any]:
    ended = eventually(lambda: run_status(served, run_id) in ("completed", "failed", "canceled"))
    assert ended, run_status(served, run_id)
    run: dict[str, Any] = api(served, "GET", f"/runs/{run_id}")
    return run


def paused_token(served: Served, run_id: str) -> str:
    def find() -> str | None:
        for pause in api(served, "GET", "/paused")["paused"]:
            if pause["run_id"] == run_id:
                return str(pause["token"])
        return None

    token = eventually(find)
    assert token, f"run {run_id} never paused"
    return str(token)


def test_without_a_token_the_console_asks_for_one_and_the_api_refuses(
    browser: Any, served: Served
) -> None:
    context = browser.new_context()
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    tab.goto(f"{served.url}/")  # redirects to /ui/
    assert tab.url.endswith("/ui/")
    tab.wait_for_selector("#token")
    assert "needs a bearer token" in tab.inner_text("form.signin")
    shot(tab, "sign-in")
    # the page itself holds no data; every API call without the token is refused
    assert tab.evaluate("fetch('/runs').then(r => r.status)") == 401
    assert tab.evaluate("fetch('/paused').then(r => r.status)") == 401
    # a cookie is never what authenticates: a request with cookies and no token is refused
    assert tab.evaluate("fetch('/runs', {credentials: 'include'}).then(r => r.status)") == 401
    tab.fill("#token", "not-the-token")
    tab.click("form.signin button[type=submit]")
    tab.wait_for_selector("text=The server refused the token")
    # a character no header carries (copied with the token) is refused at once: every page
    # read "cannot reach the server" (console h43 F10)
    tab.fill("#token", TOKEN + "\u2026")
    tab.click("form.signin button[type=submit]")
    tab.wait_for_selector("text=no HTTP header can carry (U+2026)")
    assert tab.locator("#token").count() == 1  # still asked
    tab.fill("#token", TOKEN)
    tab.click("form.signin button[type=submit]")
    tab.wait_for_selector("#runs-table")
    assert context.cookies() == []
    context.close()


def test_the_runs_list_filters_pages_and_refreshes_itself(page: Any, served: Served) -> None:
    done = [
        api(served, "POST", "/runs", {"workflow": "greet", "payload": {"name": n}}) for n in "abc"
    ]
    failed = api(served, "POST", "/runs", {"workflow": "boom"})["run_id"]
    for started in done:
        wait_ended(served, started["run_id"])
    wait_ended(served, failed)
    page.goto(f"{served.url}/ui/#/runs")
    page.wait_for_selector(f"tr[data-run='{failed}']")
    shot(page, "runs")
    page.select_option("#filter-status", "failed")  # filters at once
    until(
        page,
        "(() => { const b = [...document.querySelectorAll('#runs tbody [data-status]')];"
        " return b.length > 0 && b.every(x => x.dataset.status === 'failed'); })()",
    )
    assert page.query_selector(f"tr[data-run='{failed}']")
    # pages of two, newest first: the next page holds older runs
    page.goto(f"{served.url}/ui/#/runs?workflow=greet&limit=2")
    until(page, "document.querySelectorAll('#runs tbody tr').length === 2")
    first = page.eval_on_selector_all("#runs tbody tr", "rows => rows.map(r => r.dataset.run)")
    page.click("#older")
    rows = "[...document.querySelectorAll('#runs tbody tr')].map(r => r.dataset.run)"
    until(
        page, f"(() => {{ const r = {rows}; return r.length > 0 && !r.includes('{first[0]}') }})()"
    )
    older = page.evaluate(rows)
    assert older
    assert not set(older) & set(first)
    # a run started meanwhile shows up without reloading the page
    page.goto(f"{served.url}/ui/#/runs")
    page.wait_for_selector("#runs")
    new = api(served, "POST", "/runs", {"workflow": "greet", "payload": {"name": "d"}})["run_id"]
    page.wait_for_selector(f"tr[data-run='{new}']")
    # an id a caller gave shows whole; a made one by its head and its tail, where ids made
    # at one moment differ (the first 12 characters ate both: newcomer h29)
    named = api(served, "POST", "/runs", {"workflow": "greet", "instance_id": "order-2026-0001"})
    page.wait_for_selector(f"tr[data-run='{named['run_id']}']")
    assert page.inner_text(f"tr[data-run='{named['run_id']}'] a") == "order-2026-0001"
    shown = page.inner_text(f"tr[data-run='{new}'] a")
    assert shown == f"{new[:8]}…{new[-8:]}"
    assert page.get_attribute(f"tr[data-run='{new}'] a", "title") == new


def test_a_refresh_that_works_again_takes_its_failure_away(page: Any, served: Served) -> None:
    """ "cannot reach the server" stayed over fresh data once the server was back (console h43
    F9)."""
    page.goto(f"{served.url}/ui/#/runs")
    page.wait_for_selector("#runs-table")
    page.route("**/runs?*", lambda route: route.abort())  # the server away
    until(page, "document.querySelector('#notice').textContent.includes('cannot reach')", 10)
    page.unroute("**/runs?*")  # and back
    until(page, "document.querySelector('#notice').hidden", 10)


def test_a_hand_made_address_is_shown_as_it_is_taken(page: Any, served: Served) -> None:
    """The run page of "..", which the browser fetched as "/", raised a script error; a limit
    the select does not offer read "20" over the rows it showed (console h43 F5)."""
    page.goto(f"{served.url}/ui/#/runs/%2e%2e")
    page.wait_for_selector("text=did not answer")
    page.goto(f"{served.url}/ui/#/runs?limit=7")
    page.wait_for_selector("#runs-table")
    assert page.eval_on_selector("#filter-limit", "select => select.value") == "7"


def test_newer_goes_to_the_page_before_after_the_browsers_back(page: Any, served: Served) -> None:
    """Newer went by a trail only the buttons kept: after the browser's Back it skipped a
    page (console h43 F1)."""
    for n in range(6):
        api(served, "POST", "/runs", {"workflow": "greet", "payload": {"name": f"p{n}"}})
    pages, cursor = [], ""
    for _ in range(3):  # the API's own pages of two
        after = f"&cursor={cursor}" if cursor else ""
        answer = api(served, "GET", f"/runs?workflow=greet&limit=2{after}")
        pages.append([run["id"] for run in answer["runs"]])
        cursor = answer["next_cursor"]

    def shown() -> list[str]:
        rows = page.query_selector_all("#runs-table tr[data-run]")
        return [row.get_attribute("data-run") for row in rows]

    page.goto(f"{served.url}/ui/#/runs?workflow=greet&limit=2")
    until(page, f"document.querySelector('#runs-table tr[data-run=\"{pages[0][0]}\"]')")
    for number in (1, 2):
        page.click("#older")
        until(page, f"document.querySelector('#runs-table tr[data-run=\"{pages[number][0]}\"]')")
    page.go_back()
    until(page, f"document.querySelector('#runs-table tr[data-run=\"{pages[1][0]}\"]')")
    page.click("text=\u2039 Newer")
    until(page, f"document.querySelector('#runs-table tr[data-run=\"{pages[0][0]}\"]')")
    assert shown() == pages[0]


def test_a_run_page_shows_the_step_tree_and_replays(page: Any, served: Served) -> None:
    run_id = api(served, "POST", "/runs", {"workflow": "greet", "payload": {"name": "ada"}})[
        "run_id"
    ]
    wait_ended(served, run_id)
    page.goto(f"{served.url}/ui/#/runs")
    page.click(f"tr[data-run='{run_id}'] a")  # follow the run from the list
    page.wait_for_selector("#steps")
    assert page.inner_text("#run-id") == run_id
    steps = page.eval_on_selector_all("#steps li", "items => items.map(i => i.dataset.step)")
    assert steps == ["hello", "both", "done"]
    for step in steps:
        assert page.inner_text(f"li[data-step='{step}'] .badge") == "completed"
    assert "took" in page.inner_text("li[data-step='hello']")
    assert '"greeted": "hello ada"' in page.inner_text("#output")
    shot(page, "run")
    page.click("#replay")
    page.fill("#replay-payload", '{"name": "grace"}')
    page.click("#replay-start")
    until(page, f"document.querySelector('#run-id')?.textContent !== '{run_id}'")
    replay = page.inner_text("#run-id")
    assert wait_ended(served, replay)["output"] == {"greeted": "hello grace"}
    assert api(served, "GET", f"/runs/{replay}")["replay_of"] == run_id


def test_a_senders_bidi_and_c1_controls_are_shown_not_obeyed(page: Any, served: Served) -> None:
    """(retest h33 F7) A U+202E in a payload turned the rest of the page's JSON around; it
    reads ``\\u202e`` as the CLI shows it, and the replay form still parses to what was sent."""
    name = "\u202eada\u0085"
    run_id = api(served, "POST", "/runs", {"workflow": "greet", "payload": {"name": name}})[
        "run_id"
    ]
    wait_ended(served, run_id)
    page.goto(f"{served.url}/ui/#/runs/{run_id}")
    page.wait_for_selector("#output")
    assert '"name": "\\u202eada\\u0085"' in page.inner_text("#payload")
    assert '"greeted": "hello \\u202eada\\u0085"' in page.inner_text("#output")
    assert "\u202e" not in page.inner_text("main")
    page.click("#replay")
    assert json.loads(page.input_value("#replay-payload")) == {"name": name}


def test_a_pauses_description_from_a_sender_is_shown_not_obeyed(page: Any, served: Served) -> None:
    """A pause's description and approval URL were shown raw: a sender's U+202E read
    "$10000 amount:" for "00001$ :tnuoma" on both pages (hostile h35 F1)."""
    amount = "00001$ :tnuoma\u202e\u2028\u0085\u001b"  # (ESC too: retest h35 L4)
    run_id = api(served, "POST", "/runs", {"workflow": "ask", "payload": {"amount": amount}})[
        "run_id"
    ]
    paused_token(served, run_id)
    shown = "00001$ :tnuoma\\u202e\\u2028\\u0085\\u001b"
    page.goto(f"{served.url}/ui/#/runs/{run_id}")
    page.wait_for_selector("#pause .description")
    assert page.inner_text("#pause .description") == f"pay {shown}"
    page.goto(f"{served.url}/ui/#/paused")
    card = f"#paused [data-run='{run_id}']"
    page.wait_for_selector(f"{card} .description")
    assert page.inner_text(f"{card} .description") == f"pay {shown}"
    assert f"https://approve.example/{shown}" in page.inner_text(card)
    for hidden in ("\u202e", "\u2028", "\u0085", "\u001b"):
        assert hidden not in page.inner_text("main")


def test_a_number_a_browser_cannot_keep_is_refused_not_rounded(page: Any, served: Served) -> None:
    """A whole number past 2^53 went out rounded, 1e400 as null, where the API refuses both
    (hostile h35 F3)."""
    run_id = api(served, "POST", "/runs", {"workflow": "greet", "payload": {"name": "x"}})["run_id"]
    wait_ended(served, run_id)
    before = len(api(served, "GET", "/runs?workflow=greet&limit=1000")["runs"])
    page.goto(f"{served.url}/ui/#/runs/{run_id}")
    page.click("#replay")
    for typed, said in (
        ('{"name": 123456789012345678901234567890}', 'the number at "name" is past 2^53'),
        ('{"name": 1e400}', 'the number at "name" is too large for JSON'),
        # JSON.parse kept the last of a key given twice, where the API refuses the body
        # (hostile h36 F3)
        ('{"name": "a", "x": {"y": 1, "y": 2}}', 'the payload gives the key "y" twice'),
        # no digit of 1e20 is lost: it was said to be (hostile h36 F3)
        ('{"name": 1e20}', "would go out as the whole number 100000000000000000000"),
    ):
        page.fill("#replay-payload", typed)
        page.click("#replay-start")
        until(page, f"document.querySelector('#notice').innerText.includes({json.dumps(said)})")
    assert len(api(served, "GET", "/runs?workflow=greet&limit=1000")["runs"]) == before
    # a key in a string, or in two objects, is no repeat
    page.fill("#replay-payload", '{"name": "a:b", "n": 2.5e-3, "m": {"name": "\\"name\\""}}')
    page.click("#replay-start")
    until(page, f"document.querySelector('#run-id')?.textContent !== '{run_id}'")
    replayed = api(served, "GET", f"/runs/{page.inner_text('#run-id')}")
    assert replayed["payload"]["m"] == {"name": '"name"'}


def test_a_failed_run_shows_its_error(page: Any, served: Served) -> None:
    run_id = api(served, "POST", "/runs", {"workflow": "boom"})["run_id"]
    wait_ended(served, run_id)
    page.goto(f"{served.url}/ui/#/runs/{run_id}")
    page.wait_for_selector("#error")
    # the class once (newcomer h32 F10: "builtins.RuntimeError: ... RuntimeError: ...")
    said = "RuntimeError: the card was declined"
    assert page.inner_text("#error") == f"step 'charge': {said}"
    assert page.inner_text("li[data-step='charge'] .error") == said
    # a failed run is resumed from where it stopped, not only replayed from its start
    # (newcomer h27: the one button re-ran every step's side effects)
    page.click("#resume")
    page.click("button[data-confirm='Resume']")
    until(page, f"document.querySelector('#run-id')?.textContent !== '{run_id}'")
    resumed = page.inner_text("#run-id")
    assert resumed.startswith("resume:")
    assert api(served, "GET", f"/runs/{resumed}")["replay_of"] == run_id
    assert "Resume of" in page.inner_text("main")  # not "Replay of" (newcomer h32 F9)
    # the failed run points to its resume, and offers no second one (newcomer h31 F2: it said
    # nothing of it, and offered Resume again)
    page.goto(f"{served.url}/ui/#/runs/{run_id}")
    page.wait_for_selector("#resumed-as")
    assert page.query_selector("#resume") is None
    page.click("#resumed-as")
    until(page, f"document.querySelector('#run-id')?.textContent === '{resumed}'")


def test_a_net_workflow_is_drawn_with_its_marking(page: Any, served: Served) -> None:
    workflow_id = api(served, "POST", "/workflows", {"workflow": "review"})["workflow_id"]
    assert eventually(
        lambda: api(served, "GET", f"/workflows/{workflow_id}")["tasks"]["approve"] == "enabled"
    )
    page.goto(f"{served.url}/ui/#/runs/{workflow_id}")
    page.wait_for_selector("#net svg")
    assert page.get_attribute("[data-node='t:prepare'] rect", "class") == "task t-completed"
    assert page.get_attribute("[data-node='t:approve'] rect", "class") == "task t-enabled"
    # the one token sits in the condition between the two tasks
    marked = page.eval_on_selector_all(
        "#net g:has(.token)", "groups => groups.map(g => g.dataset.node)"
    )
    assert marked == ["c:prepare__to__approve"]
    assert page.inner_text("tr[data-task='approve'] .badge") == "enabled"
    shot(page, "net")
    # an AND split or join is named where it has two ways, though it is the default (newcomer
    # h34 F8: the picture named an XOR split, and no AND)
    forked = api(served, "POST", "/workflows", {"workflow": "fork"})["workflow_id"]
    page.goto(f"{served.url}/ui/#/runs/{forked}")
    page.wait_for_selector("#net svg")
    assert "and-split" in (page.text_content("[data-node='t:split']") or "")
    assert "and-join" in (page.text_content("[data-node='t:join']") or "")
    assert "and-" not in (page.text_content("[data-node='t:left']") or "")
    page.goto(f"{served.url}/ui/#/runs/{workflow_id}")
    page.wait_for_selector("#net svg")
    page.click("text=Cancel run")
    page.click("[data-confirm='Cancel run']")
    page.wait_for_selector("#run-id + .badge[data-status='canceled']")


def test_a_nets_work_items_are_taken_and_done_from_the_run_page(page: Any, served: Served) -> None:
    """A person's task of a net could be taken and done with curl or the command line only
    (newcomer h34 F8): the run page lists its work items with the actions callers may take."""
    workflow_id = api(served, "POST", "/workflows", {"workflow": "review"})["workflow_id"]
    assert eventually(
        lambda: api(served, "GET", f"/workflows/{workflow_id}")["tasks"]["approve"] == "enabled"
    )
    page.goto(f"{served.url}/ui/#/runs/{workflow_id}")
    page.wait_for_selector("#work-list [data-verb='start']")
    assert page.query_selector("#work-list [data-verb='complete']") is None  # not yet started
    page.click("#work-list [data-verb='start']")
    page.wait_for_selector("#work-list [data-verb='complete']")
    page.fill("#work-list textarea", '{"ok": true}')
    page.click("#work-list [data-verb='complete']")
    page.wait_for_selector("#run-id + .badge[data-status='completed']")
    assert page.query_selector("#work-list") is None
    [item] = api(served, "GET", f"/workflows/{workflow_id}/tasks/approve/work-items")["work_items"]
    assert (item["state"], item["output"]) == ("completed", {"ok": True})


def test_a_nets_run_page_answers_each_of_its_pauses_and_its_child_nets_items(
    page: Any, served: Served
) -> None:
    """A net waiting in two pauses showed a form for the oldest only, and a composite task's
    child net's items were not in the work list (retest h34 F4)."""
    workflow_id = api(served, "POST", "/workflows", {"workflow": "desk"})["workflow_id"]
    pauses = f"/paused?run_id={workflow_id}"
    assert eventually(lambda: len(api(served, "GET", pauses)["paused"]) == 2)
    page.goto(f"{served.url}/ui/#/runs/{workflow_id}")
    page.wait_for_selector("#work-list [data-verb='start']")
    forms = page.query_selector_all("#pause .run-pause")
    assert [form.query_selector("h2").inner_text() for form in forms] == [
        "Waiting for a person at step “sign”",
        "Waiting for a person at step “countersign”",
    ]
    assert page.inner_text("#work-list tbody td:first-child") == "stamp (in stamping)"
    shot(page, "net-pauses-and-child-items")
    for step in ("sign", "countersign"):
        page.click(f"#pause .run-pause:has(h2:text('“{step}”')) button.approve")
        until(page, f"!document.querySelector('#pause')?.innerText.includes('“{step}”')")
    page.click("#work-list [data-verb='start']")
    page.wait_for_selector("#work-list [data-verb='complete']")
    page.click("#work-list [data-verb='complete']")
    # the child net's own pause says whose it is (retest h35 L5)
    sealed = page.wait_for_selector("#pause .run-pause h2")
    assert sealed.inner_text() == "Waiting for a person at step “seal” of the net stamping"
    page.click("#pause .run-pause button.approve")
    page.wait_for_selector("#run-id + .badge[data-status='completed']")


def test_approving_a_paused_run_from_the_console_completes_it(page: Any, served: Served) -> None:
    run_id = api(served, "POST", "/runs", {"workflow": "hold"})["run_id"]
    paused_token(served, run_id)
    page.goto(f"{served.url}/ui/#/paused")
    card = f"#paused [data-run='{run_id}']"
    page.wait_for_selector(card)
    assert "approve the refund" in page.inner_text(card)
    shot(page, "paused")
    # a payload that says the opposite of the button is refused, as the CLI refuses it (console
    # h40 F5: Approve with {"approved": false} approved)
    page.fill(f"{card} textarea[name=payload]", '{"approved": false}')
    page.click(f"{card} button.approve")
    said = 'The payload says "approved": false, and you pressed Approve'
    until(page, f"document.querySelector('#notice').innerText.includes({json.dumps(said)})")
    assert api(served, "GET", f"/runs/{run_id}")["status"] == "waiting"
    page.fill(f"{card} textarea[name=payload]", "")
    page.fill(f"{card} input[name=approved_by]", "grace")
    page.click(f"{card} button.approve")
    page.wait_for_selector("#notice.ok")
    run = wait_ended(served, run_id)
    assert run["status"] == "completed"
    assert run["output"] == {"approved": True, "by": "grace"}
    page.goto(f"{served.url}/ui/#/runs/{run_id}")
    page.wait_for_selector("#run-id + .badge[data-status='completed']")


def test_rejecting_and_canceling_from_the_run_page(page: Any, served: Served) -> None:
    rejected = api(served, "POST", "/runs", {"workflow": "hold"})["run_id"]
    paused_token(served, rejected)
    page.goto(f"{served.url}/ui/#/runs/{rejected}")
    page.wait_for_selector("#pause button.reject")
    assert page.inner_text("#started-by") == "ada"  # who started it (retest h33 F9)
    page.click("#pause button.reject")
    # the console's token's principal is who rejected it (resumed_by, and the approver when the
    # console names none)
    assert wait_ended(served, rejected)["output"] == {"approved": False, "by": "ada"}
    canceled = api(served, "POST", "/runs", {"workflow": "hold"})["run_id"]
    paused_token(served, canceled)
    page.goto(f"{served.url}/ui/#/runs/{canceled}")
    page.click("text=Cancel run")
    # the question stays past the page's refresh: a click had left the focus on the page,
    # and the refresh took the "Yes" away within 2.5 s (newcomer h29 F3)
    page.wait_for_timeout(3000)
    page.click("[data-confirm='Cancel run']")
    page.wait_for_selector("#run-id + .badge[data-status='canceled']")
    assert run_status(served, canceled) == "canceled"


def test_a_run_is_terminated_from_its_page(page: Any, served: Served) -> None:
    """A cancel the run's teardown code refuses left the console's operator with no way out
    (console h43 F4): a terminate ends the run without its code."""
    run_id = api(served, "POST", "/runs", {"workflow": "hold"})["run_id"]
    paused_token(served, run_id)
    page.goto(f"{served.url}/ui/#/runs/{run_id}")
    page.click("text=Terminate…")
    assert "without running any of its code" in page.inner_text("main")
    page.click("[data-confirm='Terminate…']")
    page.wait_for_selector("#run-id + .badge[data-status='canceled']")
    assert f"Run {run_id} terminated." in page.inner_text("#notice")
    run = api(served, "GET", f"/runs/{run_id}")
    assert (run["status"], run["error"]) == ("canceled", "terminated from the console")


def test_a_nets_pause_says_approve_and_reject_both_complete_it(page: Any, served: Served) -> None:
    # "Reject" read as stopping the net, whose item it completed (newcomer h33 F3); its
    # timeout only dates it (conform h33 F3)
    started = api(served, "POST", "/workflows", {"workflow": "sign-off"})
    net_id = started["workflow_id"]
    paused_token(served, net_id)
    page.goto(f"{served.url}/ui/#/paused")
    card = f"#paused [data-run='{net_id}']"
    page.wait_for_selector(f"{card} .net-pause")
    assert "Approve and Reject both complete it" in page.inner_text(card)
    assert "a net's pause does not expire by itself" in page.inner_text(card)
    hold = api(served, "POST", "/runs", {"workflow": "hold"})["run_id"]
    paused_token(served, hold)
    page.reload()
    page.wait_for_selector(f"#paused [data-run='{hold}']")
    assert page.query_selector(f"#paused [data-run='{hold}'] .net-pause") is None  # a flow's
    page.click(f"{card} button.reject")
    page.wait_for_selector("#notice.ok")
    said = page.inner_text("#notice")
    assert said == "Completed step sign with approved: false; its net decides what follows."
    assert wait_ended(served, net_id)["status"] == "completed"
    page.goto(f"{served.url}/ui/#/runs/{hold}")
    page.wait_for_selector("#pause button.approve")
    assert page.query_selector("#pause .net-pause") is None
    page.click("#pause button.approve")
    assert wait_ended(served, hold)["output"]["approved"] is True


def test_a_paused_runs_page_reads_its_own_pause(page: Any, served: Served) -> None:
    """The page of a run paused for a person finds its pauses with one read of that run's
    (it listed up to 10 pages of 1,000 pauses on every refresh, every 2.5 s)."""
    for _ in range(3):  # others paused before it
        api(served, "POST", "/runs", {"workflow": "hold"})
    run_id = api(served, "POST", "/runs", {"workflow": "hold"})["run_id"]
    token = paused_token(served, run_id)
    paths: list[str] = []
    page.on("request", lambda request: paths.append(request.url.split("/", 3)[3]))
    page.goto(f"{served.url}/ui/#/runs/{run_id}")
    page.wait_for_selector("#pause button.approve")
    assert "approve the refund" in page.inner_text("#pause")
    mine = f"paused?run_id={run_id}&limit=50"
    listed = [path for path in paths if path.startswith("paused")]
    assert set(listed) == {mine}, listed  # never the listing of every run's
    page.wait_for_event("request", lambda request: request.url.endswith(f"/{mine}"))  # refresh
    assert paths.count(mine) >= 2
    assert {path for path in paths if path.startswith("paused")} == {mine}, paths
    page.click("#pause button.approve")
    assert wait_ended(served, run_id)["output"]["approved"] is True
    assert token not in [pause["token"] for pause in api(served, "GET", "/paused")["paused"]]


def test_a_runs_page_asks_for_a_pause_only_where_a_person_may_be_waited_on(
    page: Any, served: Served
) -> None:
    """The page of a run waiting for no person asked for its pause at each refresh, each 404
    counted as an HTTP error on the dashboards (newcomer h32 F3): a net waiting for a caller's
    action is not asked."""
    workflow_id = api(served, "POST", "/workflows", {"workflow": "review"})["workflow_id"]
    eventually(lambda: run_status(served, workflow_id) == "waiting")
    paths: list[str] = []
    page.on("request", lambda request: paths.append(request.url.split("/", 3)[3]))
    page.goto(f"{served.url}/ui/#/runs/{workflow_id}")
    page.wait_for_selector("#steps")
    mine = f"runs/{workflow_id}"
    page.wait_for_event("request", lambda request: request.url.endswith(f"/{mine}"))  # refresh
    assert paths.count(mine) >= 2
    assert not [path for path in paths if "pause" in path], paths


def test_a_run_page_is_drawn_again_only_when_the_run_changed(page: Any, served: Served) -> None:
    """A waiting run's page was rebuilt at each refresh: a selection made to copy the payload
    was lost within 2.5 s (console h43 F6). Its clock still moves; a change is drawn."""
    body = {"workflow": "settle", "payload": {"note": "copy me"}}
    run_id = api(served, "POST", "/runs", body)["run_id"]
    eventually(lambda: run_status(served, run_id) == "waiting")
    page.goto(f"{served.url}/ui/#/runs/{run_id}")
    page.wait_for_selector("#payload")
    page.click("#payload")
    page.evaluate("""() => {
        document.querySelector('#payload').dataset.mark = 'drawn once';
        getSelection().selectAllChildren(document.querySelector('#payload'));
    }""")
    mine = f"runs/{run_id}"
    for _ in range(2):  # two refreshes
        page.wait_for_event("request", lambda request: request.url.endswith(f"/{mine}"))
    page.wait_for_timeout(300)
    assert page.eval_on_selector("#payload", "pre => pre.dataset.mark") == "drawn once"
    assert '"note": "copy me"' in page.evaluate("() => getSelection().toString()")
    api(served, "POST", "/events/order.settled", {"payload": {"n": 2}})
    until(page, "document.querySelector('#output')?.textContent.includes('\"n\": 2')", 10)
    assert page.eval_on_selector("#payload", "pre => pre.dataset.mark || ''") == ""


def test_a_step_waiting_for_an_event_names_it(page: Any, served: Served) -> None:
    """A run's page did not say what its waiting step waits for (newcomer h32 F8): it names
    the event, linked to the page that publishes it."""
    run_id = api(served, "POST", "/runs", {"workflow": "settle"})["run_id"]
    eventually(lambda: run_status(served, run_id) == "waiting")
    page.goto(f"{served.url}/ui/#/runs/{run_id}")
    waits = page.wait_for_selector("li[data-step='paid'] [data-event='order.settled']")
    assert waits.inner_text() == "waits for the event order.settled"
    waits.query_selector("a").click()
    until(page, "document.querySelector('#event-name')?.value === 'order.settled'")
    # offered, though no flow starts on it (newcomer h33 F8), and the answer says which run's
    # step took it ("no flow started for it")
    assert "Steps wait for: order.checked, order.settled" in page.inner_text("#event-names-said")
    assert page.query_selector("#event-names option[value='order.settled']") is not None
    page.fill("#event-payload", '{"n": 1}')
    page.click("#publish")
    delivered = page.wait_for_selector("#event-result li")
    assert delivered.inner_text() == f"delivered to the waiting step of run {run_id}"
    assert wait_ended(served, run_id)["output"] == {"n": 1}


def test_publishing_an_event_starts_the_flow_listening(page: Any, served: Served) -> None:
    page.goto(f"{served.url}/ui/#/events")
    page.fill("#event-name", "order.paid")
    page.fill("#event-payload", '{"order": 7}')
    page.click("#publish")
    link = page.wait_for_selector("#event-result a")
    shot(page, "event-published")
    run_id = link.inner_text()
    assert wait_ended(served, run_id)["output"] == {"order": 7}
    link.click()
    page.wait_for_selector("#run-id")
    assert page.inner_text("#run-id") == run_id
    # a payload that is not JSON is refused in the page, before any request
    page.goto(f"{served.url}/ui/#/events")
    page.fill("#event-name", "order.paid")
    page.fill("#event-payload", "{not json")
    page.click("#publish")
    page.wait_for_selector("#notice:not([hidden])")
    assert "not valid JSON" in page.inner_text("#notice")


def runs_of(served: Served, workflow: str) -> int:
    return len(api(served, "GET", f"/runs?workflow={workflow}&limit=1000")["runs"])


def test_a_double_click_publishes_or_fires_once(page: Any, served: Served) -> None:
    """A double click sent each action's request twice: two runs started, the event published
    twice, and the page showed the second answer (console h43 F8)."""
    before = runs_of(served, "listen")
    page.goto(f"{served.url}/ui/#/events")
    page.fill("#event-name", "order.paid")
    page.fill("#event-payload", '{"order": 8}')
    page.dblclick("#publish")
    page.wait_for_selector("#event-result a")
    until(page, "!document.querySelector('#publish').disabled")  # its call is over
    assert page.locator("#event-result a").count() == 1
    assert eventually(lambda: runs_of(served, "listen") > before)
    time.sleep(0.5)  # (a second request would have started its run by now)
    assert runs_of(served, "listen") == before + 1
    before = runs_of(served, "nightly")
    page.goto(f"{served.url}/ui/#/workflows")
    page.dblclick("[data-flow='nightly'] [data-trigger='interval'] [data-fire]")
    page.wait_for_selector("#run-id")
    wait_ended(served, page.inner_text("#run-id"))
    time.sleep(0.5)
    assert runs_of(served, "nightly") == before + 1


def test_approve_then_reject_while_the_first_is_out_sends_one_answer(
    page: Any, served: Served
) -> None:
    """Each button took no second click of its own, but Reject clicked while Approve's call
    was out sent a second answer (the review of console h43 F8's fix)."""
    run_id = api(served, "POST", "/runs", {"workflow": "hold"})["run_id"]
    paused_token(served, run_id)
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if "/resume/" in r.url else None)
    page.goto(f"{served.url}/ui/#/runs/{run_id}")
    page.wait_for_selector("#pause button.approve")
    page.evaluate("""() => {
        document.querySelector('#pause button.approve').click();
        document.querySelector('#pause button.reject').click();
    }""")
    assert wait_ended(served, run_id)["output"]["approved"] is True
    time.sleep(0.5)  # (a second answer would have been sent by now)
    assert len(sent) == 1, sent


def test_a_publish_says_which_waiting_steps_did_not_take_it(page: Any, served: Served) -> None:
    """A waiting step whose filter raised read as "no waiting step took it" (console h43
    F11)."""
    run_id = api(served, "POST", "/runs", {"workflow": "picky"})["run_id"]
    assert eventually(lambda: run_status(served, run_id) == "waiting")
    page.goto(f"{served.url}/ui/#/events")
    page.fill("#event-name", "order.checked")
    page.fill("#event-payload", '{"x": 1}')
    page.click("#publish")
    page.wait_for_selector("#event-result li")
    said = page.inner_text("#event-result")
    assert f"the waiting step's filter of run {run_id} raised KeyError: 'amount'" in said
    assert "no waiting step took it" not in said
    assert run_status(served, run_id) == "waiting"


def test_workflows_show_their_triggers_and_next_fire_times(page: Any, served: Served) -> None:
    page.goto(f"{served.url}/ui/#/workflows")
    page.wait_for_selector("[data-flow='nightly']")
    schedule = page.inner_text("[data-flow='nightly'] [data-trigger='schedule']")
    assert "30 2 * * *" in schedule
    assert "Europe/Paris" in schedule
    # in the schedule's zone, named: the browser's read 01:30 for it, unnamed (newcomer h30 F3)
    assert re.search(r"next: 20\d\d-\d\d-\d\d 02:30:00 Europe/Paris \(in ", schedule), schedule
    interval = page.inner_text("[data-flow='nightly'] [data-trigger='interval']")
    assert "next:" in interval
    # spelt as fire takes it ("every 1 h 0 min" was refused: newcomer h33 F6)
    assert interval.startswith("every 1h")
    # the command shown fires: nightly has two schedules, so it names one (newcomer h32 F4),
    # as the command line names it: its zone only where one expression has two (h33 F6)
    fire = "cronflow-actors fire nightly --schedule '30 2 * * *' (or another"
    assert fire in page.inner_text("[data-flow='nightly'] .triggers")
    assert "order.paid" in page.inner_text("[data-flow='listen'] [data-trigger='event']")
    shot(page, "workflows")
    expected = api(served, "GET", "/flows/nightly/next-fires?count=1")["schedules"][0]["next"]
    assert len(expected) == 1
    # the nets too, with their versions and what a caller may do (newcomer h27 F7)
    net = page.inner_text("[data-net='review']")
    assert "versions: v1" in net
    assert "callers may: cancel, initialize" in net
    assert "work items of approve: complete, start" in net  # (newcomer h33 F11)
    # and an instance started from its card, as POST /workflows does (newcomer h33 F11)
    page.click("[data-net='review'] [data-start] summary")
    page.fill("[data-net='review'] [data-start] textarea", '{"from": "console"}')
    page.fill("[data-net='review'] [data-start] input[name=instance_id]", "review-from-console")
    page.click("[data-net='review'] [data-start] button")
    page.wait_for_selector("#run-id")
    assert page.inner_text("#run-id") == "review-from-console"
    assert api(served, "GET", "/runs/review-from-console")["payload"] == {"from": "console"}
    page.goto(f"{served.url}/ui/#/workflows")
    # a schedule's tick now, from its trigger (newcomer h29 F8): the page follows the run
    page.click("[data-flow='nightly'] [data-trigger='interval'] [data-fire]")
    page.wait_for_selector("#run-id")
    fired = wait_ended(served, page.inner_text("#run-id"))
    assert (fired["workflow"], fired["status"], fired["payload"]["schedule"]) == (
        "nightly",
        "completed",
        "every 3600 s",
    )
    page.goto(f"{served.url}/ui/#/workflows")  # the cron schedule's, named with its zone
    page.click("[data-flow='nightly'] [data-trigger='schedule'] [data-fire]")
    page.wait_for_selector("#run-id")
    fired = wait_ended(served, page.inner_text("#run-id"))
    assert (fired["status"], fired["payload"]["timezone"]) == ("completed", "Europe/Paris")


def test_a_flow_s_schedules_are_paused_and_resumed_from_its_card(page: Any, served: Served) -> None:
    """Only a code change and a restart could stop a schedule (newcomer h39 F3)."""
    page.goto(f"{served.url}/ui/#/workflows")
    card = "[data-flow='nightly']"
    page.wait_for_selector(f"{card} [data-schedules='running']")
    page.fill(f"{card} [data-schedules] input[name=note]", "billing is down")
    page.click(f"{card} [data-pause='pause']")
    page.wait_for_selector(f"{card} [data-schedules='paused']")
    said = page.inner_text(f"{card} [data-schedules]")
    assert "schedules paused since" in said
    assert "billing is down: their ticks start no run" in said
    # and it is said (the page's own refresh cleared the notice: console h43 F7)
    until(page, "document.querySelector('#notice').textContent.includes('are paused')")
    paused = api(served, "GET", "/flows/nightly/next-fires?count=1")["paused"]
    assert paused["note"] == "billing is down"
    shot(page, "workflows-paused")
    page.click(f"{card} [data-pause='resume']")
    page.wait_for_selector(f"{card} [data-schedules='running']")
    until(page, "document.querySelector('#notice').textContent.includes('run again')")
    assert api(served, "GET", "/flows/nightly/next-fires?count=1")["paused"] is None


def test_console_assets_are_served_with_a_strict_policy(served: Served) -> None:
    index = httpx.get(f"{served.url}/ui/")
    policy = index.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert index.headers["x-content-type-options"] == "nosniff"
    for name, media in (("app.js", "text/javascript"), ("app.css", "text/css")):
        asset = httpx.get(f"{served.url}/ui/{name}")
        assert asset.status_code == 200
        assert asset.headers["content-type"].startswith(media)
    missing = httpx.get(f"{served.url}/ui/nothing.js")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert httpx.post(f"{served.url}/ui/").status_code == 405


def test_a_blocked_runs_pause_says_why_and_offers_no_approval(browser: Any, tmp_path: Path) -> None:
    """A run held on a changed definition was offered Approve and Reject (refused when
    clicked), with an expiry that does not come, and its page said "blocked" and no more
    (newcomer h24 F4): both show why, and what to do, instead."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    import cronflow_actors as cf

    db = tmp_path / "held.db"

    async def before_the_change() -> str:
        old = cf.define("hold").human_in_the_loop("approve", description="approve the refund")
        async with cf.Runtime(db=db, workflows=[old.step("renamed", lambda ctx: 1)]) as rt:
            run_id = await rt.trigger("hold")
            await rt.wait_idle()
            return run_id

    with ThreadPoolExecutor(1) as thread:  # (Playwright's loop runs in this one)
        run_id = thread.submit(asyncio.run, before_the_change()).result()
    config = tmp_path / "cronflow.toml"
    config.write_text(f'[tokens."{TOKEN}"]\nid = "ada"\nscopes = []\n')
    with serving("tests.console.console_app:workflows", db, "--config", str(config)) as held:
        tab, errors = signed_in(browser, held.url)
        tab.goto(f"{held.url}/ui/#/paused")
        card = tab.wait_for_selector(f'[data-run="{run_id}"]')
        assert "Blocked: instance" in card.inner_text()
        assert "not while it is blocked" in card.inner_text()
        assert card.query_selector("button.approve") is None
        shot(tab, "paused-blocked")
        tab.goto(f"{held.url}/ui/#/runs/{run_id}")
        tab.wait_for_selector("#blocked")
        assert "migrate it" in tab.inner_text("#blocked")
        assert tab.query_selector("#pause button.approve") is None
        shot(tab, "run-blocked")
        tab.context.close()
        assert errors == [], errors


@contextlib.contextmanager
def serving_app(app: Path, folder: Path) -> Iterator[Served]:
    """``serve`` of the app file ``app`` on a database of its own, ``TOKEN`` its one token."""
    config = folder / "cronflow.toml"
    config.write_text(f'[tokens."{TOKEN}"]\nid = "ada"\nscopes = []\n')
    with serving(str(app), folder / f"{app.stem}.db", "--config", str(config)) as served:
        yield served


def test_a_run_whose_migration_is_pending_says_so_and_gives_it_up(
    browser: Any, tmp_path: Path
) -> None:
    """A run canceled for a migration whose new run could not start read only "Migrated to" a
    link that answered "no run", with no button: the console could neither show the migration
    pending nor give it up, as the README says to (hostile h28 M1). It says pending, links
    nowhere, and offers to give the migration up, after which the run can be resumed."""
    app = tmp_path / "pending_app.py"
    app.write_text(
        "import cronflow_actors as cf\n"
        "def boom(ctx):\n"
        "    if 'boom' in ctx.payload:\n"
        "        raise RuntimeError('v1 cannot take this run')\n"
        "    return False\n"
        "workflows = [\n"
        "    cf.define('mig', version='v1').if_('check', boom).step('x', str).end_if(),\n"
        "    cf.define('mig', version='v2').pause('approve'),\n"
        "]\n"
    )
    with serving_app(app, tmp_path) as served:
        old = api(served, "POST", "/runs", {"workflow": "mig", "payload": {"boom": 1}})["run_id"]
        eventually(lambda: api(served, "GET", f"/runs/{old}")["status"] == "waiting")
        url, body = f"{served.url}/runs/{old}/migrate", {"to_version": "v1"}
        refused = httpx.post(url, json=body, headers=AUTH, timeout=10)
        assert refused.status_code == 409, refused.text  # its start raised: pending
        run = api(served, "GET", f"/runs/{old}")
        assert (run["status"], run["migration_pending"]) == ("canceled", True)
        tab, errors = signed_in(browser, served.url)
        tab.goto(f"{served.url}/ui/#/runs/{old}")
        tab.wait_for_selector("#migration-pending")
        assert "pending" in tab.inner_text("#migration-pending")
        assert tab.query_selector("#migrated-to") is None  # no link to a run that is not
        shot(tab, "run-migration-pending")
        tab.click("text=Give the migration up")
        tab.click("[data-confirm='Give the migration up']")
        tab.wait_for_selector("#resume")  # given up: a canceled run, to resume or replay
        run = api(served, "GET", f"/runs/{old}")
        assert (run["migrated_to"], run["migration_pending"]) == (None, False)
        tab.context.close()
        assert errors == [], errors


def test_a_migrated_runs_page_shows_its_version_and_links_and_offers_no_replay(
    browser: Any, tmp_path: Path
) -> None:
    """The run pages showed neither a run's version nor its migration links; a run a migration
    replaced read "canceled" and offered Replay, which started its work again beside the run
    that goes on from it (newcomer h25 F5)."""
    app = tmp_path / "versions_app.py"
    app.write_text(
        "import cronflow_actors as cf\n"
        "workflows = [\n"
        "    cf.define('inv', version=v).step('a', str).pause('approve') for v in ('v1', 'v2')\n"
        "]\n"
    )
    with serving_app(app, tmp_path) as served:
        old = api(served, "POST", "/runs", {"workflow": "inv"})["run_id"]
        eventually(lambda: api(served, "GET", f"/runs/{old}")["status"] == "waiting")
        started = api(served, "GET", f"/runs/{old}")["version"]
        other = "v1" if started == "v2" else "v2"
        new = api(served, "POST", f"/runs/{old}/migrate", {"to_version": other})["run_id"]
        tab, errors = signed_in(browser, served.url)
        tab.goto(f"{served.url}/ui/#/runs/{old}")
        tab.wait_for_selector("#migrated-to")
        assert tab.inner_text("#migrated-to") == new
        assert tab.inner_text("#version") == started
        assert tab.query_selector("#replay") is None
        tab.goto(f"{served.url}/ui/#/runs/{new}")
        tab.wait_for_selector("#migrated-from")
        assert tab.inner_text("#migrated-from") == old
        assert tab.inner_text("#version") == other
        assert tab.query_selector("#replay") is not None
        # the flow's card says the other version is there too, and no stray "null" (an app with
        # no net) ends the page (newcomer h29 F9)
        tab.goto(f"{served.url}/ui/#/workflows")
        tab.wait_for_selector("[data-flow='inv'] [data-versions]")
        said = tab.inner_text("[data-flow='inv'] [data-versions]")
        assert said.startswith("also registered: ")
        assert "new runs take" in said
        assert not tab.inner_text("main").rstrip().endswith("null")
        tab.context.close()
        assert errors == [], errors
