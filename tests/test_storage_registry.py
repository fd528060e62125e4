"""Registry's storage on SQLite and on PostgreSQL: the migrations build the schema; money-like
numbers and instants come back exactly as written; an event is stored in the outbox in the same
transaction as the change that raises it, so that it exists if and only if the change does."""
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, inspect, select
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from services.common.db import make_engine
from services.common.migrate import alembic_config
from services.registry.storage import Base, Site, Unit
from bench.harness import migrated

SHANGHAI = ZoneInfo("Asia/Shanghai")
CREATED = datetime(2026, 3, 2, 9, 30, tzinfo=SHANGHAI)
UNIT_CHANGED = {"unit": "0010101001", "change": "created", "usage": "residential",
                "area_m2": Decimal("89.50"), "owner": None}


class Failure(Exception):
    """Raised by a test inside a unit of work, as a failing worker would."""


@pytest.fixture
def registry_url(db_url):
    return migrated("registry", db_url)


@pytest.fixture
def engine(registry_url):
    made = make_engine(registry_url)
    yield made
    made.dispose()


@pytest.fixture
def registry_db(bound_database, registry_url):
    """Registry's Database dependency; its relay is not started, so rows stay unpublished."""
    return bound_database("registry", Base, {
        "AMQP_URI": "pyamqp://guest:guest@127.0.0.1:5672/unused",
        "DB_URIS": {"registry": registry_url},
    })


def site(code="001"):
    return Site(code=code, name=f"Garden Court {code}", timezone="Asia/Shanghai", created_at=CREATED)


def count(engine, table):
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_migrations_build_every_table_and_reach_the_newest_revision(engine, registry_url):
    tables = set(inspect(engine).get_table_names())
    assert {"sites", "units", "persons", "occupancies", "access_log", "outbox",
            "processed_events"} <= tables

    migrated("registry", registry_url)  # a second upgrade finds nothing to do
    head = ScriptDirectory.from_config(alembic_config("registry", registry_url)).get_current_head()
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head


@pytest.mark.parametrize("area", ["89.50", "0.01", "120", "9999999999.99"])
def test_a_units_area_comes_back_as_the_decimal_written(engine, area):
    with Session(engine) as session:
        session.add(site())
        session.add(Unit(code="0010101001", site="001", usage="residential",
                         area_m2=Decimal(area), meters={}, created_at=CREATED))
        session.commit()

    with Session(engine) as session:
        stored = session.get(Unit, "0010101001").area_m2
    assert isinstance(stored, Decimal)
    assert stored == Decimal(area)
    assert str(stored) == str(Decimal(area).quantize(Decimal("0.01")))


def test_instants_come_back_timezone_aware_in_utc(engine):
    with Session(engine) as session:
        session.add(site())
        session.commit()

    with Session(engine) as session:
        created = session.get(Site, "001").created_at
    assert created.utcoffset().total_seconds() == 0
    assert created == CREATED
    assert created.isoformat() == "2026-03-02T01:30:00+00:00"


def test_an_instant_without_offset_is_refused(engine):
    with Session(engine) as session:
        session.add(Site(code="001", name="Garden Court", timezone="Asia/Shanghai",
                         created_at=datetime(2026, 3, 2, 9, 30)))
        with pytest.raises(StatementError, match="UTC offset"):
            session.commit()
    assert count(engine, Site.__table__) == 0


def test_a_change_and_its_event_are_committed_together(registry_db, engine):
    with registry_db.unit({"correlation_id": "call-42"}) as uow:
        uow.session.add(site())
        event_id = uow.add_event("registry.unit_changed", UNIT_CHANGED, site="001")
        uow.session.flush()
        # Until the commit, nobody else sees the change or its event.
        assert count(engine, Site.__table__) == 0
        assert count(engine, registry_db.outbox) == 0
        uow.commit()

    assert count(engine, Site.__table__) == 1
    [row] = registry_db.outbox_rows()
    assert (row.event_id, row.event, row.published_at) == (event_id, "registry.unit_changed", None)
    assert row.body["id"] == event_id
    assert row.body["source"] == "registry"
    assert row.body["site"] == "001"
    assert row.body["correlation_id"] == "call-42"
    assert row.body["data"]["area_m2"] == "89.50"
    assert row.created_at.utcoffset().total_seconds() == 0


def test_a_rolled_back_change_leaves_no_event(registry_db, engine):
    with pytest.raises(Failure):
        with registry_db.unit() as uow:
            uow.session.add(site())
            uow.add_event("registry.unit_changed", UNIT_CHANGED, site="001")
            uow.session.flush()
            raise Failure("the worker failed after recording the event")

    assert count(engine, Site.__table__) == 0
    assert registry_db.outbox_rows() == []


def test_a_commit_that_fails_stores_no_event(registry_db, engine):
    with registry_db.unit() as uow:
        uow.session.add(site())
        uow.commit()

    with pytest.raises(IntegrityError):
        with registry_db.unit() as uow:
            uow.session.add(site())  # the same site again: the commit breaks its primary key
            uow.add_event("registry.unit_changed", UNIT_CHANGED, site="001")
            uow.commit()

    assert count(engine, Site.__table__) == 1
    assert registry_db.outbox_rows() == []


def test_an_event_breaking_its_contract_fails_its_change(registry_db, engine):
    with pytest.raises(ValueError, match="breaks its contract"):
        with registry_db.unit() as uow:
            uow.session.add(site())
            uow.add_event("registry.unit_changed", {**UNIT_CHANGED, "unit": "12"}, site="001")
            uow.commit()

    assert count(engine, Site.__table__) == 0
    assert registry_db.outbox_rows() == []


def test_each_event_is_handled_once_per_handler(registry_db):
    with registry_db.unit() as uow:
        assert uow.first_time("event-1", "billing.on_unit_changed")
        uow.commit()

    with registry_db.unit() as uow:
        assert not uow.first_time("event-1", "billing.on_unit_changed")
        assert uow.first_time("event-1", "notifications.on_unit_changed")
        uow.commit()


def test_a_handler_that_fails_may_handle_the_event_again(registry_db):
    with pytest.raises(Failure):
        with registry_db.unit() as uow:
            assert uow.first_time("event-2", "billing.on_unit_changed")
            raise Failure("the handler failed after claiming the event")

    with registry_db.unit() as uow:
        assert uow.first_time("event-2", "billing.on_unit_changed")
