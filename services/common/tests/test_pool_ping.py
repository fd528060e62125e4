"""A pooled PostgreSQL connection the server dropped while it sat idle is replaced before it is
handed out (a database restart, an idle timeout, a firewall): the next request works. (One in
steady use is not pinged: a round trip saved on every request.)"""
import pytest
from sqlalchemy import text

from services.common import db
from bench.harness import PostgresDatabase

pytestmark = pytest.mark.postgres


def test_a_connection_dropped_while_idle_is_replaced_before_it_is_used(monkeypatch):
    with PostgresDatabase("propdesk_ping") as database:
        engine = db.make_engine(database.url)
        try:
            with engine.connect() as connection:
                backend = connection.execute(text("SELECT pg_backend_pid()")).scalar()
            with engine.connect() as connection:          # at once: the same one, not pinged
                assert connection.execute(text("SELECT pg_backend_pid()")).scalar() == backend
            admin = db.make_engine(database.url)               # the server drops it
            with admin.begin() as connection:
                connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
            admin.dispose()
            monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)  # as if idle for long
            with engine.connect() as connection:
                assert connection.execute(text("SELECT pg_backend_pid()")).scalar() != backend
        finally:
            engine.dispose()
