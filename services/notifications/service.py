"""notifications: messages made from bus events, delivered through providers (SPEC §5)."""
import itertools
import logging
import time
from datetime import timedelta

import eventlet
import eventlet.queue
from nameko.timer import timer
from prometheus_client import Counter
from sqlalchemy.exc import IntegrityError

from services.common import calendar, calendar_sync, entrypoints
from services.common.business import BusinessGauges
from services.common.calendar import DEFAULT_TZ, zone
from services.common.clock import as_utc
from services.common.contracts import CalendarEnteredV1
from services.common.db import Database, new_id, paginate
from services.common.entrypoints import command, handles, load
from services.common.errors import Conflict, Forbidden, NotFound, ValidationFailed
from services.common.metrics import MESSAGES, metric
from services.common.fields import FIRST_YEAR, LAST_YEAR
from services.common.roles import HEAD_OFFICE, STAFF, SUPERVISORS, SWEEPERS
from services.common.rpc import TimedRpc
from services.common.sweeps import SweepIn
from services.notifications import domain, rendering, storage
from services.notifications.providers import Providers
from services.notifications.rendering import render
from services.notifications.schemas import (
    AttemptOut, CalendarIn, CalendarOut, MessageFilters, MessageOut, PostedIn, PreviewIn,
)
from services.notifications.storage import Base, CalendarYear, Message

log = logging.getLogger(__name__)


# The most events of one kind made into messages in one transaction (bounded in effect by the
# process's max_workers: each waiting event holds a worker until its batch commits).
BATCH = 100


class NotificationsService(entrypoints.ServiceBase):
    name = "notifications"

    uow = Database(Base)
    business = BusinessGauges({MESSAGES: storage.messages_by_status})
    rpc = TimedRpc()
    delivery = Providers()

    @handles("ticketing", "callback_due")
    def on_callback_due(self, data, envelope):
        self._notify(envelope, domain.callback_due_messages(envelope))

    @handles("ticketing", "sla_breached", handler="notifications.ticketing_sla_breached")
    def on_ticket_sla_breached(self, data, envelope):
        data["ticket_id"] = data["subject_id"]      # so that the ticket's messages list them
        self._notify(envelope, domain.sla_breach_messages(envelope))

    @handles("ticketing", "sla_warning")
    def on_sla_warning(self, data, envelope):
        self._notify(envelope, domain.sla_warning_messages(envelope))

    @handles("ticketing", "on_call_paged")
    def on_on_call_paged(self, data, envelope):
        self._notify(envelope, domain.on_call_messages(envelope))

    @handles("ticketing", "escalated")
    def on_ticket_escalated(self, data, envelope):
        self._notify(envelope, domain.escalation_messages(envelope))

    @handles("renovation", "sla_breached", handler="notifications.renovation_sla_breached")
    def on_renovation_sla_breached(self, data, envelope):
        self._notify(envelope, domain.sla_breach_messages(envelope))

    @handles("frontdesk", "sla_breached", handler="notifications.frontdesk_sla_breached")
    def on_frontdesk_sla_breached(self, data, envelope):
        self._notify(envelope, domain.sla_breach_messages(envelope))

    @handles("frontdesk", "notice")
    def on_frontdesk_notice(self, data, envelope):
        self._notify(envelope, domain.frontdesk_notice_messages(envelope))

    @handles("registry", "sla_breached", handler="notifications.registry_sla_breached")
    def on_registry_sla_breached(self, data, envelope):
        """A key customer's quarter or a committee member's month passed with no contact: the
        site manager is told (SPEC §8.6)."""
        self._notify(envelope, domain.sla_breach_messages(envelope))

    @handles("frontdesk", "activity_published", when=lambda data: data["notify_sms"])
    def on_activity_published(self, data, envelope):
        """An activity published with `notify_sms`: every owner of the site with a phone gets one
        SMS (opted-out ones skipped), once per phone and activity (event id
        `activity:<id>`, whatever redelivers it); not urgent, so quiet hours hold it."""
        now = self.clock()
        owners = storage.owners_of_site(self.uow.session, envelope["site"])
        tz = owners[0].timezone if owners else DEFAULT_TZ
        ids = self._store_owner_sms(
            owners, lambda owners, opted_out: domain.activity_sms_drafts(data, owners, opted_out, tz),
            envelope["event"], f"activity:{data['activity_id']}", now)
        self.uow.commit()
        self._deliver_due(now, ids)

    @handles("billing", "sla_breached", handler="notifications.billing_sla_breached")
    def on_billing_sla_breached(self, data, envelope):
        """A won lawsuit with no preservation applied for in time: the legal adviser and the
        manager are told."""
        self._notify(envelope, domain.sla_breach_messages(envelope))

    @handles("renovation", "decided", handler="notifications.renovation_decided")
    def on_renovation_decided(self, data, envelope):
        self._notify(envelope, domain.renovation_decided_messages(envelope))

    @handles("renovation", "fees_due", handler="notifications.renovation_fees_due")
    def on_renovation_fees_due(self, data, envelope):
        self._notify(envelope, domain.renovation_fee_notice_messages(envelope))

    @handles("renovation", "permit_issued")
    def on_permit_issued(self, data, envelope):
        self._notify(envelope, domain.lobby_notice_messages(envelope))

    @handles("billing", "arrears_escalated")
    def on_arrears_escalated(self, data, envelope):
        self._notify(envelope, domain.arrears_messages(envelope))

    # A monthly run raises one per unit at once: they are made a batch per transaction.
    @handles("billing", "invoice_issued", batch=BATCH)
    def on_invoice_issued(self, envelopes):
        self._notify_all([(envelope, domain.bill_messages(envelope)) for envelope in envelopes])

    @handles("billing", "invoice_paid")
    def on_invoice_paid(self, data, envelope):
        self._notify(envelope, domain.receipt_messages(envelope))

    @handles("registry", "unit_changed")
    def on_unit_changed(self, data, envelope):
        self._notify(envelope, self._unit_changed(envelope))

    @handles("registry", "change_notice")
    def on_change_notice(self, data, envelope):
        self._notify(envelope, domain.change_notice_messages(envelope))

    def _unit_changed(self, envelope):
        """Keep the unit's warranty for the expiry sweep, then welcome or introduce the
        assistant."""
        storage.keep_warranty(self.uow.session, envelope)
        storage.keep_owner(self.uow.session, envelope)
        return domain.unit_changed_messages(envelope)

    # -- sweeps ----------------------------------------------------------------------------

    @timer(interval=15)
    def deliver_pending(self):
        """The delivery sweep: every replica runs it; each due message is claimed by one."""
        self._deliver_due(self.clock())

    @timer(interval=3600)
    def warranty_sweep(self):
        """Daily in effect: a unit is reminded once per warranty end, whichever hour or replica
        finds it due first (the message's unique key decides); the delivery sweep sends it."""
        self._remind_warranties(self.clock())

    @timer(interval=3600)
    def greeting_sweep(self):
        """Hourly, so that the first day of a holiday is found in every site's time zone; each
        person is greeted once a holiday whichever hour or replica finds it (the unique key)."""
        self._greet(self.clock())

    @command(replays=False)
    def sweep(self, payload):
        """The sweeps at `as_of`, as the timers run them, so that an operator can replay a day:
        {"warranty_reminders": n, "greetings": n, "sent": n, "failed": n, "dead": n, "skipped": n}."""
        self.caller.identity.require_role("run the notifications sweep", *SWEEPERS)
        now = as_utc(load(SweepIn(), payload)["as_of"])
        reminded = self._remind_warranties(now)
        greeted = self._greet(now)
        return {"warranty_reminders": reminded, "greetings": greeted, **self._deliver_due(now)}

    @command
    def deliver(self, as_of=None):
        """Try every message due at `as_of` (now by default): {"sent": n, "failed": n, "dead": n}."""
        self.caller.identity.require_role("run deliveries", *SWEEPERS)
        return self._deliver_due(self._as_of(as_of))

    # -- people and messages -------------------------------------------------------------

    @command
    def set_opt_out(self, person_id, channel, opted_out=True):
        """A person stops (or resumes) messages on a channel; a resident only for themselves."""
        identity = self.caller.identity
        if channel not in domain.CHANNELS:
            raise ValidationFailed.from_messages({"channel": [f"one of {', '.join(domain.CHANNELS)}"]})
        if not person_id or not isinstance(person_id, str):
            raise ValidationFailed.from_messages({"person_id": ["required"]})
        if identity.is_resident and identity.person_id != person_id:
            raise Forbidden("a resident may change only their own opt-outs", {"person_id": person_id})
        # persons are registry's: it answers 404 for none and 403 for another site's
        self.rpc.registry.person_scope(person_id)
        storage.set_opt_out(self.uow.session, person_id, channel, opted_out, self.clock())
        self.uow.commit()
        return {"person_id": person_id, "channel": channel, "opted_out": bool(opted_out)}

    @command
    def list_messages(self, filters=None, cursor=None, limit=50):
        """Staff see their sites' messages; a resident only the messages addressed to them."""
        f = load(MessageFilters(), filters or {})
        stmt = storage.visible(self.caller.identity, f["site"])
        for name in ("ticket_id", "unit", "recipient", "channel", "status", "event"):
            if f[name]:
                stmt = stmt.where(getattr(Message, name) == f[name])
        rows, next_cursor = paginate(self.uow.session, stmt, Message.id, cursor, limit)
        return {"items": MessageOut(many=True).dump(rows), "next_cursor": next_cursor}

    @command
    def get_message(self, message_id):
        """A message with every delivery attempt, oldest first."""
        message = self._message(message_id)
        attempts = storage.attempts_of(self.uow.session, message.id)
        return {**MessageOut().dump(message), "attempt_log": AttemptOut(many=True).dump(attempts)}

    @command
    def retry(self, message_id):
        """Give a dead (or failing) message one more try at once, e.g. after an outage of the
        SMS gateway; its attempts so far stay on record, so a failed retry leaves it dead."""
        self.caller.identity.require_role("retry messages", *SUPERVISORS)
        message, now = self._message(message_id), self.clock()
        domain.retry(message, now)
        self.uow.commit()
        self._deliver_due(now, [message.id])
        self.uow.session.expire(message)     # the delivery wrote its new state by statement
        return self.get_message(message.id)

    @command
    def letter_document(self, message_id):
        """A letter as a printable A4 page: {"content_type", "body"}."""
        self._require_staff("print letters")
        message = self._message(message_id)
        if message.channel != "letter":
            raise NotFound(f"message {message_id} is not a letter", {"message_id": message_id})
        issued = message.created_at.astimezone(zone(message.timezone or DEFAULT_TZ)).date().isoformat()
        return {"content_type": "text/html; charset=utf-8",
                "body": rendering.printable(message, issued)}

    @command
    def mark_posted(self, message_id, payload=None):
        """Staff posted a letter (a lawyer's letter by express mail, with its number): the letter
        is `sent`, with who posted it and when."""
        identity = self._require_staff("post letters")
        data = load(PostedIn(), payload or {})
        message = self._message(message_id)
        domain.post(message, data["posted_at"] or self.clock(), identity.sub, data["tracking_number"])
        self.uow.commit()
        return self.get_message(message.id)

    # -- the working-day calendar (SPEC preamble): notifications keeps the entered years ---

    CALENDAR_EVENT = "notifications.calendar_entered"

    @command
    def enter_calendar(self, year, payload):
        """Head office enters (or corrects) a year's holidays and adjusted working days: kept,
        applied here at once and in every other process by the event; deadlines computed from
        then on use it, those already on cases stay."""
        identity = self.caller.identity
        identity.require_role("enter the working-day calendar", *HEAD_OFFICE)
        year = self._year(year)
        data = load(CalendarIn(), payload)
        problems = domain.calendar_problems(year, data["holidays"], data["workdays"])
        if problems:
            raise ValidationFailed.from_messages(problems)
        now, session = self.clock(), self.uow.session
        kept = session.get(CalendarYear, year, with_for_update=True) or CalendarYear(year=year, version=0)
        entered = domain.entered_year(data["holidays"], data["workdays"])
        kept.version += 1
        kept.holidays, kept.workdays = entered["holidays"], entered["workdays"]
        kept.entered_by, kept.entered_at = identity.sub, now
        session.add(kept)
        event = CalendarEnteredV1().load(self._calendar_event(kept))
        self.uow.add_event(self.CALENDAR_EVENT, event)
        try:
            self.uow.commit()
        except IntegrityError as exc:    # a first entry of the year made at the same moment
            raise Conflict(f"{year} was entered at the same time; read it and enter again",
                           {"year": year}) from exc
        calendar_sync.apply(event)
        return self.get_calendar(year)

    @command
    def get_calendar(self, year):
        """A year's working-day calendar and where it comes from: entered, library or
        weekdays_only (none known: Monday to Friday count)."""
        self._require_staff("read the working-day calendar")
        year = self._year(year)
        kept = self.uow.session.get(CalendarYear, year)
        if kept is not None:
            return CalendarOut().dump({**CalendarEnteredV1().load(self._calendar_event(kept)),
                                       "source": calendar.ENTERED, "entered_by": kept.entered_by})
        if calendar.library_knows(year):
            return CalendarOut().dump({"year": year, "source": calendar.LIBRARY,
                                       **calendar.library_year(year)})
        return {"year": year, "source": calendar.WEEKDAYS_ONLY, "holidays": [], "workdays": [],
                "version": None, "entered_by": None, "entered_at": None}

    @command
    def calendar_years(self):
        """Every entered year as its event carries it, for a process starting (CalendarSync)."""
        return [self._calendar_event(kept) for kept in storage.calendar_years(self.uow.session)]

    def _calendar_event(self, kept):
        """As stored (JSON-safe): the event's payload before its contract loads it."""
        return {"year": kept.year, "version": kept.version, "holidays": kept.holidays,
                "workdays": kept.workdays, "entered_at": kept.entered_at.isoformat()}

    @staticmethod
    def _year(year):
        if isinstance(year, bool) or not isinstance(year, int) or not FIRST_YEAR <= year <= LAST_YEAR:
            raise ValidationFailed.from_messages({"year": [f"a year from {FIRST_YEAR} to {LAST_YEAR}"]})
        return year

    # -- templates -----------------------------------------------------------------------

    @command
    def list_templates(self):
        self._require_staff("read templates")
        return {"items": rendering.templates(), "next_cursor": None}

    @command
    def preview_template(self, name, channel, payload=None):
        """The template filled from its sample, with `context` laid over it; a field the
        template needs and nobody gave is a 422 naming it."""
        self._require_staff("preview templates")
        context = load(PreviewIn(), payload or {})["context"]
        try:
            rendered = rendering.preview(name, channel, context)
        except rendering.UnknownTemplate as exc:
            raise NotFound(str(exc), {"template": name, "channel": channel}) from exc
        except rendering.MissingField as exc:
            raise ValidationFailed.from_messages({"context": [str(exc)]}) from exc
        return {"name": name, "channel": channel, "subject": rendered.subject, "body": rendered.body}

    # -- helpers -------------------------------------------------------------------------

    def _require_staff(self, action):
        identity = self.caller.identity
        identity.require_role(action, *STAFF)
        return identity

    def _as_of(self, as_of):
        try:
            return as_utc(as_of) if as_of else self.clock()
        except (AttributeError, TypeError, ValueError) as exc:
            raise ValidationFailed.from_messages({"as_of": ["an ISO 8601 instant with an offset"]}) from exc

    def _message(self, message_id):
        """A message the caller may see; 404 otherwise (a resident learns nothing of others')."""
        message = self.uow.session.scalars(
            storage.visible(self.caller.identity).where(Message.id == message_id)).first()
        if message is None:
            raise NotFound(f"no message {message_id}", {"message_id": message_id})
        return message

    def _notify(self, envelope, drafts):
        """An event's messages stored with the event's claim in one transaction, then
        delivered."""
        self._notify_all([(envelope, drafts)])

    def _notify_all(self, made):
        """The messages of each (envelope, drafts) of `made`, stored with the events' claims in
        one transaction (the opt-outs read in one query, the rows written in one bulk insert),
        then delivered."""
        now, messages = self.clock(), []
        opted_out = storage.opted_out(self.uow.session, {
            draft.person_id for _, drafts in made for draft in drafts if draft.person_id})
        for envelope, drafts in made:
            data = envelope["data"]
            messages += [self._new_message(draft, envelope["event"], envelope["id"],
                                           envelope["site"], data.get("timezone"), now,
                                           data.get("ticket_id"), data.get("unit"),
                                           (draft.person_id, draft.channel) in opted_out)
                         for draft in drafts]
        storage.insert_messages(self.uow.session, messages)
        self.uow.commit()
        self._deliver_due(now, [m.id for m in messages if m.status == "pending"])

    def _with_opt_outs(self, drafts):
        opted_out = storage.opted_out(self.uow.session, {d.person_id for d in drafts if d.person_id})
        return [(draft, (draft.person_id, draft.channel) in opted_out) for draft in drafts]

    def _new_message(self, draft, event, event_id, site, tz, now, ticket_id, unit, opted_out):
        """Stored before any provider sees it: a message whose record could still roll back is
        never sent. A non-urgent SMS whose provider only stores it is not held for quiet hours:
        nothing then reaches anyone's phone."""
        tz, error = tz or DEFAULT_TZ, None
        try:
            rendered = render(draft)
        except rendering.MissingField as exc:
            rendered, error = rendering.Rendered(""), f"template {draft.template}.{draft.channel}: {exc}"
            log.error("cannot render a message: %s", error, extra={"event_id": event_id})
        status, first_try = domain.first_status(
            draft.channel, now, renderable=error is None, opted_out=opted_out,
            send_now=draft.urgent or not self.delivery.sends_out(draft.channel), tz=tz,
            quiet=self.delivery.quiet_hours)
        return Message(id=new_id(), channel=draft.channel, recipient=draft.recipient,
                       person_id=draft.person_id, event=event, event_id=event_id,
                       template=draft.template, subject=rendered.subject, body=rendered.body,
                       status=status, attempts=0, ticket_id=ticket_id, unit=unit, site=site,
                       timezone=tz, created_at=now, next_attempt_at=first_try, last_error=error)

    WARRANTY_EVENT = "notifications.warranty_expiring"

    def _remind_warranties(self, now):
        """Units whose warranty ends within a month (in the site's calendar) and that were not
        reminded of this end yet. Two replicas may find the same unit: the message's unique key
        (event id, recipient, channel) keeps one reminder."""
        session = self.uow.session
        rows = storage.warranties_ending_soon(session, now.date(), domain.WARRANTY_NOTICE_MONTHS)
        reminded = 0
        for row in rows:
            if not domain.warranty_reminder_due(row.warranty_until, now.astimezone(zone(row.timezone)).date()):
                continue
            owner = {"name": row.owner_name, "phone": row.owner_phone, "email": row.owner_email,
                     "person_id": row.person_id}
            drafts = domain.warranty_messages(row.unit, owner, row.warranty_until)
            event_id = f"warranty:{row.unit}:{row.warranty_until.isoformat()}"
            made = False
            for draft, opted_out in self._with_opt_outs(drafts):
                message = self._new_message(draft, self.WARRANTY_EVENT, event_id, row.site,
                                            row.timezone, now, None, row.unit, opted_out)
                made = storage.insert_message_once(session, message) or made
            row.reminded_for = row.warranty_until
            reminded += made
        session.commit()
        return reminded

    GREETING_EVENT = "notifications.holiday_greeting"

    def _greet(self, now):
        """On the first day of a greeted holiday (the site's day, the calendar's first day), a
        greeting SMS to every owner with a phone, once per phone and holiday (event id
        `greeting:<holiday>:<year>`); not urgent, so quiet hours hold it until 08:00. How many
        were made."""
        session = self.uow.session
        made = 0
        for tz in storage.owner_time_zones(session):
            today = now.astimezone(zone(tz)).date()
            for holiday in domain.greetings_due(today, calendar.holiday_first_day):
                made += len(self._store_owner_sms(
                    storage.owners_in(session, tz),
                    lambda owners, opted_out: domain.greeting_drafts(holiday, owners, opted_out),
                    self.GREETING_EVENT, f"greeting:{holiday}:{today.year}", now, tz))
        session.commit()
        return made

    def _store_owner_sms(self, owners, drafts_of, event, event_id, now, tz=None):
        """The SMS `drafts_of(owners, opted_out)` makes for `owners`, each stored once per phone
        and `event_id` (the unique key, whatever replays it), in the owner's time zone unless
        `tz` is given: the ids of those stored now."""
        session, ids = self.uow.session, []
        opted_out = storage.opted_out(session, {o.person_id for o in owners if o.person_id})
        for draft, owner, skipped in drafts_of(owners, opted_out):
            message = self._new_message(draft, event, event_id, owner.site, tz or owner.timezone,
                                        now, None, owner.unit, skipped)
            if storage.insert_message_once(session, message):
                ids.append(message.id)
        return ids

    SWEEP_BATCH = 100
    SWEEP_BUDGET_SECONDS = 10.0
    SENDS_AT_ONCE = 32

    def _deliver_due(self, now, ids=None):
        """Try the messages due at `now` (only `ids`, when given), a batch at a time; batches
        follow each other while full ones are claimed and the budget lasts, so that the backlog
        of an outage drains in one sweep rather than a batch per timer tick. Sends go
        `sends_at_once` at a time across batches: the next batch is claimed when the last one
        has nothing left to start, not when all of its sends have ended."""
        counts = {"sent": 0, "failed": 0, "dead": 0, "skipped": 0}
        if ids is not None and not ids:
            return counts
        policy = domain.RetryPolicy(self.delivery.setting("max_attempts", 5),
                                    self.delivery.setting("retry_base_seconds", 30.0))
        statuses = []
        to_send = self._to_send(self._claimed_batches(now, ids), now, policy, statuses)
        self._send_all(to_send, now, policy, statuses,
                       self.delivery.setting("sends_at_once", self.SENDS_AT_ONCE))
        for status in statuses:
            counts[status] += 1
        return counts

    def _claimed_batches(self, now, ids):
        """Each batch claimed in turn (of `ids` only, when given), while the last was full and
        the sweep's budget lasts."""
        deadline = time.monotonic() + self.SWEEP_BUDGET_SECONDS
        lease = timedelta(seconds=self.delivery.setting("claim_lease_seconds", 120.0))
        chunks = None if ids is None else [ids[i:i + self.SWEEP_BATCH]
                                           for i in range(0, len(ids), self.SWEEP_BATCH)]
        while True:
            chunk = None if chunks is None else chunks.pop(0)
            claimed = storage.claim_due(self.uow.session, now, lease, self.SWEEP_BATCH, chunk)
            yield claimed
            if chunks is not None:
                if not chunks:
                    return
            elif len(claimed) < self.SWEEP_BATCH or time.monotonic() >= deadline:
                return

    def _to_send(self, batches, now, policy, statuses):
        """The messages of each claimed batch that go to a provider that sends them out. Before
        them, the batch's opted-out messages skipped and those whose provider only stores them
        delivered at once, recorded together in one commit."""
        session = self.uow.session
        for claimed in batches:
            opted_out = storage.opted_out(session, {m.person_id for m in claimed if m.person_id})
            skipped = [m for m in claimed if (m.person_id, m.channel) in opted_out]
            statuses += [domain.skip(m) for m in skipped]
            to_try = [m for m in claimed if (m.person_id, m.channel) not in opted_out]
            stored = [m for m in to_try if not self.delivery.sends_out(m.channel)]
            self._record_ended(session, [(m, self._send(m)) for m in stored], now, policy,
                               statuses, skipped)
            yield from (m for m in to_try if self.delivery.sends_out(m.channel))

    def _send_all(self, to_send, now, policy, statuses, at_once):
        """Send `to_send` `at_once` at a time (a provider mostly waits on the network), each
        attempt recorded as its send ends: what has ended is committed before its slot is
        given to the next message, so a crash loses the record of no more than the sends then
        in flight (their claim lapses and they are tried again, under the same message id)."""
        ended, in_flight = eventlet.queue.LightQueue(), 0
        for message in itertools.islice(to_send, at_once):
            eventlet.spawn_n(lambda m: ended.put((m, self._send(m))), message)
            in_flight += 1
        while in_flight:
            results = self._ended(ended, in_flight, at_once)
            self._record_ended(self.uow.session, results, now, policy, statuses)
            in_flight -= len(results)
            for message in itertools.islice(to_send, len(results)):
                eventlet.spawn_n(lambda m: ended.put((m, self._send(m))), message)
                in_flight += 1

    def _record_ended(self, session, results, now, policy, statuses, skipped=()):
        """The attempts of `results` [(message, error)] and the messages' new states (with the
        `skipped` ones'), written by statement and committed."""
        attempts = [self._record(message, now, error, policy, statuses) for message, error in results]
        storage.record_attempts(session, attempts, [message for message, _ in results] + list(skipped))
        session.commit()

    RECORD_WINDOW_SECONDS = 0.01

    def _ended(self, ended, in_flight, at_once):
        """The sends that have ended: at least one, and those that end within a short window
        after it (until half the pool has), so that their attempts commit together rather than
        one commit each; none in flight is left unrecorded for longer than the window."""
        results = [ended.get()]
        deadline = time.monotonic() + self.RECORD_WINDOW_SECONDS
        while len(results) < in_flight:
            if ended.empty() and (len(results) >= max(1, at_once // 2)
                                  or time.monotonic() >= deadline):
                break
            try:
                results.append(ended.get(timeout=max(0.0, deadline - time.monotonic())))
            except eventlet.queue.Empty:
                break
        return results

    def _send(self, message):
        """None if the provider took the message, else why not (retried later). It touches
        neither the session nor the message, which only the sweep's own greenthread writes."""
        try:
            self.delivery.deliver(message)
            return None
        except Exception as exc:   # any provider fault is a failed attempt, retried later
            error = f"{type(exc).__name__}: {exc}"[:2000]
            log.warning("delivery of message %s failed: %s", message.id, error,
                        extra={"message_id": message.id, "channel": message.channel})
            return error

    def _record(self, message, now, error, policy, statuses):
        """The attempt's row; the message's new state set on it (written by the caller)."""
        status = domain.record_attempt(message, now, error, policy)
        self._deliveries.labels(message.channel, status).inc()
        statuses.append(status)
        return {"id": new_id(), "message_id": message.id, "at": now, "ok": error is None,
                "error": error}

    @property
    def _deliveries(self):
        return metric(self.name, "deliveries", lambda registry: Counter(
            "propdesk_notification_deliveries", "Delivery attempts by channel and outcome",
            ["channel", "outcome"], registry=registry))
