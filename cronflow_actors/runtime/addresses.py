"""The checks of the addresses a setting names: ``serve``'s host, a client command's server."""

from __future__ import annotations

__all__ = ["check_host", "check_url", "is_loopback"]


def check_host(host: str) -> None:
    """A host with a port in it (``localhost:80``) failed only as the server could not listen,
    blamed on ``--host`` wherever it came from (ops h41 F10)."""
    import ipaddress

    name, colon, port = host.rpartition(":")
    if not colon or not port.isdigit():
        return
    try:
        ipaddress.IPv6Address(host.strip("[]"))
    except ValueError:
        raise ValueError(
            f"host {host!r} has a port in it: give the host alone ({name!r}) and the port as "
            f"port ({port})"
        ) from None


def check_url(url: str) -> None:
    """A client command's server must be an http(s) URL with a host: without its scheme,
    ``localhost:8743`` reads as the scheme ``localhost``, and the request fails as if the
    server could not be reached."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
    except ValueError as error:  # "Invalid IPv6 URL": said under the setting's name
        raise ValueError(f"url {url!r} is not a valid URL ({error})") from None
    if parts.scheme in ("http", "https") and parts.netloc:
        console = parts.path.rstrip("/").endswith("/ui")
        if console or parts.query or parts.fragment:  # the console's address: every call went
            # to /ui/runs... and came back "no route" (devx h43 F6); a proxy's prefix is kept
            base = parts.path.rstrip("/").removesuffix("/ui") if console else parts.path
            raise ValueError(
                f"url {url!r} is the console's address, not the server's: give the server's, "
                f"as in '{parts.scheme}://{parts.netloc}{base.rstrip('/')}' (the console is at "
                "its /ui)"
            )
        return
    if "://" in url:
        raise ValueError(f"url {url!r} is not an http:// or https:// URL with a host")
    raise ValueError(
        f"url {url!r} has no scheme: give it, as in 'http://{url.lstrip('/')}' (or https://)"
    )


def is_loopback(host: str) -> bool:
    """Whether ``serve`` listening on ``host`` is reached from this machine only."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a name: it may resolve anywhere
        return False
