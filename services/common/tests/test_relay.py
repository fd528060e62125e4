"""The outbox relay's batches against a stand-in broker, on SQLite and PostgreSQL: a drain
sends each batch once the one before is confirmed, in order, and marks every row; a failed
batch marks what was confirmed and releases the rest, with the batch claimed behind it; and a
batch whose lease lapsed while the relay waited on the broker is not sent, so two relays never
publish the same row."""
import json
import time
from datetime import datetime, timezone

import pytest
from sqlalchemy import insert, select

from services.common.contracts import envelope
from services.common.db import OutboxRelay
from services.common.publish import NotConfirmed
from services.registry.storage import Base

OUTBOX = Base.metadata.tables["outbox"]


class Broker:
    """Stands in for ConfirmedPublisher: keeps the event ids of each batch sent; `on_wait(n)`
    runs while the relay waits for the confirms of the nth batch (from 1)."""

    def __init__(self, on_wait=lambda n: None):
        self.batches, self.on_wait = [], on_wait

    def send(self, messages):
        self.batches.append(messages)

    def wait(self):
        self.on_wait(len(self.batches))

    def close(self):
        pass

    def sent(self):
        return [json.loads(body)["id"] for batch in self.batches for body, _, _ in batch]


@pytest.fixture
def outbox(migrated_engine):
    """`outbox(events)`: a registry outbox holding `events` committed events; their ids in
    order, and the engine as `outbox.engine`."""
    engine = migrated_engine("registry")

    def fill(events):
        now = datetime.now(timezone.utc)
        bodies = [envelope("registry.unit_changed", {"unit": f"001{n:07d}", "change": "updated"},
                           site="001", occurred_at=now, correlation_id=f"call-{n}")
                  for n in range(events)]
        with engine.begin() as conn:
            conn.execute(insert(OUTBOX), [{"event_id": body["id"], "event": body["event"],
                                           "body": body, "created_at": now} for body in bodies])
        return [body["id"] for body in bodies]

    fill.engine = engine
    return fill


def relay_of(engine, broker, batch=3, lease_seconds=10):
    relay = OutboxRelay(engine, OUTBOX, {"AMQP_URI": "pyamqp://unused",
                                         "OUTBOX_LEASE_SECONDS": lease_seconds}, "registry")
    relay.BATCH, relay.publisher = batch, broker
    return relay


def rows(engine):
    with engine.connect() as conn:
        return conn.execute(select(OUTBOX.c.event_id, OUTBOX.c.published_at, OUTBOX.c.claim)
                            .order_by(OUTBOX.c.id)).all()


def test_a_drain_sends_the_batches_in_order_and_marks_every_row_published(outbox):
    ids, broker = outbox(10), Broker()

    assert relay_of(outbox.engine, broker).flush() == 10

    assert [len(batch) for batch in broker.batches] == [3, 3, 3, 1]
    assert broker.sent() == ids
    [(body, routing_key, headers)] = broker.batches[0][:1]
    assert isinstance(body, str) and json.loads(body)["correlation_id"] == "call-0"
    assert (routing_key, headers) == ("unit_changed", {"nameko.correlation_id": "call-0"})
    assert all(row.published_at is not None for row in rows(outbox.engine))


def test_a_failed_batch_marks_what_was_confirmed_and_releases_the_rest_and_the_next_batch(outbox):
    ids = outbox(8)

    def second_fails(n):
        if n == 2:
            raise NotConfirmed("the broker refused message 5", confirmed=1)
    broker = Broker(on_wait=second_fails)
    with pytest.raises(NotConfirmed):
        relay_of(outbox.engine, broker).flush()

    assert broker.sent() == ids[:6]
    state = rows(outbox.engine)
    assert [row.published_at is not None for row in state] == [True] * 4 + [False] * 4
    assert [row.claim for row in state[4:]] == [None] * 4   # the batch claimed behind it too
    again = Broker()
    assert relay_of(outbox.engine, again).flush() == 4
    assert again.sent() == ids[4:]   # in order: the unconfirmed first
    assert all(row.published_at is not None for row in rows(outbox.engine))


def test_a_batch_whose_lease_lapsed_during_a_long_wait_is_left_to_the_relay_that_took_it(outbox):
    """Relay A claims its second batch while the broker confirms its first, then waits on the
    broker past the lease: relay B takes over every row whose lease lapsed (A's first batch,
    which A sent while its lease held, goes out twice) and A must not send its second batch."""
    ids, lease = outbox(9), 0.2
    b = Broker()
    relay_b = relay_of(outbox.engine, b, lease_seconds=lease)

    def slow_then_b_takes_over(n):
        if n == 1:
            time.sleep(lease * 1.5)
            relay_b.flush()
    a = Broker(on_wait=slow_then_b_takes_over)

    relay_of(outbox.engine, a, lease_seconds=lease).flush()

    assert a.sent() == ids[:3]
    assert b.sent() == ids
    assert all(row.published_at is not None for row in rows(outbox.engine))
