import eventlet; eventlet.monkey_patch()  # noqa: E702,I001 — before anything imports socket or threading

# Fixtures shared by every test folder (services/*/tests and tests/): databases on SQLite and on
# PostgreSQL, and a service's unit of work on its own. The broker and whole-system fixtures are
# in tests/conftest.py. pytest runs with `-p no:nameko`.
import pytest  # noqa: E402

from services.common.db import make_engine  # noqa: E402
from tests.inprocess import BoundDatabase  # noqa: E402
from bench.harness import PostgresDatabase, migrated, sqlite_url  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_calendar():
    """Each test starts as a fresh process does: no year entered (in-process services share it)."""
    from services.common import calendar
    calendar.forget_entered()
    yield
    calendar.forget_entered()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """An empty database (not migrated: see bench.harness.migrated), on SQLite and PostgreSQL."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "test.db")
        return
    with PostgresDatabase() as database:
        yield database.url


@pytest.fixture
def bound_database():
    """`bound_database(service, base, config)`: a service's Database dependency on its own."""
    made = []

    def bind(service, base, config):
        made.append(BoundDatabase(service, base, config))
        return made[-1]

    yield bind
    for database in made:
        database.close()


@pytest.fixture
def migrated_engine(db_url):
    """`migrated_engine(service)`: an engine on the test's database (SQLite and PostgreSQL) with
    `service`'s schema upgraded to its newest migration; disposed after the test."""
    engines = []

    def make(service):
        engines.append(make_engine(migrated(service, db_url)))
        return engines[-1]

    yield make
    for engine in engines:
        engine.dispose()


@pytest.fixture
def notifications_db(migrated_engine):
    """notifications' schema, for its tests without a broker."""
    return migrated_engine("notifications")


@pytest.fixture
def notifications(notifications_db):
    """`notifications(settings=None, now=..., identity=..., delivery=...)`: a fresh worker per
    call on `notifications_db`, as Nameko makes one per message or RPC."""
    from services.notifications.tests.support import workers
    with workers(notifications_db) as make:
        yield make
