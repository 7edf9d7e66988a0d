"""``cronflow-actors bench``: the benchmark suite of issue 16 (cronflow-actors and its peers).

A thin edge: the suite lives in the source tree's ``benchmarks/suite`` (it is not part of the
installed package, and neither are the peers it measures), so this command runs from a
checkout installed with ``pip install -e '.[bench]'``; ``make bench-peers`` prepares the peers'
own virtualenv and the Restate server. The suite is imported only when the command runs.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
from pathlib import Path
from typing import Any

from cronflow_actors.errors import ConfigurationError

__all__ = ["add_bench_arguments", "add_bench_command", "check_bench_arguments"]

_CHECKOUT = Path(__file__).resolve().parents[2]
PEERS = ("dbos", "spiff", "restate", "prefect")


def _suite() -> Any:
    """``benchmarks.suite.runner`` from the checkout this package was installed from."""
    if not (_CHECKOUT / "benchmarks" / "suite" / "runner.py").is_file():
        said = (  # (it read as a setting named "bench" with a bad value: newcomer h44 F5)
            f"cronflow-actors bench runs the suite in a source checkout's benchmarks/suite, "
            f"and this one is installed from {_CHECKOUT}, which has none: install the "
            f"checkout with pip install -e '.[bench]' and run it from there"
        )
        raise ConfigurationError("bench", str(_CHECKOUT), said, said=said)
    if str(_CHECKOUT) not in sys.path:
        sys.path.insert(0, str(_CHECKOUT))
    return importlib.import_module("benchmarks.suite.runner")


def _bench(args: argparse.Namespace) -> int:
    check_bench_arguments(args)
    code: int = _suite().main(args)
    return code


def check_bench_arguments(args: argparse.Namespace) -> None:
    """Refuse what the suite cannot run with, before anything runs (also used by
    ``python -m benchmarks.suite.runner``)."""
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = sorted(set(peers) - set(PEERS))
    if unknown:
        raise ConfigurationError("--peers", args.peers, f"a comma-separated subset of {PEERS}")
    if args.in_flight < 1:
        raise ConfigurationError("--in-flight", args.in_flight, "a whole number of runs >= 1")
    if not 0 < args.scale < math.inf:  # runs are counted as N x scale, at least one each
        raise ConfigurationError("--scale", args.scale, "a finite number > 0 (0.5: half)")
    if args.out is not None:
        _check_out(Path(args.out))


def _check_out(out: Path) -> None:
    """The results' folder is made (with its parents) before anything runs, so a folder that
    cannot be is refused at once, not after minutes of measuring."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".written"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ConfigurationError(
            "--out", str(out), f"a folder this user can write ({error.strerror or error})"
        ) from None


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """The suite's options (also used by ``python -m benchmarks.suite.runner``)."""
    parser.add_argument("--quick", action="store_true", help="the whole suite in under 90 s")
    parser.add_argument(
        "--out", default=None, help="folder for the results (default benchmarks/results/TIME)"
    )
    parser.add_argument(
        "--peer-venv",
        default=None,
        help="virtualenv holding the peers (default benchmarks/.peers/venv when it exists, "
        "made by `make bench-peers`; else this interpreter)",
    )
    parser.add_argument(
        "--restate-server",
        default=None,
        help="the restate-server binary (default: the one `make bench-peers` installs)",
    )
    parser.add_argument(
        "--peers",
        default=",".join(PEERS),
        help=f"peers to measure, comma-separated (default {','.join(PEERS)}; '' for none)",
    )
    parser.add_argument("--no-ours", action="store_true", help="measure only the peers")
    parser.add_argument("--in-flight", type=int, default=500, help="runs in flight (500)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every run count")
    parser.add_argument("--no-chart", action="store_true", help="do not draw the PNG")
    parser.add_argument(
        "--compiled",
        action="store_true",
        help="also (a) on the engine compiled by mypyc (setup.py; needs a C compiler)",
    )


def add_bench_command(commands: Any) -> None:
    """Add ``bench`` to the CLI's subcommands."""
    bench = commands.add_parser(
        "bench",
        help="benchmark cronflow-actors against its peers (JSON lines, Markdown, PNG chart)",
        description=(
            "Run the benchmark suite: cronflow-actors' workloads (a)-(g) and the peers (DBOS, "
            "SpiffWorkflow, Restate, Prefect), one after another, all on SQLite with "
            "synchronous=FULL; ends with one JSON line of the headline figures. Workloads: "
            "(a) three trivial steps, many runs in flight; (b) ten steps; (c) a fan-out of 10 "
            "parallel steps and a join; (d) a step and a background action; (e) one run at a "
            "time (latency); (f) runs paused for a person (memory per waiting run, resume "
            "rate); (g) a restart with many runs under way (recovery time). "
            "benchmarks/README.md describes each. The full suite takes some minutes."
        ),
    )
    add_bench_arguments(bench)
    bench.set_defaults(handler=_bench)
