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
