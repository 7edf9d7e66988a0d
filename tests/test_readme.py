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
    assert "status=<RunStatus.COMPLETED: 'completed'>" in out
    assert "output={'shipped': 50}" in out


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
        body, headers = namespace["signed"](SECRET, {"order": 7})
        url = f"{served.url}/webhooks/signed"
        assert httpx.post(url, content=body, headers=headers).status_code == 202
        assert httpx.post(url, content=body, headers=headers).status_code == 401  # a replay
        _, other = namespace["signed"]("another secret", {"order": 7})
        assert httpx.post(url, content=body, headers=other).status_code == 401
