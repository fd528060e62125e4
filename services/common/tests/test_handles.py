"""`@handles`: every service's event handler loads the event by its contract, drops and logs a
breach, and has its effect once per event id, whatever the redelivery."""
import logging
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from sqlalchemy import Column, String, Table, func, select

from services.common.contracts import envelope
from services.common.db import UnitOfWork, declarative_base, make_engine
from services.common.entrypoints import handles

COMPLETED = datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)
Base = declarative_base()
effects = Table("effects", Base.metadata, Column("event_id", String(36)), Column("ticket_id", String(24)))


class Probe:
    """A service as `handles` sees one: a name and a unit of work."""
    name = "probe"

    def __init__(self, uow, fail=False):
        self.uow, self.fail, self.seen = uow, fail, []

    @handles("ticketing", "callback_due")
    def on_callback_due(self, data, envelope):
        self.seen.append((data, envelope))
        self.uow.session.execute(effects.insert().values(event_id=envelope["id"],
                                                         ticket_id=data["ticket_id"]))
        if self.fail:
            raise ConnectionError("database went away before the commit")
        self.uow.commit()

    @handles("ticketing", "service_charge", when=lambda data: data["amount"] > 0)
    def on_service_charge(self, data, envelope):
        self.seen.append((data, envelope))
        self.uow.commit()


def callback_due(event_id="ev-1", **changes):
    data = {"ticket_id": "t-1", "code": "001-R-00001", "kind": "repair", "unit": "0011020304",
            "first_contact_owner": "agent-li", "reporter": None,
            "due_at": COMPLETED + timedelta(hours=24), "completed_at": COMPLETED, **changes}
    return envelope("ticketing.callback_due", data, site="001", occurred_at=COMPLETED,
                    event_id=event_id)


@pytest.fixture
def worker(tmp_path):
    """`worker(fail=False)`: a fresh Probe per delivery, as Nameko makes one per message."""
    engine = make_engine(f"sqlite:///{tmp_path / 'probe.db'}")
    Base.metadata.create_all(engine)
    database = SimpleNamespace(engine=engine, outbox=Base.metadata.tables["outbox"],
                               processed=Base.metadata.tables["processed_events"],
                               relay=SimpleNamespace(kick=lambda: None))
    units = []

    def make(fail=False):
        units.append(UnitOfWork(database, SimpleNamespace(data={})))
        return Probe(units[-1], fail)

    make.count = lambda table: engine.connect().execute(
        select(func.count()).select_from(table)).scalar()
    yield make
    for unit in units:
        unit.close(failed=False)
    engine.dispose()


def test_a_good_event_is_handled_once_with_its_payload_loaded(worker):
    probe = worker()
    probe.on_callback_due(callback_due())
    [(data, loaded)] = probe.seen
    assert data["completed_at"] == COMPLETED and data["priority"] == "normal"   # loaded, defaults
    assert (loaded["id"], loaded["event"], loaded["site"]) == ("ev-1", "ticketing.callback_due", "001")
    assert worker.count(effects) == 1


def test_a_redelivery_does_nothing(worker):
    worker().on_callback_due(callback_due())
    again = worker()
    again.on_callback_due(callback_due())
    assert again.seen == [] and worker.count(effects) == 1
    other = worker()
    other.on_callback_due(callback_due(event_id="ev-2"))
    assert len(other.seen) == 1 and worker.count(effects) == 2


def test_a_breach_of_the_contract_is_logged_and_dropped(worker, caplog):
    body = callback_due()
    del body["data"]["first_contact_owner"]
    body["data"]["kind"] = "haircut"
    probe = worker()
    with caplog.at_level(logging.ERROR, logger="services.common.entrypoints"):
        assert probe.on_callback_due(body) is None
    [record] = caplog.records
    assert (record.event, record.event_id) == ("ticketing.callback_due", "ev-1")
    assert set(record.errors) == {"first_contact_owner", "kind"}
    assert "ticketing.callback_due" in record.getMessage()
    assert probe.seen == [] and worker.count(Base.metadata.tables["processed_events"]) == 0


def test_an_unknown_contract_version_is_logged_and_dropped(worker, caplog):
    body = {**callback_due(), "version": 99}
    with caplog.at_level(logging.ERROR, logger="services.common.entrypoints"):
        worker().on_callback_due(body)
    [record] = caplog.records
    assert record.event_id == "ev-1" and "unknown event contract" in record.getMessage()


def test_the_claim_commits_with_the_effect_or_not_at_all(worker):
    failing = worker(fail=True)
    with pytest.raises(ConnectionError):
        failing.on_callback_due(callback_due())
    failing.uow.close(failed=True)       # as Nameko's worker teardown does; the event is requeued
    redelivered = worker()
    redelivered.on_callback_due(callback_due())
    assert len(redelivered.seen) == 1 and worker.count(effects) == 1


def test_an_event_the_service_has_no_business_with_is_not_claimed(worker):
    charge = {"ticket_id": "t-1", "code": "001-R-00001", "unit": "0011020304",
              "amount": 0, "completed_at": COMPLETED}
    probe = worker()
    probe.on_service_charge(envelope("ticketing.service_charge", charge, occurred_at=COMPLETED))
    assert probe.seen == [] and worker.count(Base.metadata.tables["processed_events"]) == 0


def test_it_is_a_nameko_event_handler_requeued_on_error():
    [entrypoint] = Probe.on_callback_due.nameko_entrypoints
    assert (entrypoint.source_service, entrypoint.event_type, entrypoint.requeue_on_error) == (
        "ticketing", "callback_due", True)


# -- batch=n: a monthly run's thousands of events, a batch per transaction --------------------

class BatchProbe:
    name = "probe"

    def __init__(self, uow, fail_on=None):
        self.uow, self.fail_on, self.batches = uow, fail_on, []

    @handles("ticketing", "callback_due", batch=10)
    def on_callback_due(self, envelopes):
        self.batches.append([e["id"] for e in envelopes])
        self.uow.session.execute(effects.insert(), [
            {"event_id": e["id"], "ticket_id": e["data"]["ticket_id"]} for e in envelopes])
        if any(e["id"] == self.fail_on for e in envelopes):
            raise ConnectionError("this event cannot be stored")
        self.uow.commit()


@pytest.fixture
def batch_worker(worker):
    units = []

    def make(fail_on=None):
        units.append(worker().uow)
        return BatchProbe(units[-1], fail_on)
    make.count = worker.count
    return make


def test_a_batch_has_each_event_once_however_often_it_came(batch_worker):
    batch_worker().on_callback_due([callback_due("ev-1")])
    probe = batch_worker()
    failed = probe.on_callback_due([callback_due("ev-1"), callback_due("ev-2"), callback_due("ev-2"),
                                    callback_due("ev-3")])
    assert failed == [] and probe.batches == [["ev-2", "ev-3"]]     # one claim statement, ev-1 seen
    assert batch_worker.count(effects) == 3
    assert batch_worker.count(Base.metadata.tables["processed_events"]) == 3


def test_an_event_that_fails_in_its_batch_goes_back_alone(batch_worker):
    probe = batch_worker(fail_on="ev-2")
    failed = probe.on_callback_due([callback_due("ev-1"), callback_due("ev-2"), callback_due("ev-3")])
    assert failed == [1]           # its position: requeued; the others committed, one at a time
    assert probe.batches == [["ev-1", "ev-2", "ev-3"], ["ev-1"], ["ev-2"], ["ev-3"]]
    assert batch_worker.count(effects) == 2
    redelivered = batch_worker()
    assert redelivered.on_callback_due([callback_due("ev-2")]) == [] and batch_worker.count(effects) == 3


def test_a_batch_breach_of_the_contract_is_dropped_the_rest_handled(batch_worker):
    broken = callback_due("ev-2")
    del broken["data"]["first_contact_owner"]
    probe = batch_worker()
    assert probe.on_callback_due([callback_due("ev-1"), broken]) == []
    assert probe.batches == [["ev-1"]]


def test_each_message_of_a_batch_is_acked_or_requeued_when_its_worker_ends():
    [entrypoint] = BatchProbe.on_callback_due.nameko_entrypoints
    assert (entrypoint.batch, entrypoint.requeue_on_error) == (10, True)
    handler = type(entrypoint)("ticketing", "callback_due", batch=3)
    outcome = []
    handler.queue_consumer = SimpleNamespace(ack_message=lambda m: outcome.append(("ack", m)),
                                             requeue_message=lambda m: outcome.append(("requeue", m)))
    handler.handle_batch_result(["a", "b", "c"], None, result=[1])
    assert outcome == [("ack", "a"), ("requeue", "b"), ("ack", "c")]
    outcome.clear()
    handler.handle_batch_result(["a", "b"], None, exc_info=(ConnectionError, None, None))
    assert outcome == [("requeue", "a"), ("requeue", "b")]
