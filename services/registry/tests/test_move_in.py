"""registry's move-in (入伙), customer-affairs assistant (客户事务助理) and warranty (保修期)
commands in a service worker on a real database (SQLite and PostgreSQL), without a broker: what
each writes to the unit and announces in the outbox for notifications to welcome the owner, tell
them of a new assistant and remind them before the warranty ends (000); what is refused, with
nothing written."""
from datetime import date, datetime, timezone
from decimal import Decimal
from types import SimpleNamespace

import pytest
from alembic import command
from nameko.testing.services import worker_factory
from sqlalchemy import column, insert, select, table

from services.common.auth import IDENTITY_KEY, CallContext
from services.common.db import make_engine
from services.common.errors import Conflict, Forbidden, NotFound, ValidationFailed
from services.common.migrate import alembic_config
from services.registry.service import RegistryService
from services.registry.storage import Base
from tests.flows import site_payload, unit_payload
from bench.harness import migrated
from tests.inprocess import identity

# 01:00 on 24 November at a site in Asia/Urumqi (UTC+6), still the 23rd in UTC.
NOW = datetime(2026, 11, 23, 19, 0, tzinfo=timezone.utc)
SITE_TODAY = "2026-11-24"
UNIT, OWNER_PHONE = "0010101001", "13812345678"
WANG = {"name": "王芳", "phone": "13900001111"}
ZHAO = {"name": "赵磊", "phone": "13900002222"}
DESK = identity("agent", sub="agent-ann")
CHANGED_FIELDS = {"unit", "change", "usage", "area_m2", "owner", "major_customer", "timezone",
                  "handover_date", "warranty_until", "moved_in_on", "assistant"}


@pytest.fixture
def registry_db(bound_database, db_url):
    """registry's Database dependency on a migrated database; its relay is not started, so
    every event stays in the outbox to be read."""
    return bound_database("registry", Base, {
        "AMQP_URI": "pyamqp://guest:guest@127.0.0.1:5672/unused",
        "DB_URIS": {"registry": migrated("registry", db_url)},
    })


@pytest.fixture
def registry(registry_db):
    """`registry(caller, command, *args)` runs the command in a fresh worker at NOW, as an RPC
    from `caller` would: its unit of work is rolled back if it raises. Site 001 and a unit
    handed over on 2025-06-30 are registered."""
    def call(caller, name, *args):
        context = {IDENTITY_KEY: caller}
        with registry_db.unit(context) as uow:
            worker = worker_factory(RegistryService, uow=uow, clock=lambda: NOW,
                                    caller=CallContext(SimpleNamespace(data=context)))
            return getattr(worker, name)(*args)

    call(identity("manager"), "create_site", {**site_payload("001"), "timezone": "Asia/Urumqi"})
    call(DESK, "create_unit", {**unit_payload(UNIT, OWNER_PHONE, owner="李伟"),
                               "handover_date": "2025-06-30"})
    return call


def announced(registry_db):
    """The payloads of registry.unit_changed in the outbox, oldest first."""
    return [row.body["data"] for row in registry_db.outbox_rows()
            if row.event == "registry.unit_changed"]


def test_a_new_unit_announces_the_sites_time_zone_its_handover_and_warranty(registry, registry_db):
    [created] = announced(registry_db)
    assert set(created) == CHANGED_FIELDS
    assert (created["change"], created["timezone"]) == ("created", "Asia/Urumqi")
    assert (created["handover_date"], created["warranty_until"]) == ("2025-06-30", "2027-06-30")
    assert (created["moved_in_on"], created["assistant"]) == (None, None)
    unit = registry(DESK, "get_unit", UNIT)
    assert (unit["warranty_until"], unit["moved_in_on"], unit["assistant"]) == (
        "2027-06-30", None, None)


def test_a_stated_warranty_is_kept(registry, registry_db):
    unit = registry(DESK, "create_unit", {
        **unit_payload("0010101002", "13987654321"),
        "handover_date": "2025-06-30", "warranty_until": "2030-06-30"})
    assert unit["warranty_until"] == "2030-06-30"
    assert announced(registry_db)[-1]["warranty_until"] == "2030-06-30"


def test_a_move_in_is_recorded_today_at_the_site_and_announced_with_owner_and_assistant(
        registry, registry_db):
    unit = registry(DESK, "record_move_in", UNIT, {"assistant": WANG})

    assert (unit["moved_in_on"], unit["assistant"]) == (SITE_TODAY, WANG)  # staff: phone in full
    assert unit["people"][0]["phone"] == "138****5678"
    created, moved_in = announced(registry_db)
    assert moved_in == {
        "unit": UNIT, "change": "moved_in", "usage": "residential", "area_m2": "89.50",
        "owner": {"name": "李伟", "phone": OWNER_PHONE, "email": None,
                  "person_id": unit["people"][0]["id"]},
        "major_customer": False, "timezone": "Asia/Urumqi", "handover_date": "2025-06-30",
        "warranty_until": "2027-06-30", "moved_in_on": SITE_TODAY, "assistant": WANG,
    }
    assert registry_db.outbox_rows()[-1].body["site"] == "001"


def test_a_move_in_on_a_past_day_keeps_that_day(registry, registry_db):
    unit = registry(DESK, "record_move_in", UNIT, {"moved_in_on": "2026-10-08", "assistant": WANG})
    assert unit["moved_in_on"] == "2026-10-08"
    assert announced(registry_db)[-1]["moved_in_on"] == "2026-10-08"


def test_a_second_move_in_is_409_and_changes_and_announces_nothing(registry, registry_db):
    registry(DESK, "record_move_in", UNIT, {"assistant": WANG})
    with pytest.raises(Conflict) as refused:
        registry(DESK, "record_move_in", UNIT, {"moved_in_on": "2026-11-01", "assistant": ZHAO})
    assert refused.value.status == 409
    assert refused.value.extra == {"unit": UNIT, "moved_in_on": SITE_TODAY}
    unit = registry(DESK, "get_unit", UNIT)
    assert (unit["moved_in_on"], unit["assistant"]) == (SITE_TODAY, WANG)
    assert [data["change"] for data in announced(registry_db)] == ["created", "moved_in"]


def test_a_new_assistant_is_announced_once(registry, registry_db):
    registry(DESK, "record_move_in", UNIT, {"assistant": WANG})
    supervisor = identity("supervisor", sub="sup-liu")
    unit = registry(supervisor, "assign_assistant", UNIT, {"assistant": ZHAO})
    again = registry(supervisor, "assign_assistant", UNIT, {"assistant": ZHAO})

    assert unit["assistant"] == again["assistant"] == ZHAO
    created, moved_in, changed = announced(registry_db)
    assert set(changed) == CHANGED_FIELDS
    assert (changed["change"], changed["assistant"]) == ("assistant_changed", ZHAO)
    assert (changed["moved_in_on"], changed["owner"]["phone"]) == (SITE_TODAY, OWNER_PHONE)


@pytest.mark.parametrize("payload, field", [
    ({"moved_in_on": SITE_TODAY}, "assistant"),
    ({"assistant": {"name": "王芳", "phone": "12"}}, "assistant"),
    ({"moved_in_on": "2026-11-25", "assistant": WANG}, "moved_in_on"),  # tomorrow at the site
    ({"moved_in_on": "24/11/2026", "assistant": WANG}, "moved_in_on"),
])
def test_a_bad_move_in_is_422_naming_the_field_and_nothing_is_written(
        registry, registry_db, payload, field):
    with pytest.raises(ValidationFailed) as refused:
        registry(DESK, "record_move_in", UNIT, payload)
    assert (refused.value.status, list(refused.value.extra["errors"])) == (422, [field])
    assert registry(DESK, "get_unit", UNIT)["moved_in_on"] is None
    assert [data["change"] for data in announced(registry_db)] == ["created"]


@pytest.mark.parametrize("caller", [
    identity("technician"),                        # not a role that edits units
    identity("resident", person_id="p-1"),
    identity("agent", sites=["002"]),              # staff of another site
])
@pytest.mark.parametrize("name, payload", [
    ("record_move_in", {"assistant": WANG}),
    ("assign_assistant", {"assistant": WANG}),
])
def test_only_unit_editors_of_the_site_record_them_and_nothing_is_written(
        registry, registry_db, caller, name, payload):
    with pytest.raises(Forbidden):
        registry(caller, name, UNIT, payload)
    unit = registry(DESK, "get_unit", UNIT)
    assert (unit["moved_in_on"], unit["assistant"]) == (None, None)
    assert len(announced(registry_db)) == 1


def test_an_unknown_unit_is_404(registry):
    with pytest.raises(NotFound):
        registry(DESK, "record_move_in", "0010109999", {"assistant": WANG})
    with pytest.raises(NotFound):
        registry(DESK, "assign_assistant", "0010109999", {"assistant": WANG})


def test_units_registered_before_have_their_warranty_run_two_years_from_handover(db_url):
    config = alembic_config("registry", db_url)
    command.upgrade(config, "44233129a5a5")  # before units had a warranty
    engine = make_engine(db_url)
    units = Base.metadata.tables["units"]
    # the units table as it was at that revision: later columns do not exist yet
    units_then = table("units", *(column(c.name, c.type) for c in units.columns if c.name in (
        "code", "site", "usage", "area_m2", "handover_date", "meters", "active",
        "transfer_watch", "created_at")))
    with engine.begin() as conn:
        conn.execute(insert(Base.metadata.tables["sites"]).values(
            code="001", name="Garden Court", timezone="Asia/Shanghai", created_at=NOW))
        conn.execute(insert(units_then), [
            {"code": code, "site": "001", "usage": "residential", "area_m2": Decimal("89.50"),
             "handover_date": handover, "meters": {}, "active": True, "transfer_watch": False,
             "created_at": NOW}
            for code, handover in (("0010101001", date(2025, 6, 30)), ("0010101002", None))])
    command.upgrade(config, "head")
    with engine.connect() as conn:
        warranties = conn.execute(select(units.c.code, units.c.warranty_until)
                                  .order_by(units.c.code)).all()
    engine.dispose()
    assert [tuple(row) for row in warranties] == [
        ("0010101001", date(2027, 6, 30)), ("0010101002", None)]
