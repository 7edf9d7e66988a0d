"""The README's net workflow example runs as written (on an in-memory database)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[1] / "README.md"


async def test_the_net_example_in_the_readme_runs(capsys: Any) -> None:
    text = README.read_text()
    code = text.split("## A net workflow\n\n```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code.replace('db="hire.db"', 'db=":memory:"'), "README.md", "exec"), namespace)
    await namespace["main"]()
    assert capsys.readouterr().out.strip() == "completed"


async def test_the_cronflow_example_in_the_readme_runs(capsys: Any) -> None:
    text = README.read_text()
    code = text.split("## A Cronflow-style workflow\n\n```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code.replace('db="orders.db"', 'db=":memory:"'), "README.md", "exec"), namespace)
    await namespace["main"]()
    out = capsys.readouterr().out
    assert out == "completed {'shipped': 50}\n"  # what the README's comment says it prints


async def test_the_waiting_example_in_the_readme_runs(capsys: Any) -> None:
    text = README.read_text()
    section = text.split("## One owner, and waiting that costs nothing\n", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    source = code.replace('db="approvals.db"', 'db=":memory:"')
    exec(compile(source, "README.md", "exec"), namespace)
    await namespace["main"]()
    assert capsys.readouterr().out.split() == ["shipped", "0"]


def test_the_signed_webhook_client_in_the_readme_is_accepted(tmp_path: Path) -> None:
    import httpx

    from tests.serve_edge_app import SECRET
    from tests.serving import ROOT, serving

    section = README.read_text().split("**Signed webhooks.**", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    with serving(str(ROOT / "tests" / "serve_edge_app.py"), tmp_path / "readme.db") as served:
        body, headers = namespace["signed"](SECRET, "/webhooks/signed", {"order": 7})
        url = f"{served.url}/webhooks/signed"
        assert httpx.post(url, content=body, headers=headers).status_code == 202
        assert httpx.post(url, content=body, headers=headers).status_code == 401  # a replay
        _, other = namespace["signed"]("another secret", "/webhooks/signed", {"order": 7})
        assert httpx.post(url, content=body, headers=other).status_code == 401


def _section_code(title: str, db: str) -> str:
    section = README.read_text().split(f"### {title}\n", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    return code.replace(f'db="{db}"', 'db=":memory:"')


async def test_the_limits_and_secrets_example_in_the_readme_runs(
    capsys: Any, monkeypatch: Any
) -> None:
    monkeypatch.setenv("MAIL_API_KEY", "test-key")  # so the example's setdefault leaves no trace
    namespace: dict[str, Any] = {}
    code = _section_code("Limits, queues and secrets", "mail.db")
    exec(compile(code, "README.md", "exec"), namespace)
    await namespace["main"]()
    assert capsys.readouterr().out.splitlines() == [
        "{'to': 'ada@example.com', 'signed': True}",
        "[('weekly-digest', 'weekly-digest', []), ('welcome-email', 'Welcome e-mail', ['email'])]",
    ]


async def test_the_replay_and_state_example_in_the_readme_runs(capsys: Any) -> None:
    namespace: dict[str, Any] = {}
    code = _section_code("Replays and state shared across runs", "payments.db")
    exec(compile(code, "README.md", "exec"), namespace)
    await namespace["main"]()
    assert capsys.readouterr().out.splitlines() == [
        "receipt for 50",
        "receipt for 0",
        "True",
        "1",
    ]


async def test_the_more_constructs_example_in_the_readme_runs(capsys: Any) -> None:
    section = README.read_text().split("### More constructs:", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    await namespace["main"]()
    assert capsys.readouterr().out.splitlines() == [
        "completed [12.0, 24.0]",
        "checks skipped: builtins.ZeroDivisionError",
        "5.0",
    ]


async def test_the_audit_trail_example_in_the_readme_runs(capsys: Any) -> None:
    section = README.read_text().split("## The audit trail:", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    source = code.replace('db="greet.db"', 'db=":memory:"').replace("asyncio.run(main())", "")
    exec(compile(source, "README.md", "exec"), namespace)
    await namespace["main"]()
    *tree, then = capsys.readouterr().out.strip().splitlines()
    assert tree[0].startswith("trace ")
    assert any("Task.complete shout started -> completed" in line for line in tree)
    assert any("Workflow.complete" in line for line in tree)
    assert then.split() == ["started", "started"]


async def test_the_first_flow_in_the_readme_runs() -> None:
    """The newcomer's five-minute flow: approved, it pays once with its step's key; refused,
    it pays nothing; a bad amount fails at once, not after retries."""
    import cronflow_actors as cf

    section = README.read_text().split("### Your first flow, in five minutes", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    async with cf.Runtime(workflows=namespace["workflows"]) as rt:
        outputs = []
        for approved in (True, False):
            run_id = await rt.trigger("refunds", {"amount": 40})
            await rt.wait_idle()
            [pause] = await rt.list_paused()
            await rt.resume(pause.token, {"approved": approved, "approved_by": "ada"})
            outputs.append((await rt.wait(run_id, timeout=5)).output)
        assert outputs[0] == {"paid": 40, "key": f"{outputs[0]['key'].split('.')[0]}.w4"}
        assert outputs[1]["approved"] is False  # the human step's record: nothing paid
        bad = await rt.trigger("refunds", {"amount": 0})
        failed = await rt.wait(bad, timeout=5)
        assert (failed.status, (await rt.inspect(bad)).steps[0].attempts) == ("failed", 1)


def test_the_readme_s_resume_commands_say_a_decision() -> None:
    """A bare `cronflow-actors resume TOKEN` is refused: each the README shows parses, and
    decides (newcomer h23)."""
    import shlex

    from cronflow_actors.cli.main import build_parser

    lines = [
        line.split("#", 1)[0]
        for line in README.read_text().splitlines()
        if line.startswith("cronflow-actors resume ")
    ]
    assert lines
    for line in lines:
        args = build_parser().parse_args(shlex.split(line)[1:])
        assert args.approved is not None or "approved" in (args.payload or ""), line


async def test_the_event_waiting_net_in_the_readme_runs(capsys: Any) -> None:
    text = README.read_text()
    section = text.split("### A net that waits for an event, or a person\n", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code.replace('db="offer.db"', 'db=":memory:"'), "README.md", "exec"), namespace)
    await namespace["main"]()
    assert capsys.readouterr().out.split() == ["completed", "completed"]
