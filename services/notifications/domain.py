"""Notification rules (SPEC §5), plain Python: which messages an event makes, for whom and from
which template. No Nameko, no SQL, no I/O; `rendering` fills the templates.

Quiet hours for SMS (22:00–08:00 site time, except urgent matters) hold a message until the
morning (`first_attempt_at`); opt-outs make it `skipped`; retries back off (`retry_at`).
"""
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone

from services.common.calendar import DEFAULT_TZ, zone

CHANNELS = ("sms", "email", "in_app", "letter", "staff")
# `pending` until tried, `failed` while retries remain, `dead` after the last; `skipped` when the
# person opted out of the channel.
STATUSES = ("pending", "sent", "failed", "dead", "skipped")
QUIET_START, QUIET_END = time(22, 0), time(8, 0)

KIND_NAMES = {"repair": "报修", "complaint": "投诉", "inquiry": "咨询", "suggestion": "建议"}


@dataclass(frozen=True)
class Draft:
    """A message before it has a body: where it goes, which template, and what fills it.
    `person_id` is the resident it is addressed to, when known (their own list shows it)."""
    channel: str
    recipient: str
    template: str
    context: dict = field(default_factory=dict)
    person_id: str | None = None
    urgent: bool = False


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
                            person_id=reporter.get("person_id"),
                            urgent=data.get("priority") == "urgent"))
    return drafts


DEADLINE_NAMES = {"acknowledge": "受理确认", "route": "分派", "answer": "答复", "resolve": "处理",
                  "reply": "回复", "dispatch": "派工", "forward": "转交", "callback": "回访",
                  "revisit": "再次回访", "second_callback": "第二次回访"}


def sla_breach_messages(envelope):
    """A ticket's deadline passed unmet (SPEC §5 "SLA breach alerts up the chain"): one staff
    message per role it escalates to, addressed to the role at the site (`role:manager@001`)."""
    data = envelope["data"]
    tz = data.get("timezone") or DEFAULT_TZ
    context = {
        "code": data["code"], "kind": KIND_NAMES.get(data["kind"], data["kind"]),
        "deadline": DEADLINE_NAMES.get(data["deadline"], data["deadline"]),
        "severity": data.get("severity"), "unit": data.get("unit"),
        "first_contact_owner": data.get("first_contact_owner"),
        "due_at": local_time(data["due_at"], tz), "detected_at": local_time(data["detected_at"], tz),
    }
    return [Draft("staff", f"role:{role}@{envelope['site']}", "sla_breach", context)
            for role in data.get("escalate_to") or ()]


def lobby_notice_messages(envelope):
    """A renovation permit was issued (001 ch.4 §6: 业主装修温馨提示 in the lobby before work
    starts): one in-app notice to the residents of the unit's building (`building:001102`
    is project + group + building, the residents who share a lobby)."""
    data = envelope["data"]
    unit = data["unit"]
    context = {"unit": unit, "group": unit[3], "building": unit[4:6], "room": unit[6:],
               "valid_from": data["valid_from"].isoformat(),
               "valid_until": data["valid_until"].isoformat(),
               "permit_number": data["permit_number"]}
    drafts = [Draft("in_app", f"building:{unit[:6]}", "renovation_lobby_notice", context)]
    phone = (data.get("applicant") or {}).get("phone")
    if phone:   # the applicant learns the permit and pass numbers (SPEC §5 "pass issue")
        passes = "、".join(f"{p.get('holder')} {p.get('number')}" for p in data.get("passes") or ())
        drafts.append(Draft("sms", phone, "renovation_permit", {**context, "passes": passes}))
    return drafts


def renovation_decided_messages(envelope):
    """The review's outcome to the applicant by SMS: approved (fees follow), or rejected with
    the work items and reasons that decided it."""
    data = envelope["data"]
    phone = (data.get("applicant") or {}).get("phone")
    if not phone:
        return []
    context = {"unit": data["unit"], "approved": data["decision"] == "approved",
               "reasons": "；".join(data.get("rejection_reasons") or ())}
    return [Draft("sms", phone, "renovation_decision", context)]


# A step of the arrears ladder (SPEC §4) and what it sends: an SMS reminder to the owner, a
# written payment notice and a lawyer's letter as `letter` documents addressed to the unit (staff
# print and post them; the lawyer's letter by express mail), and a task for the site's legal
# adviser when they are informed or the case is referred to sue. Transfer watch is registry's.
ARREARS_LETTERS = {"payment_notice": "payment_notice", "lawyer_letter": "lawyer_letter"}
ARREARS_LEGAL_TASKS = ("legal_adviser_informed", "lawsuit_referral")


def arrears_messages(envelope):
    data = envelope["data"]
    owner = data.get("owner") or {}
    context = {"unit": data["unit"], "step": data["step"], "months": data["months"],
               "amount_due": str(data["amount_due"]), "late_fee": str(data["late_fee"]),
               "owner_name": owner.get("name"), "taken_on": data["taken_on"].isoformat()}
    step = data["step"]
    if step == "reminder":
        return [Draft("sms", owner["phone"], "arrears_reminder", context,
                      person_id=owner.get("person_id"))] if owner.get("phone") else []
    if step in ARREARS_LETTERS:
        return [Draft("letter", f"unit:{data['unit']}", ARREARS_LETTERS[step], context,
                      person_id=owner.get("person_id"))]
    if step in ARREARS_LEGAL_TASKS:
        return [Draft("staff", f"role:legal@{envelope['site']}", "arrears_legal_task", context)]
    return []


def local_time(instant, tz=DEFAULT_TZ):
    """As people at the site read it: 2026-11-24 10:00."""
    return instant.astimezone(zone(tz)).strftime("%Y-%m-%d %H:%M")


def first_attempt_at(channel, urgent, now, tz=DEFAULT_TZ):
    """When a new message may first go out: at once, except a non-urgent SMS in quiet hours
    (22:00–08:00 site time), which waits for 08:00 local the next morning."""
    if channel != "sms" or urgent:
        return now
    local = now.astimezone(zone(tz))
    if QUIET_END <= local.time() < QUIET_START:
        return now
    morning = local.date() if local.time() < QUIET_END else local.date() + timedelta(days=1)
    return datetime.combine(morning, QUIET_END, tzinfo=zone(tz)).astimezone(timezone.utc)


def retry_at(now, attempts, base_seconds):
    """After the `attempts`-th failed try: base × 2^attempts seconds later."""
    return now + timedelta(seconds=base_seconds * 2 ** attempts)
