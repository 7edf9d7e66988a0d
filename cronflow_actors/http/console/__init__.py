"""The web console: pages under ``/ui`` (``/`` redirects there) that show runs, their steps
and nets, paused runs, flows and their schedules, and publish events, through the HTTP API.

Every asset is a file of this package (``static/``), served by the runtime: no CDN, no build
step. The pages are a shell that holds no data; the data comes from the API, called from the
page's script.

**How the console authenticates, and why not with a cookie.** With tokens configured, the
console asks for a bearer token (one of the API's, with its scopes), keeps it in the tab's
``sessionStorage`` (gone when the tab closes) and sends it as ``Authorization: Bearer <token>``
on each API call: it is exactly the API's authentication, nothing new to check. The browser
never attaches that header by itself, unlike a cookie, so a page of another site cannot make
an authenticated request in the user's name: there is no cross-site request forgery to defend
against, and no session or CSRF token to keep on the server. (The API also takes only
``application/json`` bodies, which a cross-site form cannot send, and sends no CORS headers,
so another site cannot read its answers either.) The risk a token in ``sessionStorage`` keeps is
script injected into the console; the pages forbid every script but their own
(``Content-Security-Policy``) and the script writes data into the page as text, never as HTML.
"""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from cronflow_actors.http.problems import problem_response

__all__ = ["ASSETS", "PATHS", "routes"]

_MEDIA = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}

ASSETS = ("index.html", "app.js", "net.js", "app.css", "favicon.svg")
"""The console's files, in ``static/``."""

PATHS = ("/", "/ui", "/ui/", "/ui/{asset}")
"""The paths the console serves (they are not part of the API or its OpenAPI document)."""


def _load() -> dict[str, tuple[bytes, str]]:
    folder = resources.files(__name__).joinpath("static")
    found = {}
    for name in ASSETS:
        suffix = name[name.rindex(".") :]
        found[name] = (folder.joinpath(name).read_bytes(), _MEDIA[suffix])
    return found


def routes() -> list[Route]:
    """The console's routes: open (the pages hold no data; the API calls they make carry the
    token), GET and HEAD only."""
    assets = _load()

    def asset(name: str) -> Response:
        body, media = assets[name]
        return Response(body, media_type=media, headers=_HEADERS)

    async def to_console(_request: Request) -> Response:
        return RedirectResponse("/ui/", status_code=307)

    async def index(_request: Request) -> Response:
        return asset("index.html")

    async def static(request: Request) -> Response:
        name = request.path_params["asset"]
        if name not in assets:
            return problem_response(404, "no-route", f"the console has no file {name!r}")
        return asset(name)

    return [
        Route("/", to_console, methods=["GET"]),
        Route("/ui", to_console, methods=["GET"]),
        Route("/ui/", index, methods=["GET"]),
        Route("/ui/{asset}", static, methods=["GET"]),
    ]
