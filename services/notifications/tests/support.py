"""Events as ticketing's outbox sends them, and service workers on a real database, for the
notifications tests."""
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from nameko.testing.services import worker_factory

from services.common.auth import IDENTITY_KEY, CallContext
from services.common.contracts import envelope
from services.common.db import UnitOfWork
from services.notifications.providers import delivery_from
from services.notifications.service import NotificationsService
from services.notifications.storage import Base

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 2, 0, 5, tzinfo=timezone.utc)      # 10:00:05 in Shanghai
ZHANG = {"sub": "u-zhang", "role": "resident", "sites": ["001"], "person_id": "p-zhang"}
NEIGHBOUR = {"sub": "u-wang", "role": "resident", "sites": ["001"], "person_id": "p-wang"}
COMPLETED = datetime(2026, 11, 23, 10, 0, tzinfo=SH)

REPORTER = {"name": "张三", "phone": "13812341234", "email": None, "person_id": "p-zhang"}


def callback_due_body(event_id=None, reporter=REPORTER, **changes):
    """The envelope `UnitOfWork.add_event` writes for a repair completed at 10:00 Shanghai time."""
    data = {
        "ticket_id": "t-0001", "code": "001-R-00007", "kind": "repair", "unit": "0011020304",
        "first_contact_owner": "agent-li", "reporter": reporter,
        "due_at": COMPLETED + timedelta(hours=24), "completed_at": COMPLETED,
        "important": False, "description": "厨房水管漏水",
        **changes,
    }
    return envelope("ticketing.callback_due", data, site="001", correlation_id="corr-1",
                    occurred_at=COMPLETED, event_id=event_id)


@contextmanager
def workers(engine):
    """`make(settings=None, now=NOW, identity=None, delivery=None)`: a fresh service worker per
    call on `engine`, as Nameko makes one per message or RPC; every unit of work closed after."""
    tables = Base.metadata.tables
    database = SimpleNamespace(engine=engine, outbox=tables["outbox"],
                               processed=tables["processed_events"],
                               relay=SimpleNamespace(kick=lambda: None))
    units = []

    def make(settings=None, now=NOW, identity=None, delivery=None):
        worker_ctx = SimpleNamespace(data={IDENTITY_KEY: identity} if identity else {})
        units.append(UnitOfWork(database, worker_ctx))
        return worker_factory(NotificationsService, uow=units[-1], caller=CallContext(worker_ctx),
                              clock=lambda: now, delivery=delivery or delivery_from(settings or {}))

    try:
        yield make
    finally:
        for unit in units:
            unit.close(failed=False)
