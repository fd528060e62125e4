"""The transactional outbox on the real broker: an event goes out to `<service>.events` if and
only if its change committed, exactly once, and waits out a broker that cannot be reached."""
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from nameko.standalone.events import event_dispatcher

from services.common.contracts import dump_payload
from services.common.db import COPY_FROM
from services.registry.storage import Base, Site
from tests.flows import eventually
from bench.harness import migrated

pytestmark = pytest.mark.integration

# Long enough for several polls (0.5 s) and publish attempts while the broker is unreachable.
OUTAGE_SECONDS = 3
EVENTS = 30


class Failure(Exception):
    """Raised inside a unit of work, as a failing worker would."""


@pytest.fixture
def registry_db(bound_database, service_config, vhost, broker_link):
    """Registry's Database dependency on the test's vhost, its relay running and reaching the
    broker through `broker_link`."""
    config = dict(service_config, AMQP_URI=vhost.amqp_uri_at(broker_link.server))
    database = bound_database("registry", Base, config)
    database.start_relay()
    return database


def record_unit_created(database, unit):
    """Commit a change (the unit's site) with its registry.unit_changed event; the event id."""
    with database.unit() as uow:
        uow.session.add(Site(code=unit[:3], name="Garden Court", timezone="Asia/Shanghai",
                             created_at=datetime.now(timezone.utc)))
        event_id = uow.add_event("registry.unit_changed", {"unit": unit, "change": "created"},
                                 site=unit[:3])
        uow.commit()
    return event_id


def test_a_committed_event_is_published_once_under_its_name(registry_db, event_tap):
    tap = event_tap("registry")

    event_id = record_unit_created(registry_db, "0010101001")

    [(routing_key, body)] = tap.collect(expected=1)
    assert routing_key == "unit_changed"
    assert body["id"] == event_id
    assert (body["event"], body["source"], body["site"]) == ("registry.unit_changed", "registry", "001")
    assert body["data"]["unit"] == "0010101001"
    [row] = registry_db.outbox_rows()
    assert row.published_at is not None


def test_a_bulk_change_of_many_events_publishes_each_once_as_its_contract_dumps_it(
        bound_database, service_config, db_url, event_tap):
    """Past COPY_FROM rows the outbox is written in bulk (COPY on PostgreSQL)."""
    config = dict(service_config, DB_URIS={"registry": migrated("registry", db_url)})
    registry_db = bound_database("registry", Base, config)
    registry_db.start_relay()
    tap = event_tap("registry")
    units = [f"001010{n:04d}" for n in range(COPY_FROM + 50)]
    with registry_db.unit() as uow:
        ids = uow.add_events("registry.unit_changed", [
            ({"unit": unit, "change": "updated", "area_m2": Decimal("88.50"),
              "owner": {"name": "张三", "phone": "13812345678", "email": None, "person_id": None}},
             "001") for unit in units])
        uow.commit()

    received = {body["id"]: body for _, body in tap.collect(expected=len(units))}
    assert sorted(received) == sorted(ids)
    first = received[ids[0]]
    assert first["data"] == dump_payload("registry.unit_changed", {
        "unit": units[0], "change": "updated", "area_m2": Decimal("88.50"),
        "owner": {"name": "张三", "phone": "13812345678", "email": None, "person_id": None}})[1]
    assert all(row.published_at is not None for row in registry_db.outbox_rows())


def test_a_relayed_event_is_the_message_nameko_dispatches_for_it(
        bound_database, service_config, db_url, event_tap):
    """The relay publishes the body as the outbox stores it (JSON text, not decoded and encoded
    again) and frames a batch itself: what a queue receives is what Nameko's EventDispatcher
    sends for the same event, routing key, properties and headers alike, and the same payload."""
    config = dict(service_config, DB_URIS={"registry": migrated("registry", db_url)})
    registry_db = bound_database("registry", Base, config)
    tap = event_tap("registry")
    owner = {"name": "张三", "phone": "13812345678", "email": None, "person_id": None}
    with registry_db.unit({"correlation_id": "call-42"}) as uow:
        uow.add_events("registry.unit_changed", [
            ({"unit": "0010101001", "change": "updated", "area_m2": Decimal("88.50"),
              "owner": owner}, "001")])
        uow.commit()
    [row] = registry_db.outbox_rows()
    registry_db.start_relay()
    [relayed] = tap.messages(expected=1, quiet=0)

    event_dispatcher(config, headers={"nameko.correlation_id": "call-42"})(
        "registry", "unit_changed", row.body)
    [dispatched] = tap.messages(expected=1)

    assert relayed.delivery_info["routing_key"] == dispatched.delivery_info["routing_key"]
    assert relayed.properties == dispatched.properties   # content type and encoding, persistent
    assert relayed.headers == dispatched.headers == {"nameko.correlation_id": "call-42"}
    assert relayed.payload == dispatched.payload == row.body
    assert relayed.payload["data"]["owner"] == owner


def test_a_rolled_back_change_publishes_nothing(registry_db, event_tap):
    tap = event_tap("registry")

    with pytest.raises(Failure):
        with registry_db.unit() as uow:
            uow.add_event("registry.unit_changed", {"unit": "0010101001", "change": "created"})
            raise Failure("the worker failed after recording its event")
    committed = record_unit_created(registry_db, "0020101001")

    assert [body["id"] for _, body in tap.collect(expected=1)] == [committed]


def test_an_event_waits_while_the_broker_is_unreachable_and_then_goes_out_once(
        registry_db, event_tap, broker_link):
    tap = event_tap("registry")
    first = record_unit_created(registry_db, "0010101001")
    assert [body["id"] for _, body in tap.collect(expected=1, quiet=0)] == [first]

    broker_link.cut()  # the relay's open connection drops; new ones are refused
    second = record_unit_created(registry_db, "0020101001")
    time.sleep(OUTAGE_SECONDS)
    assert [row.published_at is None for row in registry_db.outbox_rows()] == [False, True]
    # what an operator's PropdeskOutboxNotDraining alert watches: the waiting event's age
    assert oldest_age(registry_db) >= 1

    broker_link.restore()
    assert [body["id"] for _, body in tap.collect(expected=1, timeout=60)] == [second]
    eventually(registry_db.outbox_rows, lambda rows: all(r.published_at for r in rows),
               what="the outbox row marked published")
    registry_db.provider.relay.measured_at = None
    record_unit_created(registry_db, "0030101001")
    eventually(lambda: oldest_age(registry_db), lambda age: age < OUTAGE_SECONDS,
               what="the oldest waiting event's age back under the outage")


def oldest_age(database):
    """propdesk_outbox_oldest_age_seconds as the relay last set it."""
    return database.provider.relay.oldest_age._value.get()


def test_an_event_left_behind_by_a_dead_relay_is_sent_by_the_next_one(
        bound_database, service_config, event_tap):
    tap = event_tap("registry")
    died_after_commit = bound_database("registry", Base, service_config)  # its relay never ran
    left_behind = record_unit_created(died_after_commit, "0010101001")

    bound_database("registry", Base, service_config).start_relay()

    assert [body["id"] for _, body in tap.collect(expected=1)] == [left_behind]


def test_two_replicas_relaying_one_outbox_publish_each_event_once(
        bound_database, service_config, db_url, event_tap):
    config = dict(service_config, DB_URIS={"registry": migrated("registry", db_url)})
    tap = event_tap("registry")
    replicas = [bound_database("registry", Base, config) for _ in range(2)]
    for replica in replicas:
        replica.start_relay()

    sent = [record_unit_created(replicas[n % 2], f"{n + 1:03d}0101001") for n in range(EVENTS)]

    received = [body["id"] for _, body in tap.collect(expected=EVENTS)]
    assert sorted(received) == sorted(sent)


def test_published_rows_are_pruned_after_their_retention_and_unpublished_ones_never(
        bound_database, service_config, event_tap):
    """Three days of published events kept (OUTBOX_RETENTION_HOURS), then deleted; an event
    still waiting for the broker stays however old it is."""
    database = bound_database("registry", Base, dict(service_config, OUTBOX_RETENTION_HOURS=72))
    tap = event_tap("registry")
    database.start_relay()
    record_unit_created(database, "0010101001")
    tap.collect(expected=1)
    [published] = eventually(database.outbox_rows, lambda rows: rows and rows[0].published_at)
    database.provider.relay.stop()                 # what follows stays unpublished
    record_unit_created(database, "0020101001")
    relay = database.provider.relay
    published_at = published.published_at.replace(tzinfo=timezone.utc)

    assert relay.prune(published_at + timedelta(hours=71)) == 0
    assert relay.prune(published_at + timedelta(days=400)) == 1
    [waiting] = database.outbox_rows()
    assert waiting.published_at is None
