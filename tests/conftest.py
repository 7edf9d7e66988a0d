from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from cronflow_actors.engine.audit import AuditRecorder
from cronflow_actors.kernel import ActorSystem, ManualClock
from tests.pg.server import PostgresUnavailableError, TemporaryPostgres

AuditRecorder.check_last_sends = True
"""Every test's transactions check that an element's last act (``Transaction.send_last``,
delivered without an audit frame) is its last: what it sets off would nest wrongly otherwise."""


@pytest.fixture
async def system() -> AsyncIterator[ActorSystem]:
    async with ActorSystem("test") as running:
        yield running


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_000_000.0)


# -- PostgreSQL: one throwaway server per session, started by the first test that needs it ------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[TemporaryPostgres]:
    """A PostgreSQL server of the session's own (tests/pg/server.py), or a skip saying why
    there is none (``make test`` installs Debian's postgresql when it is missing)."""
    try:
        server = TemporaryPostgres(fsync=False).start()
    except PostgresUnavailableError as unavailable:
        pytest.skip(f"no PostgreSQL for this test: {unavailable}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: TemporaryPostgres) -> str:
    """The URL of a new, empty database on the session's server."""
    return postgres_server.create_database()
