"""Restate: workload a (three steps, bounded in flight) and e (one at a time), written as
Restate's Python documentation shows a user:

- a ``restate.Service`` whose handler journals each step with ``ctx.run_typed``
  (https://docs.restate.dev/develop/python/durable-steps);
- the service served as an ASGI app by Hypercorn (``restate.app``) and registered with the
  server's admin API (https://docs.restate.dev/develop/python/serving,
  https://docs.restate.dev/operate/registration);
- each run is a request to the ingress, answered when the handler has finished
  (https://docs.restate.dev/invoke/http).

The server is the binary of the npm package ``@restatedev/restate-server-linux-x64``, on
loopback ports picked here, with its data in a temporary folder. Restate keeps its journal in
its own log and RocksDB, not SQLite: the defaults keep RocksDB's WAL fsync on
(``rocksdb-disable-wal-fsync = false``), which is its durable setting; the record says so.

    python restate_peer.py --server PATH --runs N --in-flight K
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import httpx
import restate
from hypercorn.asyncio import serve
from hypercorn.config import Config

from benchmarks.suite.record import drive, emit, record

ENGINE = "restate"
bench = restate.Service("Bench")


async def inc(x: int) -> int:
    return x + 1


@bench.handler()
async def three(ctx: restate.Context, n: int) -> int:
    x = await ctx.run_typed("s1", inc, x=n)
    x = await ctx.run_typed("s2", inc, x=x)
    return await ctx.run_typed("s3", inc, x=x)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_until(check: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if await check():  # type: ignore[operator]
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"not ready after {seconds} s")
        await asyncio.sleep(0.2)


def start_server(binary: str, folder: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    """The Restate server on free loopback ports; returns it, its ingress and admin ports."""
    ingress, admin, node = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "RESTATE_INGRESS__BIND_ADDRESS": f"127.0.0.1:{ingress}",
        "RESTATE_ADMIN__BIND_ADDRESS": f"127.0.0.1:{admin}",
        "RESTATE_BIND_PORT": str(node),
        "RESTATE_BIND_IP": "127.0.0.1",
        "RESTATE_ADVERTISED_HOST": "127.0.0.1",
        "RESTATE_DISABLE_TELEMETRY": "true",
        "RESTATE_LOG_FILTER": "error",
    }
    with (folder / "server.log").open("w") as log:
        server = subprocess.Popen(
            [str(Path(binary).resolve()), "--no-logo", "--listen-mode", "tcp"],
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return server, ingress, admin


async def main_async(args: argparse.Namespace, ingress: int, admin: int) -> None:
    sdk = free_port()
    config = Config()
    config.bind = [f"127.0.0.1:{sdk}"]
    config.h2_max_concurrent_streams = 10_000
    config.loglevel = "ERROR"
    stop = asyncio.Event()
    app_task = asyncio.create_task(serve(restate.app([bench]), config, shutdown_trigger=stop.wait))
    limits = httpx.Limits(max_connections=args.in_flight, max_keepalive_connections=args.in_flight)
    try:
        async with httpx.AsyncClient(timeout=120, limits=limits) as client:

            async def admin_up() -> bool:
                return (await client.get(f"http://127.0.0.1:{admin}/health")).status_code == 200

            await wait_until(admin_up, 60)
            registered = await client.post(
                f"http://127.0.0.1:{admin}/deployments",
                json={"uri": f"http://127.0.0.1:{sdk}", "use_http_11": False},
            )
            registered.raise_for_status()
            wrong: list[str] = []

            async def one(_number: int) -> None:
                answer = await client.post(f"http://127.0.0.1:{ingress}/Bench/three", json=7)
                if answer.status_code != 200 or answer.json() != 10:
                    wrong.append(f"{answer.status_code} {answer.text[:100]}")

            async def ingress_up() -> bool:
                await one(0)
                return not wrong

            await wait_until(ingress_up, 60)
            wrong.clear()
            await drive(one, 50, 10)  # warm up
            for workload, in_flight in (("a", args.in_flight), ("e", 1)):
                wrong.clear()
                elapsed, latencies = await drive(one, args.runs, in_flight)
                if wrong or len(latencies) != args.runs:
                    rec = record(
                        ENGINE,
                        workload,
                        runs=args.runs,
                        in_flight=in_flight,
                        status="failed",
                        note=f"{len(wrong)} runs wrong, e.g. {wrong[:2]}",
                    )
                else:
                    rec = record(
                        ENGINE,
                        workload,
                        runs=args.runs,
                        in_flight=in_flight,
                        elapsed_s=elapsed,
                        latencies_s=latencies,
                        steps_per_run=3,
                        durability="Restate's own log and RocksDB, WAL fsync on (its default)",
                    )
                emit(rec)
    finally:
        stop.set()
        await app_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True, help="the restate-server binary")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--in-flight", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="restate-bench-") as folder:
        server, ingress, admin = start_server(args.server, Path(folder))
        try:
            asyncio.run(main_async(args, ingress, admin))
        except Exception as error:
            tail = (
                (Path(folder) / "server.log").read_text()[-300:]
                if (Path(folder) / "server.log").exists()
                else ""
            )
            print(f"{type(error).__name__}: {error} {tail}", file=sys.stderr)
            raise
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()


if __name__ == "__main__":
    main()
