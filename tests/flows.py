"""What several tests do the same way, whichever door they come in by (RPC or HTTP): the data a
site, a unit and a repair need, the steps that take a repair to completion, and waiting for
what a flow causes in another service."""
import time
import uuid
from collections import defaultdict
from datetime import date, timedelta

from services.renovation.domain import REQUIRED_DOCUMENTS

from bench.harness import (  # noqa: F401 (the flows' data, shared with the bench)
    AGENT, CALLBACK_EVENT, OTHER_SITE, REPAIR_TO_COMPLETION, SITE, SUB_OF_ROLE, TECHNICIAN,
    repair_payload, site_payload, unit_payload,
)

# After the awaited messages arrived, how long nothing more may arrive: several outbox polls
# (0.5 s in tests), so that a second delivery of the event would be seen and counted.
SETTLE_SECONDS = 2.0


def unique(text):
    """`text` made unique, to find exactly the records one test wrote."""
    return f"{text} {uuid.uuid4().hex[:8]}"



def ok(response, status=200):
    """The JSON of a gateway answer that must have `status` (its text shown if it has not)."""
    assert response.status_code == status, response.text
    return response.json()


def eventually(probe, done=bool, timeout=20.0, interval=0.25, what="the condition"):
    """The first answer of `probe()` that is `done`, polled until `timeout` seconds have passed;
    the failure shows the last answer."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if done(last):
            return last
        time.sleep(interval)
    raise AssertionError(f"{what} did not happen within {timeout} s; last seen: {last!r}")


def callback_messages(list_messages, ticket_id, timeout=20.0):
    """The messages `ticketing.callback_due` caused for `ticket_id`, by channel, once the staff
    message and the SMS are both there and nothing more arrived for SETTLE_SECONDS.
    `list_messages(ticket_id)` is the message list as the caller's door answers it."""
    def of_callback():
        return [m for m in list_messages(ticket_id) if m["event"] == CALLBACK_EVENT]

    eventually(of_callback, lambda seen: {"staff", "sms"} <= {m["channel"] for m in seen},
               timeout=timeout, what=f"the callback messages of ticket {ticket_id}")
    time.sleep(SETTLE_SECONDS)
    by_channel = defaultdict(list)
    for message in of_callback():
        by_channel[message["channel"]].append(message)
    return dict(by_channel)


def renovation_application(unit, workers=1, **changes):
    """An owner's complete application for ordinary work starting today, for a month."""
    today = date.today()
    crew = [{"name": "王工", "id_number": "110101199001011234"},
            {"name": "李工", "id_number": "11010119920202123X"}]
    return {
        "unit": unit,
        "applicant": {"name": "张三", "phone": "13812341234", "is_owner": True},
        "contractor": {"name": "好家装饰", "licence_no": "91110000MA01"},
        "workers": crew[:workers],
        "planned": {"start": today.isoformat(), "end": (today + timedelta(days=30)).isoformat()},
        "work_items": ["flooring", "painting"],
        "documents": list(REQUIRED_DOCUMENTS),
        "debris_removal": True,
        **changes,
    }
