"""Resume tokens: what a pause hands out for its answer (``Transaction.new_token``)."""

from __future__ import annotations

import secrets

__all__ = ["random_token"]


def random_token() -> str:
    """144 random bits, URL-safe: unguessable, never derived from an id; never starting with
    ``-``, which a command line would take for an option (``cronflow-actors resume TOKEN``)."""
    while True:
        token = secrets.token_urlsafe(18)
        if token[0] != "-":
            return token
