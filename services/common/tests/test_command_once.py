"""`@command` called with an Idempotency-Key (carried in the context data by the gateway): the
effect and its answer commit together, so a redelivered or retried call replays the answer and
changes nothing, a call that failed leaves nothing behind, and the key used for another request
is refused."""
from types import SimpleNamespace

import pytest
from sqlalchemy import Column, Integer, String, Table, func, select

from services.common.auth import IDEMPOTENCY_KEY, IDENTITY_KEY
from services.common.db import UnitOfWork, declarative_base, make_engine
from services.common.entrypoints import command
from services.common.errors import Conflict, ValidationFailed

Base = declarative_base()
tickets = Table("tickets", Base.metadata, Column("id", Integer, primary_key=True),
                Column("description", String(80)))
AGENT = {"sub": "agent-ann", "role": "agent", "sites": ["001"]}


class Probe:
    name = "probe"

    def __init__(self, uow):
        self.uow = uow

    @command
    def open_ticket(self, description):
        made = self.uow.session.execute(tickets.insert().values(description=description))
        self.uow.commit()
        if description == "busy":
            raise Conflict("already on site")
        return {"id": made.inserted_primary_key[0], "description": description}

    @command
    def count_tickets(self):
        return self.uow.session.execute(select(func.count()).select_from(tickets)).scalar()

    @command
    def open_two(self, description):
        first = self.open_ticket(description)
        return [first, self.open_ticket(description)]


@pytest.fixture
def call(tmp_path):
    """`call(method, *args, key=..., request=..., caller=AGENT)`: one worker per call."""
    engine = make_engine(f"sqlite:///{tmp_path / 'probe.db'}")
    Base.metadata.create_all(engine)
    tables = Base.metadata.tables
    database = SimpleNamespace(engine=engine, outbox=tables["outbox"],
                               answers=tables["idempotent_commands"],
                               relay=SimpleNamespace(kick=lambda: None))

    def run(method, *args, key=None, request="r1", caller=AGENT):
        data = {IDENTITY_KEY: caller}
        if key:
            data[IDEMPOTENCY_KEY] = {"key": key, "request": request}
        worker = SimpleNamespace(data=data, entrypoint=SimpleNamespace(method_name=method))
        unit = UnitOfWork(database, worker)
        try:
            return getattr(Probe(unit), method)(*args)
        finally:
            unit.close(failed=True)   # anything not committed is gone, as after a crash

    run.count = lambda: engine.connect().execute(select(func.count()).select_from(tickets)).scalar()
    yield run
    engine.dispose()


def test_a_redelivered_call_replays_the_first_answer_and_makes_nothing_again(call):
    first = call("open_ticket", "tap leaking", key="k1")
    assert call("open_ticket", "tap leaking", key="k1") == first
    assert call.count() == 1


def test_the_key_is_the_callers_and_the_commands_own(call):
    call("open_ticket", "tap leaking", key="k1")
    call("open_ticket", "tap leaking", key="k1", caller={**AGENT, "sub": "agent-bo"})
    call("open_ticket", "tap leaking")
    assert call.count() == 3


def test_a_command_that_fails_leaves_neither_effect_nor_answer(call):
    with pytest.raises(Conflict):
        call("open_ticket", "busy", key="k2")
    assert call.count() == 0
    with pytest.raises(Conflict):
        call("open_ticket", "busy", key="k2")


def test_the_key_reused_for_another_request_is_refused(call):
    call("open_ticket", "tap leaking", key="k3")
    with pytest.raises(ValidationFailed) as refused:
        call("open_ticket", "tap leaking", key="k3", request="r2")
    assert "Idempotency-Key" in refused.value.extra["errors"]


def test_a_command_calling_another_commits_once_with_its_own_answer(call):
    answer = call("open_two", "two taps", key="k4")
    assert call("open_two", "two taps", key="k4") == answer
    assert call.count() == 2


def test_a_command_that_commits_nothing_records_nothing(call):
    assert call("count_tickets", key="k5") == 0
    call("open_ticket", "tap leaking")
    assert call("count_tickets", key="k5") == 1
