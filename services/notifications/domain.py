"""Notification rules (SPEC §5), plain Python: which messages an event makes, for whom and from
which template. No Nameko, no SQL, no I/O; `rendering` fills the templates.

Quiet hours for SMS (22:00–08:00 site time, except urgent matters) and opt-outs arrive with real
providers, retries and the delivery sweep (issue 6): the store-only provider sends nothing out,
so there is nothing to hold back yet.
"""
from dataclasses import dataclass, field

from services.common.calendar import DEFAULT_TZ, zone

CHANNELS = ("sms", "email", "in_app", "letter", "staff")
# `sent` is all the store-only provider answers; the others belong to retries and dead-letters.
STATUSES = ("pending", "sent", "failed", "dead")

KIND_NAMES = {"repair": "报修", "complaint": "投诉"}


@dataclass(frozen=True)
class Draft:
    """A message before it has a body: where it goes, which template, and what fills it.
    `person_id` is the resident it is addressed to, when known (their own list shows it)."""
    channel: str
    recipient: str
    template: str
    context: dict = field(default_factory=dict)
    person_id: str | None = None


def callback_due_messages(envelope):
    """A repair completed or a complaint resolved (SPEC §2.2): a callback task for the staff member
    who took the first contact, and a satisfaction SMS for the reporter when a phone is known.
    Times read as the site's clock shows them."""
    data = envelope["data"]
    tz = data.get("timezone") or DEFAULT_TZ
    reporter = data.get("reporter") or {}
    context = {
        "code": data["code"],
        "kind": KIND_NAMES[data["kind"]],
        "unit": data.get("unit"),
        "description": data.get("description") or "",
        "important": data.get("important", False),
        "reporter_name": reporter.get("name"),
        "reporter_phone": reporter.get("phone"),
        "completed_at": local_time(data["completed_at"], tz),
        "due_at": local_time(data["due_at"], tz),
    }
    drafts = [Draft("staff", data["first_contact_owner"], "callback_task", context)]
    if reporter.get("phone"):
        drafts.append(Draft("sms", reporter["phone"], "satisfaction_survey", context,
                            person_id=reporter.get("person_id")))
    return drafts


def local_time(instant, tz=DEFAULT_TZ):
    """As people at the site read it: 2026-11-24 10:00."""
    return instant.astimezone(zone(tz)).strftime("%Y-%m-%d %H:%M")
