"""Notification rules (SPEC §5), plain Python: which messages an event makes, for whom and from
which template. No Nameko, no SQL, no I/O; `rendering` fills the templates.

A message's life is here too: the status it starts in (`first_status`), what a delivery
attempt makes of it (`record_attempt`), and what staff may do with it (`actions`, `retry`,
`post`). Quiet hours for SMS (22:00–08:00 site time, except urgent matters) hold a message until
the morning (`first_attempt_at`); opt-outs make it `skipped`; retries back off (`retry_at`) until
the attempt limit makes it `dead`. The lifecycle functions change any object with the message's
fields (`channel`, `status`, `attempts`, `next_attempt_at`, `last_error`, `body`, and a letter's
`posted_*`), the stored row included.
"""
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone

from services.common.calendar import DEFAULT_TZ, shift_months, zone
from services.common.errors import IllegalTransition
from services.common.units import building_of_unit

CHANNELS = ("sms", "email", "in_app", "letter", "staff")
# `pending` until tried, `failed` while retries remain, `dead` after the last; `skipped` when the
# person opted out of the channel. A letter is a printable document: `awaiting_post` from the
# moment it is made until staff mark it posted, then `sent`.
STATUSES = ("pending", "sent", "failed", "dead", "skipped", "awaiting_post")
QUIET_HOURS = (time(22, 0), time(8, 0))      # SPEC §5: 22:00–08:00 site time

KIND_NAMES = {"repair": "报修", "complaint": "投诉", "inquiry": "咨询", "suggestion": "建议",
              "lawsuit": "欠费诉讼"}


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
    urgent = data.get("priority") == "urgent"
    return drafts + to_resident(reporter, "satisfaction_survey", context, ("sms", "email"), urgent)


def to_resident(contact, template, context, channels, urgent=False):
    """One draft per channel the contact can be reached on: `sms` to the phone, `email` to the
    address; a contact without either gets nothing on that channel."""
    contact = contact or {}
    addresses = {"sms": contact.get("phone"), "email": contact.get("email")}
    return [Draft(channel, addresses[channel], template, context,
                  person_id=contact.get("person_id"), urgent=urgent)
            for channel in channels if addresses[channel]]


DEADLINE_NAMES = {"acknowledge": "受理确认", "route": "分派", "answer": "答复", "resolve": "处理",
                  "reply": "回复", "dispatch": "派工", "forward": "转交", "callback": "回访",
                  "revisit": "再次回访", "second_callback": "第二次回访",
                  "preservation": "保全申请", "rectify": "整改"}


def sla_breach_messages(envelope):
    """A ticket's deadline passed unmet (SPEC §5 "SLA breach alerts up the chain", agent →
    supervisor → manager → head office by severity): the first-contact owner, who answers for
    it, and one staff message per role it escalates to, addressed to the role at the site
    (`role:manager@001`)."""
    data = envelope["data"]
    tz = data.get("timezone") or DEFAULT_TZ
    kinds, deadlines = BREACH_NAMES.get(envelope["event"].split(".", 1)[0],
                                        (KIND_NAMES, DEADLINE_NAMES))
    context = {
        "code": data["code"], "kind": kinds.get(data["kind"], data["kind"]),
        "deadline": deadlines.get(data["deadline"], data["deadline"]),
        "severity": data.get("severity"), "unit": data.get("unit"),
        "first_contact_owner": data.get("first_contact_owner"),
        "due_at": local_time(data["due_at"], tz), "detected_at": local_time(data["detected_at"], tz),
    }
    owner = [data["first_contact_owner"]] if data.get("first_contact_owner") else []
    roles = [f"role:{role}@{envelope['site']}" for role in data.get("escalate_to") or ()]
    return [Draft("staff", recipient, "sla_breach", context) for recipient in owner + roles]


FRONTDESK_KIND_NAMES = {"move_in": "入伙", "defect": "房屋遗留问题", "parking_rental": "车位租赁"}
FRONTDESK_DEADLINE_NAMES = {"start": "等候（开始办理）", "finish": "办理", "submit": "书面提交开发商"}
# registry's contact breaches (SPEC §8.6): a key customer's quarter, a committee member's month
CARE_KIND_NAMES = {"key_customer": "要害客户", "committee_member": "业委会委员"}
CARE_DEADLINE_NAMES = {"quarterly_contact": "每季度沟通", "monthly_contact": "每月沟通"}
BREACH_NAMES = {"frontdesk": (FRONTDESK_KIND_NAMES, FRONTDESK_DEADLINE_NAMES),
                "registry": (CARE_KIND_NAMES, CARE_DEADLINE_NAMES)}


def frontdesk_notice_messages(envelope):
    """A front-desk procedure's message (frontdesk.notice): the event names the channel and
    the recipient; the template is `frontdesk_<notice>`."""
    data = envelope["data"]
    return [Draft(data["channel"], data["recipient"], f"frontdesk_{data['notice']}",
                  data.get("context") or {}, person_id=data.get("person_id"))]


def sla_warning_messages(envelope):
    """超时预警: a deadline is near; the assignee who must meet it and the first-contact owner
    who answers for it are told (once each, when they are the same person)."""
    data = envelope["data"]
    tz = data.get("timezone") or DEFAULT_TZ
    context = {"code": data["code"], "kind": KIND_NAMES.get(data["kind"], data["kind"]),
               "deadline": DEADLINE_NAMES.get(data["deadline"], data["deadline"]),
               "severity": data.get("severity"), "unit": data.get("unit"),
               "due_at": local_time(data["due_at"], tz)}
    recipients = dict.fromkeys(r for r in (data.get("assignee"), data.get("first_contact_owner")) if r)
    return [Draft("staff", recipient, "sla_warning", context) for recipient in recipients]


def on_call_messages(envelope):
    """An urgent repair (SPEC §2.2): the technician on call gets an SMS at once, whatever the
    hour (urgent: quiet hours do not hold it), and a staff task; with nobody on call, the
    site's supervisors get the task."""
    data = envelope["data"]
    tz = data.get("timezone") or DEFAULT_TZ
    on_call = data.get("on_call")
    context = {"code": data["code"], "unit": data.get("unit"), "description": data.get("description") or "",
               "received_at": local_time(data["received_at"], tz),
               "technician": on_call and on_call["technician"],
               "reporter_phone": (data.get("reporter") or {}).get("phone")}
    if not on_call:
        return [Draft("staff", f"role:supervisor@{envelope['site']}", "on_call_page", context,
                      urgent=True)]
    return [Draft("sms", on_call["phone"], "on_call_page", context, urgent=True),
            Draft("staff", on_call["technician"], "on_call_page", context, urgent=True)]


ESCALATION_REASONS = {"joint_complaint": "联名投诉（{complainants} 人）",
                      "missed_appointments": "第 {missed_appointments} 次预约未履约"}
ESCALATION_TARGETS = {"hq": "总部", "supervisor": "主管"}


def escalation_messages(envelope):
    """A ticket went up the chain by a rule: a joint complaint to head office the same day
    (`role:hq`), a second missed appointment to the site's supervisors."""
    data = envelope["data"]
    tz = data.get("timezone") or DEFAULT_TZ
    to = data["to"]
    context = {"code": data["code"], "kind": KIND_NAMES.get(data["kind"], data["kind"]),
               "severity": data.get("severity"), "unit": data.get("unit"),
               "reason": ESCALATION_REASONS[data["reason"]].format(**data),
               "to": ESCALATION_TARGETS[to], "escalated_at": local_time(data["escalated_at"], tz),
               "first_contact_owner": data.get("first_contact_owner"),
               "description": data.get("description") or ""}
    recipient = "role:hq" if to == "hq" else f"role:{to}@{envelope['site']}"
    return [Draft("staff", recipient, "escalation", context)]


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
    lobby = Draft("in_app", f"building:{building_of_unit(unit)}", "renovation_lobby_notice", context)
    # the applicant learns the permit and pass numbers (SPEC §5 "pass issue")
    passes = "、".join(f"{p.get('holder')} {p.get('number')}" for p in data.get("passes") or ())
    return [lobby, *to_resident(data.get("applicant"), "renovation_permit",
                                {**context, "passes": passes}, ("sms",))]


def renovation_decided_messages(envelope):
    """A rejection to the applicant by SMS, with the work items and reasons that decided it.
    An approval is told by the fee notice (`renovation.fees_due`), which says what to pay."""
    data = envelope["data"]
    if data["decision"] == "approved":
        return []
    context = {"unit": data["unit"], "reasons": "；".join(data.get("rejection_reasons") or ())}
    return to_resident(data.get("applicant"), "renovation_decision", context, ("sms",))


FEE_NAMES = {"management": "物业管理费", "parking": "停车费",
             "renovation_management": "装修管理费", "renovation_deposit": "装修保证金",
             "debris_removal": "建筑垃圾清运费", "repair": "有偿维修服务费",
             "late_fee": "违约金"}       # billing's fees; `other` reads its line's description


def fee_lines(items):
    """'装修管理费 300.00 元；装修保证金 2000.00 元' from an event's fee lines."""
    return "；".join(f"{FEE_NAMES.get(i['fee'], i.get('description') or i['fee'])} {i['amount']} 元"
                    for i in items)


def renovation_fee_notice_messages(envelope):
    """An approved renovation's fees (SPEC §5 "fee notices"): what to pay and by when, so that
    the permit can be issued."""
    data = envelope["data"]
    items = data["items"]
    context = {"unit": data["unit"], "fees": fee_lines(items),
               "total": str(sum(i["amount"] for i in items)), "due_date": data["due_date"].isoformat()}
    return to_resident(data.get("applicant"), "renovation_fees", context, ("sms",))


def bill_messages(envelope):
    """An invoice issued to a unit: the bill to its owner by SMS and email (000: 每月的管理费帐单
    及时通过电子邮件、短信...发送给客户). Renovation fees are told by their own fee notice."""
    data = envelope["data"]
    if data["kind"] == "renovation":
        return []
    owner = data.get("owner") or {}
    context = {"unit": data["unit"], "period": data.get("period"), "kind": data["kind"],
               "amount": str(data["amount"]), "due_date": data["due_date"].isoformat(),
               "fees": fee_lines(data.get("items") or ()), "owner_name": owner.get("name"),
               "late_fee_rate": percent(data["late_fee_daily_rate"])}
    return to_resident(owner, "bill", context, ("sms", "email"))


def receipt_messages(envelope):
    """An invoice settled: the owner learns the receipt number of the payment."""
    data = envelope["data"]
    owner = data.get("owner") or {}
    tz = data.get("timezone") or DEFAULT_TZ
    context = {"unit": data["unit"], "period": data.get("period"), "amount": str(data["amount"]),
               "receipt_number": data.get("receipt_number"), "owner_name": owner.get("name"),
               "paid_at": local_time(data["paid_at"], tz)}
    return to_resident(owner, "payment_received", context, ("sms",))


def unit_changed_messages(envelope):
    """Move-in (入伙): a welcome SMS with the customer-affairs assistant's mobile (000: 入伙手续
    办理后...告知其客户事务助理的手机号); a new assistant: the owner is told who and how to reach
    them (000: 部门更换客服人员,及时发送短信通知客户)."""
    data = envelope["data"]
    template = {"moved_in": "welcome", "assistant_changed": "assistant_changed"}.get(data["change"])
    assistant = data.get("assistant") or {}
    if template is None or not assistant.get("phone"):
        return []
    owner = data.get("owner") or {}
    context = {"unit": data["unit"], "owner_name": owner.get("name"),
               "assistant_name": assistant.get("name"), "assistant_phone": assistant["phone"]}
    return to_resident(owner, template, context, ("sms",))


# What a fee-affecting change of registry changes, as the owner's notice names it.
CHANGED_FIELD_NAMES = {"area_m2": "计费面积（平方米）", "usage": "房屋用途",
                       "major_customer": "大客户", "handover_date": "交房日期"}


def change_notice_messages(envelope):
    """A fee-affecting change approved (001 §7 涉及业主收费的信息变更,应在变更之前书面知会业主): a
    written notice to post to the unit and an SMS to the owner, before it takes effect."""
    data = envelope["data"]
    owner = data.get("owner") or {}
    changes = "；".join(
        f"{CHANGED_FIELD_NAMES.get(name, name)} {data['before'].get(name)} → {value}"
        for name, value in data["changes"].items())
    context = {"unit": data["unit"], "owner_name": owner.get("name"), "changes": changes,
               "effective_on": data["effective_on"].isoformat(), "reason": data["reason"]}
    return [Draft("letter", f"unit:{data['unit']}", "change_notice", context,
                  person_id=owner.get("person_id")),
            *to_resident(owner, "change_notice", context, ("sms",))]


# Warranty (保修期): 000 "保修期满前一个月,统一发短信提醒客户".
WARRANTY_NOTICE_MONTHS = 1


def warranty_reminder_day(warranty_until):
    """The day the reminder is due: a month before the warranty ends (2027-06-30 → 2027-05-30)."""
    return shift_months(warranty_until, -WARRANTY_NOTICE_MONTHS)


def warranty_reminder_due(warranty_until, today):
    """Due from its day until the warranty ends, so a sweep that missed a day catches up; never
    after: a reminder of a warranty already over helps no one."""
    return warranty_reminder_day(warranty_until) <= today <= warranty_until


def warranty_messages(unit, owner, warranty_until):
    context = {"unit": unit, "owner_name": (owner or {}).get("name"),
               "warranty_until": warranty_until.isoformat()}
    return to_resident(owner, "warranty_expiry", context, ("sms",))


# Holiday greetings (000 "在节假日发短信祝福客户"; 001 "春节、中秋、元旦、国庆"), one template each.
GREETED_HOLIDAYS = ("new_years_day", "spring_festival", "mid_autumn", "national_day")


def greetings_due(today, first_day_of):
    """The holidays whose first day is `today` (`first_day_of(name, year)`, the calendar's).
    Only that day: a greeting found late (the service down all day) is not sent on the 2nd."""
    return [name for name in GREETED_HOLIDAYS if first_day_of(name, today.year) == today]


def greeting_drafts(holiday, owners, opted_out):
    """One greeting per phone (a person owning two units is greeted once), as
    [(draft, owner, skipped)]: `owners` in unit order, each with `phone`, `name`, `person_id`;
    skipped when any record of that phone opted out of SMS (`opted_out` {(person_id, channel)})."""
    return owner_sms_drafts(f"greeting_{holiday}", owners, opted_out, {})


def activity_sms_drafts(data, owners, opted_out, tz):
    """An activity published with `notify_sms` (000 "举行大型社区文化活动时发短信通知客户"): one
    SMS per owner's phone of the site, as `greeting_drafts` makes them; times as the site reads them."""
    context = {"title": data["title"], "purpose": data["purpose"],
               "starts_at": local_time(data["starts_at"], tz),
               "ends_at": local_time(data["ends_at"], tz), "capacity": data.get("capacity")}
    return owner_sms_drafts("activity_sms", owners, opted_out, context)


def owner_sms_drafts(template, owners, opted_out, context):
    """One SMS of `template` per phone among `owners`, [(draft, owner, skipped)]."""
    by_phone = {}
    for owner in owners:
        by_phone.setdefault(owner.phone, []).append(owner)
    made = []
    for phone, records in by_phone.items():
        first = records[0]
        skipped = any((r.person_id, "sms") in opted_out for r in records if r.person_id)
        made.append((Draft("sms", phone, template, {"owner_name": first.name, **context},
                           person_id=first.person_id), first, skipped))
    return made


# -- the working-day calendar --------------------------------------------------------------

def calendar_problems(year, holidays, workdays):
    """What is wrong with a year as entered, {field: [messages]} (empty when nothing): every
    day within the year, each holiday named once, a day in one holiday at most and never also a
    workday, a holiday's first day one of its days, a workday a Saturday or Sunday (the other days
    are worked anyway)."""
    problems = {}

    def say(where, message):
        problems.setdefault(where, []).append(message)

    seen_names, days_off = set(), {}
    for i, holiday in enumerate(holidays):
        where = f"holidays.{i}"
        if holiday["name"] in seen_names:
            say(f"{where}.name", f"{holiday['name']} is entered twice; one entry per holiday")
        seen_names.add(holiday["name"])
        for day in holiday["days"]:
            if day.year != year:
                say(f"{where}.days", f"{day.isoformat()} is not in {year}")
            elif day in days_off and days_off[day] != holiday["name"]:
                say(f"{where}.days", f"{day.isoformat()} is also a day of {days_off[day]}")
            days_off.setdefault(day, holiday["name"])
        if holiday.get("first_day") is not None and holiday["first_day"] not in holiday["days"]:
            say(f"{where}.first_day", f"{holiday['first_day'].isoformat()} is not one of its days")
    for day in workdays:
        if day.year != year:
            say("workdays", f"{day.isoformat()} is not in {year}")
        elif day in days_off:
            say("workdays", f"{day.isoformat()} is both a workday and a day of {days_off[day]}")
        elif day.weekday() < 5:
            say("workdays", f"{day.isoformat()} is a weekday, worked anyway; workdays are the "
                            "weekend days worked in exchange (调休)")
    return problems


def entered_year(holidays, workdays):
    """The year as stored and sent: days sorted, ISO strings, each first day filled in."""
    return {"holidays": [{"name": h["name"],
                          "first_day": (h.get("first_day") or min(h["days"])).isoformat(),
                          "days": sorted({d.isoformat() for d in h["days"]})} for h in holidays],
            "workdays": sorted({d.isoformat() for d in workdays})}


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
               "late_fee_rate": percent(data["late_fee_daily_rate"]),
               "owner_name": owner.get("name"), "taken_on": data["taken_on"].isoformat()}
    step = data["step"]
    if step == "reminder":
        return to_resident(owner, "arrears_reminder", context, ("sms",))
    if step in ARREARS_LETTERS:
        return [Draft("letter", f"unit:{data['unit']}", ARREARS_LETTERS[step], context,
                      person_id=owner.get("person_id"))]
    if step in ARREARS_LEGAL_TASKS:
        return [Draft("staff", f"role:legal@{envelope['site']}", "arrears_legal_task", context)]
    return []


def percent(rate):
    """A daily rate as people read it: Decimal("0.0003") → "0.03%"."""
    return f"{(rate * 100).normalize():f}%"


def local_time(instant, tz=DEFAULT_TZ):
    """As people at the site read it: 2026-11-24 10:00."""
    return instant.astimezone(zone(tz)).strftime("%Y-%m-%d %H:%M")


def quiet_hours(setting):
    """`"22:00-08:00"` as (start, end), or None for `"off"` (an operator's choice, e.g. a demo
    at night; YAML reads a bare off as False); anything else stops the service at start-up."""
    if setting is False or str(setting).strip().lower() in ("off", "none", "false"):
        return None
    try:
        start, end = (time.fromisoformat(part.strip()) for part in str(setting).split("-"))
    except ValueError as exc:
        raise ValueError(f"quiet hours are HH:MM-HH:MM or off, not {setting!r}") from exc
    return start, end


def first_attempt_at(channel, urgent, now, tz=DEFAULT_TZ, quiet=QUIET_HOURS):
    """When a new message may first go out: at once, except a non-urgent SMS in quiet hours
    (22:00–08:00 site time), which waits for 08:00 local the next morning."""
    if channel != "sms" or urgent or quiet is None:
        return now
    start, end = quiet
    local = now.astimezone(zone(tz))
    in_quiet = (local.time() >= start or local.time() < end) if start > end else start <= local.time() < end
    if not in_quiet:
        return now
    morning = local.date() if local.time() < end else local.date() + timedelta(days=1)
    return datetime.combine(morning, end, tzinfo=zone(tz)).astimezone(timezone.utc)


def retry_at(now, attempts, base_seconds):
    """After the `attempts`-th failed try: base × 2^attempts seconds later."""
    return now + timedelta(seconds=base_seconds * 2 ** attempts)


# -- a message's life ----------------------------------------------------------------------

@dataclass(frozen=True)
class RetryPolicy:
    """How often a failing message is tried (provider settings `max_attempts` and
    `retry_base_seconds`): base × 2^n seconds after the n-th failure, dead after the last."""
    max_attempts: int = 5
    base_seconds: float = 30.0


def first_status(channel, now, *, renderable, opted_out, send_now, tz=DEFAULT_TZ, quiet=QUIET_HOURS):
    """(status, next_attempt_at) of a message just made from an event. One whose template could
    not be filled is `dead` at once, in sight rather than an event requeued for ever; opted
    out: `skipped`; a letter waits to be posted; anything else is `pending`, a non-urgent SMS
    in quiet hours until the morning (`send_now`: urgent, or nothing reaches anyone's phone)."""
    if not renderable:
        return "dead", None
    if opted_out:
        return "skipped", None
    if channel == "letter":
        return "awaiting_post", None
    return "pending", first_attempt_at(channel, send_now, now, tz, quiet)


def skip(message):
    """The person opted out of the channel after the message was made: it is never sent."""
    message.status, message.next_attempt_at = "skipped", None
    return message.status


def record_attempt(message, now, error, policy=RetryPolicy()):
    """A provider tried the message (`error` None: delivered): `sent`, or `failed` to be tried
    again later, or `dead` after the last attempt allowed. Its new status."""
    message.attempts += 1
    message.last_error = error
    if error is None:
        message.status, message.next_attempt_at = "sent", None
    elif message.attempts >= policy.max_attempts:
        message.status, message.next_attempt_at = "dead", None
    else:
        message.status = "failed"
        message.next_attempt_at = retry_at(now, message.attempts - 1, policy.base_seconds)
    return message.status


def actions(message):
    """What staff may do with the message now: post a letter, retry a failed or dead one."""
    if message.channel == "letter" and message.status == "awaiting_post":
        return ["post"]
    # a message whose template could not be filled has nothing to send again
    return ["retry"] if message.status in ("dead", "failed") and message.body else []


def retry(message, now):
    """One more try at once (e.g. after an outage of the SMS gateway); the attempts so far count,
    so a failed retry of a dead message leaves it dead."""
    _require(message, "retry")
    message.status, message.next_attempt_at = "pending", now


def post(message, posted_at, posted_by, tracking_number=None):
    """Staff posted a letter (a lawyer's letter by express mail, with its number): `sent`."""
    _require(message, "post")
    message.status = "sent"
    message.posted_at, message.posted_by, message.tracking_number = posted_at, posted_by, tracking_number


def _require(message, action):
    allowed = actions(message)
    if action not in allowed:
        raise IllegalTransition.build(action, message.status, allowed, "message")
