"""Events as ticketing's outbox sends them, and service workers on a real database, for the
notifications tests."""
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from bench.harness import notifications_workers
from services.common.contracts import envelope

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


def workers(engine):
    """The bench's notifications workers (bench.harness), at the tests' NOW unless told."""
    return notifications_workers(engine, NOW)
