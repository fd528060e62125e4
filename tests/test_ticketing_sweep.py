"""The ticketing sweep run by two replicas at the same instant, on SQLite and PostgreSQL: every
overdue deadline is reported exactly once (one breach on the ticket, one row, one event), and a
second pass finds nothing."""
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
from tests.infra import free_port, migrated

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
        rows = conn.execute(select(storage.tickets.c.breaches, storage.tickets.c.sweep_due_at,
                                   storage.tickets.c.sweep_claim)).all()
    assert all([b["deadline"] for b in row.breaches] == ["route"] for row in rows)
    assert {row.sweep_due_at for row in rows} == {datetime(2026, 11, 23, 8, 0, tzinfo=ZoneInfo("UTC"))}
    assert {row.sweep_claim for row in rows} == {None}
    events = tap.collect(TICKETS, timeout=30)
    assert sorted(body["data"]["subject_id"] for _, body in events) == sorted(f"sweep{n:08d}" for n in range(TICKETS))
    assert {tuple(body["data"]["escalate_to"]) for _, body in events} == {("supervisor", "manager")}
