"""Ticketing's copy of registry's units on SQLite and PostgreSQL: the migration builds it, and
an owner change that arrives before an older one is not undone by it."""
from datetime import datetime, timedelta, timezone

from sqlalchemy.orm import Session

from services.common.db import make_engine
from services.ticketing import storage
from bench.harness import migrated

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


def test_a_repair_written_by_one_insert_reads_back_as_the_ticket_that_was_opened(db_url, bound_database):
    """Opening a ticket writes it by one INSERT of its columns (`uow.insert`, not the ORM's
    flush): read back, an urgent repair received Monday 09:00 at the site is the same ticket,
    deadlines, history, reporter, appointment and instants included, on both databases."""
    from sqlalchemy import select
    from services.ticketing.domain import SlaPolicy, Ticket
    url = migrated("ticketing", db_url)
    database = bound_database("ticketing", storage.Base, {
        "AMQP_URI": "pyamqp://guest:guest@127.0.0.1:5672/unused", "DB_URIS": {"ticketing": url}})
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
