"""The ticketing sweep run by two replicas at the same instant, on SQLite and PostgreSQL: every
overdue deadline is reported exactly once (one breach on the ticket, one row, one event), every
deadline near is warned of once before it (超时预警), and a second pass finds nothing."""
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import eventlet
import pytest
from nameko.cli.run import import_service
from nameko.containers import ServiceContainer
from nameko.testing.services import entrypoint_hook
from sqlalchemy import func, select

from services.common.db import make_engine
from services.ticketing import storage
from services.ticketing.domain import SlaPolicy, Ticket
from bench.harness import free_port, migrated

pytestmark = pytest.mark.integration

SH = ZoneInfo("Asia/Shanghai")
FRIDAY_1600 = datetime(2026, 11, 20, 16, 0, tzinfo=SH)
SATURDAY_0900 = datetime(2026, 11, 21, 9, 0, tzinfo=SH)
TICKETS = 240


def b_complaint(n):
    return Ticket.open_complaint(
        id=f"sweep{n:08d}", site="001", serial=n + 1, timezone="Asia/Shanghai", channel="phone",
        description="噪音", received_at=FRIDAY_1600, now=FRIDAY_1600,
        first_contact_owner="agent-li", by_role="agent", policy=SlaPolicy(), severity="B",
        category="GC")


@pytest.fixture
def replicas(service_config, db_url):
    """Two ticketing containers on one database (the test's own, migrated and seeded)."""
    url = migrated("ticketing", db_url)
    engine = make_engine(url)
    with engine.begin() as conn:
        storage.bulk_insert(conn, [b_complaint(n) for n in range(TICKETS)])
    # small batches, so that the two replicas interleave their claims
    config = dict(service_config, DB_URIS={**service_config["DB_URIS"], "ticketing": url},
                  TICKETING_SWEEP_BATCH=20)
    [service_cls] = import_service("services.ticketing.service")
    containers = [ServiceContainer(service_cls, dict(config, WEB_SERVER_ADDRESS=f"127.0.0.1:{free_port()}"))
                  for _ in range(2)]
    for container in containers:
        container.start()
    yield containers, engine
    for container in containers:
        container.stop()
    engine.dispose()


def swept_state(engine):
    """{ticket id: the ticket as the service loads it}: its breaches and warnings as it lists
    them (its rows of `breaches` and `warnings`) and the sweep's next instant."""
    from sqlalchemy.orm import Session
    with Session(engine) as session:
        return {t.id: t for t in session.scalars(select(Ticket))}


def sweep_claims(engine):
    with engine.connect() as conn:
        return set(conn.scalars(select(storage.sweeps.c.sweep_claim)))


def sweep_together(containers, as_of):
    def run(container):
        with entrypoint_hook(container, "sweep") as sweep:
            return sweep({"as_of": as_of.isoformat()})
    pool = eventlet.GreenPool()
    return list(pool.imap(run, containers))


def test_two_replicas_sweeping_at_once_report_each_breach_once(replicas, event_tap):
    containers, engine = replicas
    tap = event_tap("ticketing", "sla_breached")
    first = sweep_together(containers, SATURDAY_0900)
    assert sum(found["breaches"] for found in first) == TICKETS       # each route deadline once
    assert sum(found["tickets"] for found in first) == TICKETS
    assert all(found["tickets"] for found in first), first            # both took a share
    again = sweep_together(containers, SATURDAY_0900 + timedelta(minutes=1))
    assert sum(found["breaches"] for found in again) == 0

    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(storage.breaches)) == TICKETS
    rows = swept_state(engine).values()
    assert all([b["deadline"] for b in row.breaches] == ["route"] for row in rows)
    # next: the resolve deadline's warning, Monday 15:00 in Shanghai, an hour before it
    assert {row.sweep_due_at for row in rows} == {datetime(2026, 11, 23, 7, 0, tzinfo=ZoneInfo("UTC"))}
    assert sweep_claims(engine) == {None}
    events = tap.collect(TICKETS, timeout=30)
    assert sorted(body["data"]["subject_id"] for _, body in events) == sorted(f"sweep{n:08d}" for n in range(TICKETS))
    assert {tuple(body["data"]["escalate_to"]) for _, body in events} == {("supervisor", "manager")}


def test_a_b_complaints_resolve_deadline_warned_an_hour_before_then_breached_each_once(
        replicas, event_tap):
    """B complaints received Friday 16:00 (route 17:00, resolve Monday 16:00): swept by two
    replicas every few minutes from Monday 14:50 to 16:10, each ticket's resolve deadline is
    warned of once, at 15:00, and breached once, at 16:00 — the warning first."""
    containers, engine = replicas
    warnings, breaches = event_tap("ticketing", "sla_warning"), event_tap("ticketing", "sla_breached")
    sweep_together(containers, SATURDAY_0900)        # the route deadlines: breached, not warned
    breaches.collect(TICKETS, timeout=30)
    monday = datetime(2026, 11, 23, 14, 50, tzinfo=SH)
    found = [sweep_together(containers, monday + timedelta(minutes=m)) for m in range(0, 81, 5)]
    warned = [sum(f["warnings"] for f in pair) for pair in found]
    breached = [sum(f["breaches"] for f in pair) for pair in found]
    # 14:50, 14:55 nothing; 15:00 every warning; 16:00 every breach; nothing else
    assert warned == [0, 0, TICKETS] + [0] * 14
    assert breached == [0] * 14 + [TICKETS, 0, 0]

    warned_events = warnings.collect(TICKETS, timeout=30)
    assert {(body["data"]["deadline"], body["data"]["due_at"], body["data"]["warned_at"])
            for _, body in warned_events} == {
        ("resolve", "2026-11-23T08:00:00+00:00", "2026-11-23T07:00:00+00:00")}
    assert len({body["data"]["ticket_id"] for _, body in warned_events}) == TICKETS
    resolve = [body for _, body in breaches.collect(TICKETS, timeout=30)]
    assert {body["data"]["deadline"] for body in resolve} == {"resolve"}
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(storage.warnings)) == TICKETS
    rows = swept_state(engine).values()
    assert all([(w["deadline"], w["warned_at"]) for w in row.warnings]
               == [("resolve", "2026-11-23T07:00:00+00:00")] for row in rows)
    assert all([b["deadline"] for b in row.breaches] == ["route", "resolve"] for row in rows)
    # B/C complaints still open are upgraded 30 days after receipt: the sweep's next instant
    assert {row.sweep_due_at for row in rows} == {datetime(2026, 12, 20, 8, 0, tzinfo=ZoneInfo("UTC"))}


def test_the_alerts_postgresql_builds_for_a_sweep_are_the_ones_python_builds(db_url):
    """On PostgreSQL a sweep's warnings and breaches events are made by the database (one
    INSERT … SELECT each); their payloads must be what `domain.breach_event` and
    `domain.warning_event` make, for every kind of ticket: A/B/C complaints, an urgent repair
    and a plain one (no severity), with or without a unit or an assignee."""
    import json
    from sqlalchemy import Text, cast
    from services.common import contracts
    from services.ticketing import domain
    if not db_url.startswith("postgresql"):
        pytest.skip("the payloads are built by the database on PostgreSQL only")
    tickets = [b_complaint(n) for n in range(3)]
    tickets[1].severity, tickets[1].assignee, tickets[2].severity = "A", "tech-wang", "C"
    for n, priority in enumerate(("urgent", "normal")):
        repair = b_complaint(10 + n)
        repair.kind, repair.severity, repair.priority, repair.unit = "repair", None, priority, "0010101001"
        tickets.append(repair)
    engine = make_engine(migrated("ticketing", db_url))
    try:
        with engine.begin() as conn:
            storage.bulk_insert(conn, tickets)
        ids = [t.id for t in tickets]
        # the route deadline (Friday 17:00) warned of at 16:30, breached by Saturday 09:00 (in
        # that order: a deadline recorded as breached is not warned of by a sweep replayed before)
        with engine.connect() as conn:     # rolled back: the first-recorded rows go with it
            for payloads, event, python, as_of in (
                    (storage.first_warning_payloads, "ticketing.sla_warning", domain.warning_event,
                     FRIDAY_1600 + timedelta(minutes=30)),
                    (storage.first_breach_payloads, "ticketing.sla_breached", domain.breach_event,
                     SATURDAY_0900)):
                made = payloads(ids, as_of).subquery()
                built = {data["code"]: data for data in (json.loads(text) for text, in conn.execute(
                    select(cast(made.c.data, Text))))}
                expected = {t.code: contracts.dump_payload(event, python(
                    t, "route", datetime.fromisoformat(t.deadlines["route"]),
                    as_of.astimezone(ZoneInfo("UTC"))))[1] for t in tickets}
                assert built == expected, event
    finally:
        engine.dispose()


def _mixed_tickets():
    """Tickets of every shape the sweep meets: complaints A (written, four deadlines), B, C (with
    the complainant's own deadline) and B under a site policy that warns two hours ahead; an
    urgent repair (3-minute dispatch, warned a minute before); a suggestion; a complaint whose
    route deadline was met, and dropped tickets (a cancelled repair, an invalid complaint)."""
    from services.ticketing.domain import SlaPolicy, Ticket
    common = dict(site="001", timezone="Asia/Shanghai", description="测试", received_at=FRIDAY_1600,
                  now=FRIDAY_1600, first_contact_owner="agent-li", by_role="agent")
    tickets = [
        Ticket.open_complaint(id="mixA", serial=1, channel="email", policy=SlaPolicy(), severity="A",
                              category="KF", **common),
        Ticket.open_complaint(id="mixB", serial=2, channel="phone", policy=SlaPolicy(), severity="B",
                              category="GC", **common),
        Ticket.open_complaint(id="mixC", serial=3, channel="phone", policy=SlaPolicy(), severity="C",
                              category="BJ", requested_deadline=FRIDAY_1600 + timedelta(days=1), **common),
        Ticket.open_complaint(id="mixW", serial=4, channel="phone", policy=SlaPolicy(warn_minutes=120),
                              severity="B", category="YY", **common),
        Ticket.open_repair(id="mixR", code="001-R-00001", channel="phone", policy=SlaPolicy(),
                           priority="urgent", unit="0010101001", **common),
        Ticket.open_suggestion(id="mixS", code="001-S-00001", channel="app", policy=SlaPolicy(), **common),
        Ticket.open_complaint(id="mixM", serial=5, channel="phone", policy=SlaPolicy(), severity="B",
                              category="QT", **common),
        Ticket.open_repair(id="mixX", code="001-R-00002", channel="phone", policy=SlaPolicy(),
                           priority="urgent", **common),
        Ticket.open_complaint(id="mixI", serial=6, channel="phone", policy=SlaPolicy(), severity="C",
                              category="QT", **common),
    ]
    by_id = {t.id: t for t in tickets}
    soon = FRIDAY_1600 + timedelta(minutes=20)
    by_id["mixM"].apply("route", {"assignee": "sup-wang"}, now=soon, by="agent-li", role="agent")
    by_id["mixX"].apply("cancel", {"reason": "duplicate"}, now=soon, by="agent-li", role="agent")
    by_id["mixI"].apply("assess", {"valid": False, "reason": "not ours"}, now=soon, by="sup-wang",
                        role="supervisor")
    for ticket in tickets:
        ticket.pull_events()
    return tickets


def test_what_postgresql_finds_and_records_is_what_the_domain_does(db_url):
    """On PostgreSQL the sweep finds, records and lists warnings and breaches, and each ticket's
    next instant, in SQL; swept at the same instants, every kind of ticket must end as the
    domain's rules (`alerts_due`, `record_*`, `next_sweep_at`) leave it (its lists are read from
    the rows of `breaches` and `warnings`, as the service reads them)."""
    import copy
    from services.ticketing import domain
    from sqlalchemy.orm import Session
    if not db_url.startswith("postgresql"):
        pytest.skip("the sweep is done by the database on PostgreSQL only")
    tickets = _mixed_tickets()
    expected = copy.deepcopy(tickets)
    ids = [t.id for t in tickets]
    instants = [FRIDAY_1600 + timedelta(minutes=m) for m in (1, 3, 30, 61, 70, 130)] + [
        FRIDAY_1600 + timedelta(hours=h) for h in (17, 23, 24, 47, 71, 72, 200)]
    engine = make_engine(migrated("ticketing", db_url))
    try:
        with engine.begin() as conn:
            storage.bulk_insert(conn, tickets)
        for as_of in instants:
            as_of = as_of.astimezone(ZoneInfo("UTC"))
            for ticket in expected:
                breach, warn = domain.alerts_due(ticket, as_of)
                for name, at in warn:
                    ticket.record_warning(name, at, as_of)
                for name, at in breach:
                    ticket.record_breach(name, at, as_of)
            with Session(engine) as session, session.begin():     # as the service does
                locked = storage.lock_due(session, as_of, len(ids))
                for payloads, due in ((storage.first_warning_payloads, "warning_due"),
                                      (storage.first_breach_payloads, "breach_due")):
                    due_ids = [row.ticket_id for row in locked if row._mapping[due]]
                    if due_ids:
                        session.execute(select(func.count()).select_from(payloads(due_ids, as_of).subquery()))
            rows = swept_state(engine)
            for ticket in expected:
                row = rows[ticket.id]
                assert (row.breaches, row.warnings) == (ticket.breaches, ticket.warnings), (ticket.id, as_of)
                assert row.sweep_due_at == domain.next_sweep_at(ticket), (ticket.id, as_of)
        assert sum(len(t.breaches) for t in expected) > 10 and sum(len(t.warnings) for t in expected) > 5
    finally:
        engine.dispose()
