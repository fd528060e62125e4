"""Ticketing's copy of registry's units on SQLite and PostgreSQL: the migration builds it, and
an owner change that arrives before an older one is not undone by it. And what opening a ticket
does with it: the reads and the number on their own (`uow.autocommit`), the ticket written by
one INSERT at the commit, with its events in one transaction."""
from datetime import datetime, timedelta, timezone

import eventlet
import pytest
from sqlalchemy.orm import Session

from services.common.db import make_engine
from services.ticketing import storage
from bench.harness import PostgresDatabase, migrated

MOVED_IN = datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)
ZHANG = {"name": "张三", "phone": "13812345678", "email": None, "person_id": "p-zhang"}
LI = {"name": "李四", "phone": "13900000000", "email": None, "person_id": "p-li"}


def test_the_latest_change_of_a_unit_is_kept_whatever_order_its_events_arrive_in(db_url):
    engine = make_engine(migrated("ticketing", db_url))
    try:
        with Session(engine) as session:
            assert storage.opening(session, "001", "0010101001")[0] is None
            storage.copy_unit(session, "0010101001", "001", "Asia/Shanghai", LI, MOVED_IN)
            storage.copy_unit(session, "0010101001", "001", "Asia/Shanghai", ZHANG,
                              MOVED_IN - timedelta(days=30))     # the earlier owner, late
            session.commit()
            assert storage.opening(session, "001", "0010101001")[0] == {
                "site": "001", "timezone": "Asia/Shanghai", "owner": LI}
    finally:
        engine.dispose()


def test_opening_a_ticket_reads_the_copy_and_the_policy_then_the_next_number_a_rollback_gives_back(db_url):
    """What create_ticket reads before it opens a ticket (one statement): the unit's copy and
    the site's tightened limits; then the site's next number of the kind's series. A ticket given
    up on (its transaction rolled back) does not use up its number."""
    engine = make_engine(migrated("ticketing", db_url))
    try:
        with Session(engine) as session:
            assert storage.opening(session, "001", "0010101001") == (None, {})
            assert storage.next_serial(session, "001", "R") == 1
            session.commit()
            storage.copy_unit(session, "0010101001", "001", "Asia/Shanghai", LI, MOVED_IN)
            storage.save_site_policy(session, "001", {"callback_hours": 12}, MOVED_IN, "mgr-1")
            session.commit()
            unit = {"site": "001", "timezone": "Asia/Shanghai", "owner": LI}
            assert storage.opening(session, "001", "0010101001") == (unit, {"callback_hours": 12})
            assert storage.next_serial(session, "001", "R") == 2
            session.rollback()                    # e.g. the ticket's received_at was refused
            assert storage.next_serial(session, "001", "R") == 2
            assert storage.opening(session, "001", None) == (None, {"callback_hours": 12})
            assert storage.next_serial(session, "001", "C") == 1
            assert storage.opening(session, "002", "0010101001") == (unit, {})
            assert storage.next_serial(session, "002", "R") == 1
            session.commit()
    finally:
        engine.dispose()


def _ticketing(bound_database, db_url):
    return bound_database("ticketing", storage.Base, {
        "AMQP_URI": "pyamqp://guest:guest@127.0.0.1:5672/unused",
        "DB_URIS": {"ticketing": migrated("ticketing", db_url)}})


def test_a_repair_written_by_one_insert_reads_back_as_the_ticket_that_was_opened(db_url, bound_database):
    """Opening a ticket writes it by one INSERT of its columns (`uow.insert`, not the ORM's
    flush): read back, an urgent repair received Monday 09:00 at the site is the same ticket,
    deadlines, history, reporter, appointment and instants included, on both databases."""
    from sqlalchemy import select
    from services.ticketing.domain import SlaPolicy, Ticket
    database = _ticketing(bound_database, db_url)
    monday_9 = datetime(2026, 11, 23, 1, 0, tzinfo=timezone.utc)   # 09:00 in Asia/Shanghai
    opened = Ticket.open_repair(
        id="t-1", code="001-R-00001", site="001", timezone="Asia/Shanghai", channel="phone",
        description="水管漏水", received_at=monday_9, now=monday_9, first_contact_owner="agent-1",
        by_role="agent", policy=SlaPolicy(), unit="0010101001", reporter=LI, priority="urgent",
        scope="in_unit", appointment={"start": "2026-11-23T02:00:00+00:00",
                                      "end": "2026-11-23T04:00:00+00:00"}, fee="35.50")
    with database.unit() as uow:
        uow.insert(opened)
        uow.commit()
    with database.unit() as uow:
        stored = uow.session.scalars(select(Ticket).where(Ticket.id == "t-1")).one()
        assert stored == opened
        assert stored.deadlines == {"dispatch": "2026-11-23T01:03:00+00:00"}   # 09:03 there
        assert stored.received_at == monday_9 and stored.warnings == [] and stored.reopened == 0


def _repair(code, received_at=datetime(2026, 11, 23, 1, 0, tzinfo=timezone.utc), priority="normal"):
    from services.ticketing.domain import SlaPolicy, Ticket
    return Ticket.open_repair(
        id=f"t-{code}", code=code, site="001", timezone="Asia/Shanghai", channel="phone",
        description="水管漏水", received_at=received_at, now=received_at,
        first_contact_owner="agent-1", by_role="agent", policy=SlaPolicy(), unit="0010101001",
        reporter=LI, priority=priority)


def _codes(database):
    from sqlalchemy import select
    with database.engine.connect() as connection:
        return connection.execute(select(storage.tickets.c.code).order_by(storage.tickets.c.code)).scalars().all()


@pytest.mark.postgres
def test_on_postgresql_two_openings_at_one_site_do_not_wait_for_each_other_to_commit(bound_database):
    """Two agents at one front desk open repairs at the same moment: the second takes the next
    number at once, while the first has not yet written its ticket (the number's row lock
    lasts one statement, not the first opening's INSERT and COMMIT); both are written, and no
    number repeats."""
    with PostgresDatabase("propdesk_opening") as postgres:
        database = _ticketing(bound_database, postgres.url)
        with database.unit() as first:
            assert storage.next_serial(first.autocommit, "001", "R") == 1
            first.insert(_repair("001-R-00001"))
            with database.unit() as second:
                with eventlet.Timeout(5):     # a wait on the first's lock would end here
                    assert storage.next_serial(second.autocommit, "001", "R") == 2
                second.insert(_repair("001-R-00002"))
                second.commit()
            assert _codes(database) == ["001-R-00002"]
            first.commit()
        assert _codes(database) == ["001-R-00001", "001-R-00002"]
        with database.unit() as failed:                   # a crash after its number was taken
            assert storage.next_serial(failed.autocommit, "001", "R") == 3
            failed.insert(_repair("001-R-00003"))
        with database.unit() as after:                    # a gap, never a repeat
            assert storage.next_serial(after.autocommit, "001", "R") == 4


def test_a_ticket_and_the_event_it_raises_are_written_together_or_not_at_all(db_url, bound_database):
    """An urgent repair pages whoever is on call: the ticket and its event are two writes, so
    they are one transaction (the reads before them ran on their own); a unit that fails
    before its commit leaves neither, on both databases."""
    database = _ticketing(bound_database, db_url)
    for commits in (False, True):
        try:
            with database.unit() as uow:
                assert storage.opening(uow.autocommit, "001", "0010101001") == (None, {})
                urgent = _repair("001-R-00001", priority="urgent")
                urgent.page_on_call(None, urgent.received_at)     # nobody on call
                uow.insert(urgent)
                for event, data in urgent.pull_events():
                    uow.add_event(event, data, site="001")
                if not commits:
                    raise RuntimeError("the worker dies before its commit")
                uow.commit()
        except RuntimeError:
            pass
        assert _codes(database) == (["001-R-00001"] if commits else [])
        assert len(database.outbox_rows()) == (1 if commits else 0)


@pytest.mark.postgres
def test_a_connection_that_ran_statements_on_their_own_is_transactional_again_for_the_next_unit(bound_database):
    """The next worker given the same pooled connection gets a transaction again: its two
    writes and then a failure leave nothing."""
    from sqlalchemy import text as sql
    with PostgresDatabase("propdesk_lent") as postgres:
        database = _ticketing(bound_database, postgres.url)
        with database.unit() as uow:
            backend = uow.autocommit.execute(sql("SELECT pg_backend_pid()")).scalar()
            uow.insert(_repair("001-R-00001"))
            uow.commit()
        try:
            with database.unit() as uow:
                assert uow.session.execute(sql("SELECT pg_backend_pid()")).scalar() == backend
                assert storage.next_serial(uow.session, "001", "R") == 1
                assert storage.next_serial(uow.session, "001", "C") == 1
                raise RuntimeError("the worker dies before its commit")
        except RuntimeError:
            pass
        with database.unit() as uow:
            assert storage.next_serial(uow.session, "001", "R") == 1
            assert storage.next_serial(uow.session, "001", "C") == 1
        assert _codes(database) == ["001-R-00001"]
