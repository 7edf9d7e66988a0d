"""The OpenTelemetry export's pieces that need no collector: the derived ids, the attribute
mapping, the endpoint setting, and what happens without the ``otel`` extra (the runtime runs
without it; asking for an export says what to install)."""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

import cronflow_actors as cf
from cronflow_actors.errors import ConfigurationError
from cronflow_actors.runtime.otel import (
    handler_span_id,
    otel_attributes,
    span_id_of,
    trace_id_of,
    traces_url,
)

ROOT = Path(__file__).resolve().parents[2]


def test_a_run_id_of_32_hex_digits_is_the_trace_id() -> None:
    run_id = uuid.uuid4().hex
    assert trace_id_of(run_id) == int(run_id, 16)
    assert f"{trace_id_of('0F' * 16):032x}" == "0f" * 16


def test_any_other_run_id_maps_to_a_documented_128_bit_hash() -> None:
    for run_id in ("order-7", "0" * 32, "g" * 32, "ab"):
        expected = hashlib.sha256(f"cronflow-actors:{run_id}".encode()).digest()[:16]
        assert trace_id_of(run_id) == int.from_bytes(expected, "big")
        assert 0 < trace_id_of(run_id) < 2**128
    assert trace_id_of("order-7") != trace_id_of("order-8")


def test_span_ids_are_64_bit_stable_and_differ_between_runs_and_handlers() -> None:
    first = span_id_of("run-a", "3.1")
    assert first == span_id_of("run-a", "3.1")
    assert first == int.from_bytes(hashlib.sha256(b"run-a\x003.1").digest()[:8], "big")
    assert 0 < first < 2**64
    assert first != span_id_of("run-b", "3.1")
    assert first != span_id_of("run-a", "3.2")
    assert handler_span_id("run-a", "run-a.w1", 1) == handler_span_id("run-a", "run-a.w1", 1)
    assert handler_span_id("run-a", "run-a.w1", 1) != handler_span_id("run-a", "run-a.w1", 2)


def test_attributes_become_otel_attribute_values_under_cronflow() -> None:
    mapped = otel_attributes(
        {
            "split": "xor",
            "ok": True,
            "n": 3,
            "huge": 2**70,
            "ratio": 0.5,
            "missing": None,
            "raw": b"\x01\xff",
            "outputs": ["a", "b"],
            "numbers": [1, 2.5],
            "ints": [1, 2],
            "mixed": [1, "a", None],
            "nested": [{"k": 1}],
            "marking": {"start": 0, "end": {"tokens": 1}},
        }
    )
    assert mapped == {
        "cronflow.split": "xor",
        "cronflow.ok": True,
        "cronflow.n": 3,
        "cronflow.huge": str(2**70),
        "cronflow.ratio": 0.5,
        "cronflow.raw": "01ff",
        "cronflow.outputs": ("a", "b"),
        "cronflow.numbers": (1.0, 2.5),
        "cronflow.ints": (1, 2),
        "cronflow.mixed": '[1,"a",null]',
        "cronflow.nested": '[{"k":1}]',
        "cronflow.marking.start": 0,
        "cronflow.marking.end.tokens": 1,
    }


def test_the_endpoint_is_a_base_url_or_the_full_traces_url() -> None:
    assert traces_url("http://localhost:4318") == "http://localhost:4318/v1/traces"
    assert traces_url("https://otel.example/") == "https://otel.example/v1/traces"
    assert (
        traces_url("http://collector:4318/custom/traces") == "http://collector:4318/custom/traces"
    )


@pytest.mark.parametrize("endpoint", ["localhost:4318", "grpc://collector:4317", "http://", ""])
def test_a_runtime_refuses_an_endpoint_that_is_not_an_http_url(endpoint: str) -> None:
    with pytest.raises(ConfigurationError, match="otel_endpoint") as refused:
        cf.Runtime(otel_endpoint=endpoint)
    assert "http:// or https:// URL" in str(refused.value)


def test_a_service_name_without_an_endpoint_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="otel_service_name"):
        cf.Runtime(otel_service_name="shop")


def test_without_the_extra_an_endpoint_is_refused_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)  # its import now fails
    with pytest.raises(ConfigurationError) as refused:
        cf.Runtime(otel_endpoint="http://127.0.0.1:4318")
    message = str(refused.value)
    assert "otel_endpoint" in message
    assert "pip install -e '.[otel]' in the cronflow-actors checkout" in message
    assert isinstance(refused.value.__cause__, ImportError)


_BLOCK_OTEL = """
import sys

class BlockOpenTelemetry:
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, BlockOpenTelemetry())
"""


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _BLOCK_OTEL + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_the_runtime_imports_and_runs_without_opentelemetry() -> None:
    result = _python(
        """
        import asyncio
        import cronflow_actors as cf

        flow = cf.define("plain").step("one", lambda ctx: 1)

        async def main():
            async with cf.Runtime(workflows=[flow]) as rt:
                print((await rt.wait(await rt.trigger("plain", {}))).status)

        asyncio.run(main())
        print("opentelemetry imported:", any(m.startswith("opentelemetry") for m in sys.modules))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["completed", "opentelemetry imported: False"]


def test_serve_with_an_otel_endpoint_without_the_extra_exits_saying_what_to_install(
    tmp_path: Path,
) -> None:
    db = tmp_path / "serve.db"
    result = _python(
        f"""
        from cronflow_actors.cli import main
        sys.exit(main(["serve", "--db", {str(db)!r}, "--otel-endpoint", "http://127.0.0.1:4318"]))
        """
    )
    assert result.returncode == 2, result.stderr
    assert "cronflow-actors: error:" in result.stderr
    assert "pip install -e '.[otel]' in the cronflow-actors checkout" in result.stderr


def test_an_export_without_the_audit_trail_says_how_little_it_sends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Started silently, it sent step spans only, with no run's structure (ops h41 F11)."""
    pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")
    caplog.set_level(logging.WARNING, "cronflow_actors.runtime.otel")
    cf.Runtime(otel_endpoint="http://127.0.0.1:4318", audit=False)
    assert "without the audit trail (--no-audit): only each step's WorkItem.run" in caplog.text
    caplog.clear()
    cf.Runtime(otel_endpoint="http://127.0.0.1:4318")
    assert "without the audit trail" not in caplog.text
