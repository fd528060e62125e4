"""SLA breach alerts up the chain (SPEC §5): the first-contact agent, then one staff message per
escalation role at the site."""
from datetime import datetime, timezone

from services.common.contracts import envelope, load_event
from services.notifications.domain import sla_breach_messages
from services.notifications.rendering import render


def breach(**changes):
    data = {"subject": "ticket", "subject_id": "t1", "code": "001-B-GC-00042", "kind": "complaint",
            "deadline": "resolve", "due_at": datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc),
            "detected_at": datetime(2026, 11, 23, 8, 1, tzinfo=timezone.utc), "severity": "B",
            "unit": "0011020304", "first_contact_owner": "agent-li",
            "escalate_to": ["supervisor", "manager"], **changes}
    return load_event(envelope("ticketing.sla_breached", data, site="001",
                               occurred_at=data["detected_at"]))


def test_the_agent_then_each_role_up_the_chain_in_site_time():
    drafts = sla_breach_messages(breach())
    assert [(d.channel, d.recipient) for d in drafts] == [
        ("staff", "agent-li"), ("staff", "role:supervisor@001"), ("staff", "role:manager@001")]
    text = render(drafts[0]).body
    assert "001-B-GC-00042" in text and "处理时限 2026-11-23 16:00" in text and "agent-li" in text


def test_an_a_complaint_also_alerts_head_office():
    assert [d.recipient for d in sla_breach_messages(breach(
        severity="A", escalate_to=["supervisor", "manager", "hq"]))][-1] == "role:hq@001"
