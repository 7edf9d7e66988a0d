"""The uvicorn server around the app: limits and timeouts, a drain on the first signal, and
``/metrics`` on a port of its own when asked.

Limits: a connection must send its request's headers within ``header_timeout`` seconds (a
slow or half-open client is disconnected; it cannot hold a connection, or the shutdown, for
ever), its body within ``body_timeout`` (the app answers 408), must take what it is sent as the
server writes it (an answer whose client takes none of it from the server's buffers for
``send_timeout`` seconds is dropped with its connection: an 8 MB page, held for a client that
never reads, held its memory for as long as the client liked), and may stay idle between
requests for ``keep_alive`` seconds; beyond ``max_connections`` at once new requests get 503.
The first SIGTERM/SIGINT/SIGHUP drains (no new connections, requests in flight finish, the runtime
stops within the drain timeout); a second one aborts the drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, Literal

import h11
import msgspec
import uvicorn
from uvicorn.protocols.http import h11_impl
from uvicorn.protocols.http.h11_impl import H11Protocol

from cronflow_actors.errors import ConfigurationError
from cronflow_actors.http.held import held_at
from cronflow_actors.http.instrumentation import RequestMetrics

__all__ = ["ServerLimits", "run_servers"]


class ServerLimits(msgspec.Struct, frozen=True, kw_only=True):
    header_timeout: float = 10.0
    send_timeout: float = 30.0
    keep_alive: float = 5.0
    max_connections: int = 1000
    drain_timeout: float = 30.0


def header_timeout_protocol(
    seconds: float, send_timeout: float = 30.0, on_unread: Callable[[], None] | None = None
) -> type[H11Protocol]:
    """uvicorn's HTTP/1.1 protocol, with a deadline for each request's headers, and one for an
    answer its client does not take (``send_timeout``: the transport's buffer over its high-water
    mark, its writing paused, that long). ``on_unread`` is called for each request it answers
    400 as unreadable (which never reaches the app, and its metrics)."""

    class HeaderTimeoutProtocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None
        _partial = False
        """Whether a request's head has begun to arrive, not yet whole."""
        _send_timer: asyncio.TimerHandle | None = None
        _waiting = 0
        """Bytes in the transport's buffer when the send timer was (re)armed."""

        def pause_writing(self) -> None:  # the client reads slower than we write
            super().pause_writing()
            if self._send_timer is None:
                self._arm_send_timer()

        def _arm_send_timer(self) -> None:
            self._waiting = self.transport.get_write_buffer_size()
            self._send_timer = self.loop.call_later(send_timeout, self._not_read)

        def resume_writing(self) -> None:
            super().resume_writing()
            self._stop_send_timer()

        def _stop_send_timer(self) -> None:
            if self._send_timer is not None:
                self._send_timer.cancel()
                self._send_timer = None

        def _not_read(self) -> None:
            """The client has taken nothing of its answer for ``send_timeout`` s (the buffer,
            over its mark, no smaller than then): drop the connection and what waits in its
            buffer (a close would keep it until it is sent). One that took some is given as
            long again: a slow reader gets its answer, one that stopped reading does not."""
            self._send_timer = None
            waiting = self.transport.get_write_buffer_size()
            if not waiting:
                return
            if waiting < self._waiting:  # it read some meanwhile
                self._arm_send_timer()
                return
            self.logger.warning(
                "a client at %s took none of its answer for %.0f s (%d bytes waiting): its "
                "connection is dropped (--send-timeout)",
                _peer(self.transport),
                send_timeout,
                waiting,
            )
            self.transport.abort()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            self._stop_send_timer()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._between_requests():
                self._arm()  # a new request begins: its headers get the same deadline
            super().data_received(data)
            self._partial = self._between_requests()  # a head begun, not yet whole
            if not self._partial:
                self._disarm()

        def _between_requests(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

        def _arm(self) -> None:
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(seconds, self._late)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _late(self) -> None:
            """The headers' deadline: an idle connection is closed; one whose request's head
            has begun is answered 408 first (it was closed with no answer, where a slow body is
            a 408: hostile h45 F7)."""
            self._header_timer = None
            if not self._between_requests() or self.transport.is_closing():
                return
            if self._partial:
                self.transport.write(_HEAD_LATE)
                if on_unread is not None:
                    on_unread()
            self.transport.close()

        def send_400_response(self, msg: str) -> None:
            """What h11 cannot read as a request (a malformed line or header, a bad
            Content-Length, a header block over its limit) is a problem too, as every other
            error: it was uvicorn's text/plain (hostile h38 F3). The connection closes."""
            headers = [(b"content-type", b"application/problem+json"), (b"connection", b"close")]
            answer = h11.Response(status_code=400, headers=headers, reason=b"Bad Request")
            for event in (answer, h11.Data(data=_MALFORMED), h11.EndOfMessage()):
                self.transport.write(self.conn.send(event) or b"")
            if on_unread is not None:  # (counted nowhere: metrics h41 F4)
                on_unread()
            self.transport.close()

        def _unsupported_upgrade_warning(self) -> None:
            # a client asking to switch protocols gets plain HTTP; nothing for an operator
            self.logger.debug("an upgrade request was answered as plain HTTP")

    return HeaderTimeoutProtocol


def _peer(transport: asyncio.BaseTransport) -> str:
    """Where a connection comes from, for a log line ("?" when the socket does not say)."""
    peer = transport.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "?"


_MALFORMED = msgspec.json.encode(
    {
        "type": "urn:cronflow:problem:malformed-request",
        "title": "Bad request",
        "status": 400,
        "detail": "the request cannot be read as HTTP/1.1: a malformed request line or header, "
        "a Content-Length that is no number, or a header block too large to read (past 16 KiB "
        "it may be)",
    }
)

_LATE = msgspec.json.encode(
    {
        "type": "urn:cronflow:problem:header-timeout",
        "title": "Request timeout",
        "status": 408,
        "detail": "the request's headers did not arrive within the server's header timeout "
        "(--header-timeout); send them at once",
    }
)
_HEAD_LATE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/problem+json\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(_LATE), _LATE)
)

_BUSY = msgspec.json.encode(
    {
        "type": "urn:cronflow:problem:too-busy",
        "title": "Service unavailable",
        "status": 503,
        "detail": "the server is at its connection limit (max_connections); retry later",
    }
)


async def _too_busy(_scope: Any, _receive: Any, send: Any) -> None:
    """The answer beyond ``max_connections``: a problem like every other error of the API."""
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(_BUSY)).encode()),
                (b"retry-after", b"1"),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _BUSY, "more_body": False})


def _alive_when_busy(app: Any, too_busy: Any) -> Any:
    """The answer beyond ``max_connections``: ``too_busy``, but for the liveness probe, which
    the app answers as always: a 503 there under a flood of connections would have a
    supervisor restart a healthy server (``/readyz`` says 503 then, as it should: take no
    more work here)."""

    async def answer(scope: Any, receive: Any, send: Any) -> None:
        if scope.get("path") == "/healthz":
            await app(scope, receive, send)
        else:
            await too_busy(scope, receive, send)

    return answer


_HANGUP = getattr(signal, "SIGHUP", None)
"""Drains too (a closed terminal, a supervisor's stop), where there is one, unless it is ignored
(``nohup``): its default ends the process at once, without a drain, leaving the database lease
held until it expires."""


class DrainingServer(uvicorn.Server):
    """The first SIGTERM/SIGINT/SIGHUP drains (``stop()``); a second one aborts the drain
    (``on_abort``: the runtime stops waiting for running steps) and cuts the connections whose
    requests are still in flight, so the shutdown goes on at once. Either way a watchdog ends
    the process if it is still there ``grace`` seconds after the drain's deadline."""

    def __init__(
        self,
        config: uvicorn.Config,
        on_abort: Callable[[], None],
        *,
        on_drain: Callable[[], None] | None = None,
        grace: float = 10.0,
        process_ends: bool = False,
    ) -> None:
        super().__init__(config)
        self._on_abort = on_abort
        self._process_ends = process_ends
        """The process ends with the server (``serve``'s CLI): the stop signals stay handled
        (ignored) once it has stopped, where they went back to their default action and one
        more SIGTERM during the exit's last steps (the loop's threads joined) ended the
        process as killed (-15) instead of with the code it chose. The watchdog still ends a
        process stuck there."""
        self._on_drain = on_drain
        """Called on the loop as the drain begins, before the requests in flight are waited for
        (the runtime's line of new runs fails, so none of them holds the drain up)."""
        self._grace = grace
        self._signals = 0  # counted here: ``should_exit`` may also be set by the runtime failing
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watchdog: threading.Thread | None = None
        self._loop_thread: int | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        await super().serve(sockets)

    def stop(self) -> None:
        """Drain and stop (as the first signal does); safe from any thread."""
        self.should_exit = True
        if self._on_drain is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._on_drain)
            self._on_drain = None
        if self._watchdog is None:
            deadline = self.config.timeout_graceful_shutdown or 0
            self._watchdog = threading.Thread(
                target=_end_after,
                args=(deadline, self._grace, self._loop_thread),
                daemon=True,
                name="watchdog",
            )
            self._watchdog.start()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        def handle(_signum: int, _frame: FrameType | None) -> None:
            self._signals += 1
            self.stop()
            if self._signals > 1:
                self._on_abort()
                if self._loop is not None:
                    self._loop.call_soon_threadsafe(self._cut_connections)

        stopping = [signal.SIGINT, signal.SIGTERM]
        if _HANGUP is not None and signal.getsignal(_HANGUP) is not signal.SIG_IGN:
            stopping.append(_HANGUP)
        previous = {sig: signal.signal(sig, handle) for sig in stopping}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, signal.SIG_IGN if self._process_ends else handler)

    def _cut_connections(self) -> None:
        """Requests in flight are dropped (their clients see the connection close)."""
        for connection in list(self.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None and not transport.is_closing():
                transport.close()


def _listen(config: uvicorn.Config, setting: str) -> socket.socket:
    """The socket ``config`` serves on, bound (and logged); ``ConfigurationError`` naming
    ``setting``, the address and the system's reason if it cannot be."""
    sock = None
    try:
        # the host's first address (a name, IPv4 or IPv6; "" is every address)
        family, kind, _, _, address = socket.getaddrinfo(
            config.host or None, config.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as error:  # socket.gaierror too: a name that is no address
        if sock is not None:
            sock.close()
        if isinstance(error, socket.gaierror) or error.errno == errno.EADDRNOTAVAIL:
            raise ConfigurationError(
                "host", config.host, f"an address of this machine ({error.strerror or error})"
            ) from None
        raise ConfigurationError(
            setting,
            config.port,
            f"a port no other process listens on at {config.host} (the system said: "
            f"{error.strerror or error})",
        ) from None
    sock.set_inheritable(True)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    serves = "/metrics only" if setting == "metrics_port" else "the API"  # which is which
    # bound, not yet answering: the runtime starts next, and may refuse (a database another
    # process owns); "serving ..." says it answers
    logging.getLogger("uvicorn.error").info(
        "Uvicorn bound to http://%s:%d (%s); connections are refused until the runtime has started",
        shown,
        port,
        serves,
    )
    return sock


def _end_after(deadline: float, grace: float, loop_thread: int | None = None) -> None:
    """The last resort of a stop that does not finish: the process ends (exit code 1)."""
    time.sleep(deadline + grace)
    print(
        f"cronflow-actors: still running {deadline + grace:g} s after the stop began (the "
        f"drain's {deadline:g} s and {grace:g} s more); exiting with what was still running "
        "left unfinished: its runs are durable, and the next start carries them on (a step "
        f"that was running runs again){held_at(loop_thread)}",
        file=sys.stderr,
        flush=True,
    )
    os._exit(1)


class _QuietServer(uvicorn.Server):
    """A second server in the process: the first one owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def config_for(
    app: Any,
    *,
    host: str,
    port: int,
    limits: ServerLimits,
    log_level: str,
    lifespan: Literal["on", "off"],
    on_unread: Callable[[], None] | None = None,
) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=header_timeout_protocol(limits.header_timeout, limits.send_timeout, on_unread),
        log_level=log_level,
        log_config=None,
        lifespan=lifespan,
        timeout_keep_alive=max(1, round(limits.keep_alive)),
        # uvicorn counts the connection that asks too: N served at once means N + 1 here
        limit_concurrency=limits.max_connections + 1,
        timeout_graceful_shutdown=max(1, round(limits.drain_timeout)),
    )


def run_servers(
    app: Any,
    *,
    host: str,
    port: int,
    limits: ServerLimits,
    log_level: str,
    on_abort: Callable[[], None],
    on_drain: Callable[[], None] | None = None,
    metrics: tuple[Any, int] | None = None,
    started: Callable[[uvicorn.Server], None] | None = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    count_too_busy: Callable[[Any], RequestMetrics] | None = None,
    process_ends: bool = False,
) -> DrainingServer:
    """Serve ``app`` (and ``metrics``, an app and its port) until a signal, or until
    ``should_exit`` is set on the main server (``started`` is given it, to do that), on the
    event loop ``loop_factory`` makes (asyncio's own if None); returns the main server once
    both have stopped. ``count_too_busy`` wraps the answer beyond ``max_connections`` (an
    ASGI app) in what counts it (the app's request metrics), which counts the requests the
    server cannot read too."""
    too_busy = None if count_too_busy is None else count_too_busy(_too_busy)
    unread = None if too_busy is None else too_busy.count_unread
    main = DrainingServer(
        config_for(
            app,
            host=host,
            port=port,
            limits=limits,
            log_level=log_level,
            lifespan="on",
            on_unread=unread,
        ),
        on_abort,
        on_drain=on_drain,
        process_ends=process_ends,
    )
    if started is not None:
        started(main)
    side = None
    if metrics is not None:
        metrics_app, metrics_port = metrics
        side = _QuietServer(
            config_for(
                metrics_app,
                host=host,
                port=metrics_port,
                limits=limits,
                log_level=log_level,
                lifespan="off",
            )
        )

    # Listen before the runtime starts (the app's lifespan): a port in use, or an address not
    # this machine's, ends the process before recovery has started any run's step in it.
    listening = [_listen(main.config, "port")]
    side_listening = None
    if side is not None:
        try:
            side_listening = [_listen(side.config, "metrics_port")]
        except ConfigurationError:
            listening[0].close()
            raise

    async def both() -> None:
        task = asyncio.create_task(side.serve(side_listening)) if side is not None else None
        try:
            await main.serve(listening)
        finally:
            if side is not None and task is not None:
                side.should_exit = True
                await task

    # uvicorn answers requests beyond its concurrency limit with this module's app
    busy = _alive_when_busy(app, _too_busy if too_busy is None else too_busy)
    h11_impl.service_unavailable = busy  # type: ignore[attr-defined]
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(both())
    return main
