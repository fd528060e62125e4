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
            assert storage.known_unit(session, "0010101001") is None
            storage.copy_unit(session, "0010101001", "001", "Asia/Shanghai", LI, MOVED_IN)
            storage.copy_unit(session, "0010101001", "001", "Asia/Shanghai", ZHANG,
                              MOVED_IN - timedelta(days=30))     # the earlier owner, late
            session.commit()
            assert storage.known_unit(session, "0010101001") == {
                "site": "001", "timezone": "Asia/Shanghai", "owner": LI}
    finally:
        engine.dispose()
