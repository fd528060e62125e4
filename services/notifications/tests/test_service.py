"""The notifications service on a real database (SQLite and PostgreSQL), without a broker:
an event delivered twice stores its messages once, and each caller lists only what they may see."""
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.common.db import new_id
from services.common.errors import Forbidden, ValidationFailed
from services.notifications.storage import Base, Message
from services.notifications.tests.support import NEIGHBOUR, NOW, ZHANG, callback_due_body

AGENT_001 = {"sub": "agent-li", "role": "agent", "sites": ["001"]}
AGENT_002 = {"sub": "agent-wu", "role": "agent", "sites": ["002"]}


@pytest.fixture
def engine(notifications_db):
    return notifications_db


@pytest.fixture
def worker(notifications):
    """A fresh service worker per call, as Nameko makes one per message or RPC."""
    return lambda identity=None: notifications(identity=identity)


def stored(engine):
    with Session(engine) as session:
        return session.execute(select(Message.channel, Message.recipient, Message.status,
                                      Message.attempts).order_by(Message.channel)).all()


def test_an_event_delivered_twice_stores_each_message_once(worker, engine):
    body = callback_due_body()
    worker().on_callback_due(body)
    worker().on_callback_due(body)
    assert stored(engine) == [("sms", "13812341234", "sent", 1), ("staff", "agent-li", "sent", 1)]


def test_another_event_of_the_same_ticket_makes_its_own_messages(worker, engine):
    worker().on_callback_due(callback_due_body())
    worker().on_callback_due(callback_due_body())
    assert len(stored(engine)) == 4


def test_the_database_refuses_a_second_message_per_event_recipient_and_channel(engine):
    def message():
        return Message(id=new_id(), channel="sms", recipient="13812341234", event="ticketing.callback_due",
                       event_id="e-1", template="satisfaction_survey", body="…", status="sent",
                       attempts=1, site="001", created_at=NOW)
    with Session(engine) as session:
        session.add(message())
        session.commit()
        session.add(message())
        with pytest.raises(IntegrityError):
            session.commit()


@pytest.mark.parametrize("body", [
    {**callback_due_body(), "data": {"ticket_id": "t-0001", "code": "001-R-00007"}},
    {**callback_due_body(), "version": 99},
    "ticketing.callback_due",
])
def test_an_event_that_breaks_its_contract_is_dropped_without_a_trace(worker, engine, body):
    worker().on_callback_due(body)
    assert stored(engine) == []
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(
            Base.metadata.tables["processed_events"])) == 0


def test_a_message_reads_as_the_api_promises(worker):
    worker().on_callback_due(callback_due_body(event_id="e-42"))
    sms, = worker(AGENT_001).list_messages({"channel": "sms"})["items"]
    assert set(sms) >= {"id", "channel", "recipient", "event", "template", "status", "ticket_id",
                        "unit", "created_at", "attempts"}       # SPEC §7's message, and more
    assert (sms["next_attempt_at"], sms["last_error"], sms["subject"]) == (None, None, None)
    assert {k: sms[k] for k in ("channel", "recipient", "event", "template", "status", "ticket_id",
                                "unit", "site", "attempts", "created_at")} == {
        "channel": "sms", "recipient": "13812341234", "event": "ticketing.callback_due",
        "template": "satisfaction_survey", "status": "sent", "ticket_id": "t-0001",
        "unit": "0011020304", "site": "001", "attempts": 1, "created_at": NOW.isoformat()}
    assert "001-R-00007" in sms["body"]


def test_staff_see_their_sites_messages_and_no_others(worker):
    worker().on_callback_due(callback_due_body())
    assert len(worker(AGENT_001).list_messages()["items"]) == 2
    assert worker(AGENT_002).list_messages()["items"] == []
    with pytest.raises(Forbidden):
        worker(AGENT_002).list_messages({"site": "001"})


def test_a_resident_sees_only_the_messages_addressed_to_them(worker):
    worker().on_callback_due(callback_due_body())
    mine = worker(ZHANG).list_messages()["items"]
    assert [(m["channel"], m["recipient"]) for m in mine] == [("sms", "13812341234")]
    assert worker(NEIGHBOUR).list_messages()["items"] == []
    assert worker({**ZHANG, "person_id": None}).list_messages()["items"] == []


def test_filters_narrow_the_list(worker):
    worker().on_callback_due(callback_due_body())
    worker().on_callback_due(callback_due_body(ticket_id="t-0002", code="001-R-00008"))
    staff = worker(AGENT_001)
    assert len(staff.list_messages({"ticket_id": "t-0002"})["items"]) == 2
    assert [m["recipient"] for m in staff.list_messages({"recipient": "agent-li"})["items"]] == ["agent-li"] * 2
    assert staff.list_messages({"unit": "0011020399"})["items"] == []


def test_pages_follow_the_cursor_without_repeats(worker):
    worker().on_callback_due(callback_due_body())
    first = worker(AGENT_001).list_messages(limit=1)
    second = worker(AGENT_001).list_messages(cursor=first["next_cursor"], limit=1)
    assert second["next_cursor"] is None
    assert {first["items"][0]["channel"], second["items"][0]["channel"]} == {"staff", "sms"}


@pytest.mark.parametrize("filters, limit, field", [
    (None, 201, "limit"), (None, 0, "limit"), (None, "many", "limit"),
    ({"channel": "pigeon"}, 50, "channel"), ({"unit": "12"}, 50, "unit"),
    ({"colour": "red"}, 50, "colour"),
])
def test_a_bad_query_names_its_field(worker, filters, limit, field):
    with pytest.raises(ValidationFailed) as caught:
        worker(AGENT_001).list_messages(filters, limit=limit)
    assert list(caught.value.extra["errors"]) == [field]
