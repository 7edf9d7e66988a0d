"""The names a server answers to: a ``Host`` header outside them is refused (403).

A server on 127.0.0.1 is in reach of every page its user's browser opens. The cross-site check
(``requests.check_same_site``) refuses a page of another origin, but after DNS rebinding the
attacker's own name points at 127.0.0.1: the page is then of the same origin as the request
(``Origin`` and ``Host`` both name ``attacker.example``) and passes. What gives it away is the
``Host``: a server listening on a loopback address is reached by its user as ``localhost`` or
``127.0.0.1``, never by a name of the internet. So such a server answers those names (and any
``*.localhost``, which resolves to loopback) and the ones configured (``allowed_hosts``);
``"*"`` takes any. A server listening on another address (``0.0.0.0``, a LAN address) is
reached by names only its operator knows: it takes any unless ``allowed_hosts`` lists them.
An IP address as the ``Host`` always passes: rebinding puts a name there, never an address
(a probe or a scraper that calls the server by its address is never refused).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from cronflow_actors.errors import ConfigurationError
from cronflow_actors.http.problems import problem_response

__all__ = ["AllowedHosts", "allowed_hosts_for"]

_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_HOST_NAME = re.compile(r"\.?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*")
"""A DNS name (or ``.name``, the names under it), as a ``Host`` header can hold it."""


def allowed_hosts_for(bound: str, configured: Iterable[str] | None) -> list[str] | None:
    """The host names a server listening on ``bound`` answers to, with the ``configured`` ones
    (None: any name): each a name (``api.example.com``), ``*.example.com`` for the names under
    one, or ``*`` for any; ``ConfigurationError`` for one that no ``Host`` could match (a port,
    a scheme, a path)."""
    names = []
    for given in configured or ():
        name = given.strip().lower().rstrip(".")
        if name.startswith("*."):
            name = name[1:]  # the names under it, as .localhost is kept
        name = name.strip("[]")  # an IPv6 address as a Host header brackets it
        if name and name != "*" and not _HOST_NAME.fullmatch(name) and not _is_address(name):
            raise ConfigurationError(
                "allowed_hosts",
                given,
                "a host name as a Host header names it, without a scheme, port or path "
                "('api.example.com', '*.example.com' for the names under it, '*' for any)",
            )
        if name:
            names.append(name)
    if "*" in names:
        return None
    if not names and not _is_loopback(bound):
        return None
    return [*_LOOPBACK_NAMES, ".localhost", *names]


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _name_of(host_header: str) -> str:
    """The host name of a ``Host`` header, without its port (``[::1]:8000`` is ``::1``); a
    header of no such shape (``[::1]evil.example``, ``localhost:80@evil.example``) whole, which
    no allowed name matches."""
    value = host_header.strip().lower()
    if value.startswith("["):
        name, bracket, port = value[1:].partition("]")
        port = port.removeprefix(":")
        return name if bracket and (not port or port.isdigit()) else value
    name, _, port = value.partition(":")
    return name.rstrip(".") if not port or port.isdigit() else value


class AllowedHosts:
    """``Middleware(AllowedHosts, names=[...])``: a request whose ``Host`` is none of ``names``
    (a name, or ``.suffix`` for any name under it) is answered 403 ``host-not-allowed``."""

    def __init__(self, app: ASGIApp, *, names: list[str]) -> None:
        self.app = app
        self._exact = frozenset(name for name in names if not name.startswith("."))
        self._suffixes = tuple(name for name in names if name.startswith("."))
        self._answers_to = ", ".join(
            [*sorted(self._exact), *(f"*{suffix}" for suffix in self._suffixes)]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = ""
            for key, value in scope["headers"]:
                if key == b"host":
                    given = value.decode("latin-1")
                    break
            name = _name_of(given)  # (none given: an HTTP/1.0 client, never a browser)
            if (
                given
                and name not in self._exact
                and not name.endswith(self._suffixes)
                and not _is_address(name)
            ):
                answer = problem_response(
                    403,
                    "host-not-allowed",
                    f"this server does not answer to the host {given[:100]!r} (it answers to "
                    f"{self._answers_to} and any IP address): a page of another name that "
                    "reached it through DNS rebinding is refused so; to reach it by that name "
                    f"(a proxy, a name of your own), add {name!r} (the name, without its port) "
                    "to the server's allowed hosts (--allowed-host NAME, or allowed_hosts in "
                    "its settings)",
                )
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)
