"""notifications: messages made from bus events, delivered through providers (SPEC §5)."""
import logging
import time
from datetime import timedelta

from nameko.events import event_handler
from nameko.timer import timer
from prometheus_client import Counter
from sqlalchemy import delete, false, insert, or_, select, update

from services.common import entrypoints
from services.common.calendar import DEFAULT_TZ, shift_months, zone
from services.common.contracts import load_event
from services.common.clock import as_utc
from services.common.db import Database, insert_once, locking, new_id, paginate, within_sites
from services.common.entrypoints import command, load
from services.common.metrics import metric
from services.common.errors import Forbidden, IllegalTransition, NotFound, ValidationFailed
from services.common.roles import STAFF, SUPERVISORS, SWEEPERS
from services.common.sweeps import SweepIn
from services.notifications import domain, rendering
from services.notifications.providers import Providers
from services.notifications.rendering import render
from services.notifications.schemas import (
    AttemptOut, MessageFilters, MessageOut, PostedIn, PreviewIn,
)
from services.notifications.storage import Base, DeliveryAttempt, Message, OptOut, Warranty

log = logging.getLogger(__name__)


class NotificationsService(entrypoints.ServiceBase):
    name = "notifications"

    uow = Database(Base)
    delivery = Providers()

    # Requeued on error, so that an event is not lost to a database hiccup; a redelivery of one
    # already handled stops at `first_time`, and one that breaks its contract is dropped.
    @event_handler("ticketing", "callback_due", requeue_on_error=True)
    def on_callback_due(self, body):
        self._handle(body, "notifications.callback_due", domain.callback_due_messages)

    @event_handler("ticketing", "sla_breached", requeue_on_error=True)
    def on_ticket_sla_breached(self, body):
        self._handle(body, "notifications.ticketing_sla_breached", domain.sla_breach_messages,
                     ticket_id="subject_id")

    @event_handler("renovation", "sla_breached", requeue_on_error=True)
    def on_renovation_sla_breached(self, body):
        self._handle(body, "notifications.renovation_sla_breached", domain.sla_breach_messages)

    @event_handler("renovation", "decided", requeue_on_error=True)
    def on_renovation_decided(self, body):
        self._handle(body, "notifications.renovation_decided", domain.renovation_decided_messages)

    @event_handler("renovation", "fees_due", requeue_on_error=True)
    def on_renovation_fees_due(self, body):
        self._handle(body, "notifications.renovation_fees_due", domain.renovation_fee_notice_messages)

    @event_handler("renovation", "permit_issued", requeue_on_error=True)
    def on_permit_issued(self, body):
        self._handle(body, "notifications.permit_issued", domain.lobby_notice_messages)

    @event_handler("billing", "arrears_escalated", requeue_on_error=True)
    def on_arrears_escalated(self, body):
        self._handle(body, "notifications.arrears_escalated", domain.arrears_messages)

    @event_handler("billing", "invoice_issued", requeue_on_error=True)
    def on_invoice_issued(self, body):
        self._handle(body, "notifications.invoice_issued", domain.bill_messages)

    @event_handler("billing", "invoice_paid", requeue_on_error=True)
    def on_invoice_paid(self, body):
        self._handle(body, "notifications.invoice_paid", domain.receipt_messages)

    @event_handler("registry", "unit_changed", requeue_on_error=True)
    def on_unit_changed(self, body):
        self._handle(body, "notifications.unit_changed", self._unit_changed)

    def _unit_changed(self, envelope):
        """Keep the unit's warranty for the expiry sweep, then welcome or introduce the
        assistant. An event older than what is kept (redelivered late) does not roll it back."""
        kept = self.uow.session.get(Warranty, envelope["data"]["unit"])
        if kept is None or kept.updated_at <= envelope["occurred_at"]:
            self._keep_warranty(kept, envelope)
        return domain.unit_changed_messages(envelope)

    def _keep_warranty(self, kept, envelope):
        data, session = envelope["data"], self.uow.session
        if data["change"] == "deactivated" or not data.get("warranty_until"):
            if kept is not None:
                session.delete(kept)
            return
        owner = data.get("owner") or {}
        kept = kept or Warranty(unit=data["unit"])
        kept.site, kept.timezone = envelope["site"], data.get("timezone") or DEFAULT_TZ
        kept.warranty_until = data["warranty_until"]
        kept.owner_name, kept.owner_phone = owner.get("name"), owner.get("phone")
        kept.owner_email, kept.person_id = owner.get("email"), owner.get("person_id")
        kept.updated_at = envelope["occurred_at"]
        session.add(kept)

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

    @command
    def sweep(self, payload):
        """Both sweeps at `as_of`, as the timers run them, so that an operator
        can replay a day: {"warranty_reminders": n, "sent": n, "failed": n, "dead": n, "skipped": n}."""
        self.caller.identity.require_role("run the notifications sweep", *SWEEPERS)
        now = as_utc(load(SweepIn(), payload)["as_of"])
        reminded = self._remind_warranties(now)
        return {"warranty_reminders": reminded, **self._deliver_due(now)}

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
        if opted_out:
            insert_once(self.uow.session, insert(OptOut).values(
                person_id=person_id, channel=channel, created_at=self.clock()))
        else:
            self.uow.session.execute(delete(OptOut).where(
                OptOut.person_id == person_id, OptOut.channel == channel))
        self.uow.commit()
        return {"person_id": person_id, "channel": channel, "opted_out": bool(opted_out)}

    @command
    def list_messages(self, filters=None, cursor=None, limit=50):
        """Staff see their sites' messages; a resident only the messages addressed to them."""
        f = load(MessageFilters(), filters or {})
        stmt = self._visible(f["site"])
        for name in ("ticket_id", "unit", "recipient", "channel", "status", "event"):
            if f[name]:
                stmt = stmt.where(getattr(Message, name) == f[name])
        rows, next_cursor = paginate(self.uow.session, stmt, Message.id, cursor, limit)
        return {"items": MessageOut(many=True).dump(rows), "next_cursor": next_cursor}

    @command
    def get_message(self, message_id):
        """A message with every delivery attempt, oldest first."""
        message = self._message(message_id)
        attempts = self.uow.session.scalars(
            select(DeliveryAttempt).where(DeliveryAttempt.message_id == message.id)
            .order_by(DeliveryAttempt.at, DeliveryAttempt.id)).all()
        return {**MessageOut().dump(message), "attempt_log": AttemptOut(many=True).dump(attempts)}

    @command
    def retry(self, message_id):
        """Give a dead (or failing) message one more try at once, e.g. after an outage of the
        SMS gateway; its attempts so far stay on record, so a failed retry leaves it dead."""
        self.caller.identity.require_role("retry messages", *SUPERVISORS)
        message = self._message(message_id)
        if "retry" not in self._actions(message):
            raise IllegalTransition.build("retry", message.status, self._actions(message), "message")
        now = self.clock()
        message.status, message.next_attempt_at = "pending", now
        self.uow.commit()
        self._deliver_due(now, [message.id])
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
        if message.channel != "letter" or message.status != "awaiting_post":
            raise IllegalTransition.build("post", message.status, self._actions(message), "message")
        message.status = "sent"
        message.posted_at = data["posted_at"] or self.clock()
        message.posted_by, message.tracking_number = identity.sub, data["tracking_number"]
        self.uow.commit()
        return self.get_message(message.id)

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

    def _visible(self, site=None):
        identity = self.caller.identity
        stmt = within_sites(select(Message), Message.site, identity, site)
        if identity.is_resident:
            stmt = stmt.where(Message.person_id == identity.person_id
                              if identity.person_id else false())
        return stmt

    def _message(self, message_id):
        """A message the caller may see; 404 otherwise (a resident learns nothing of others')."""
        message = self.uow.session.scalars(self._visible().where(Message.id == message_id)).first()
        if message is None:
            raise NotFound(f"no message {message_id}", {"message_id": message_id})
        return message

    @staticmethod
    def _actions(message):
        if message.channel == "letter" and message.status == "awaiting_post":
            return ["post"]
        # a message whose template could not be filled has nothing to send again
        return ["retry"] if message.status in ("dead", "failed") and message.body else []

    @staticmethod
    def _envelope(body):
        """The loaded event, or None for one that breaks its contract: no redelivery can mend
        it, so it is logged and dropped instead of requeued for ever."""
        try:
            return load_event(body)
        except ValidationFailed as exc:
            event_id = body.get("id") if isinstance(body, dict) else None
            log.error("dropped an event that breaks its contract: %s", exc,
                      extra={"event_id": event_id, **exc.extra})
            return None

    def _handle(self, body, key, messages_of, ticket_id=None):
        """An event, once: its messages (`messages_of(envelope)` → drafts) stored with the
        event's claim in one transaction, then delivered. `ticket_id` names the data field that
        lists the messages by ticket when it is not `ticket_id`."""
        envelope = self._envelope(body)
        if envelope is None or not self.uow.first_time(envelope["id"], key):
            return
        data = envelope["data"]
        if ticket_id:
            data["ticket_id"] = data[ticket_id]
        drafts = messages_of(envelope)
        now = self.clock()
        messages = [self._new_message(draft, envelope["event"], envelope["id"], envelope["site"],
                                      data.get("timezone"), now, data.get("ticket_id"),
                                      data.get("unit"), opted_out)
                    for draft, opted_out in self._with_opt_outs(drafts)]
        self.uow.session.add_all(messages)
        self.uow.commit()
        self._deliver_due(now, [m.id for m in messages if m.status == "pending"])

    def _with_opt_outs(self, drafts):
        opted_out = self._opted_out({d.person_id for d in drafts if d.person_id})
        return [(draft, (draft.person_id, draft.channel) in opted_out) for draft in drafts]

    def _new_message(self, draft, event, event_id, site, tz, now, ticket_id, unit, opted_out):
        """Stored before any provider sees it: a message whose record could still roll back is
        never sent. Opted out: `skipped`. A letter waits to be posted. A non-urgent SMS in quiet
        hours waits for the morning sweep (unless its provider only stores it: nothing then
        reaches anyone's phone)."""
        tz, error = tz or DEFAULT_TZ, None
        try:
            rendered = render(draft)
        except rendering.MissingField as exc:
            # A template that needs what the event lacks: kept as a dead letter, in sight, rather
            # than an event requeued for ever.
            rendered, error = rendering.Rendered(""), f"template {draft.template}.{draft.channel}: {exc}"
            log.error("cannot render a message: %s", error, extra={"event_id": event_id})
        if error:
            status, first_try = "dead", None
        elif opted_out:
            status, first_try = "skipped", None
        elif draft.channel == "letter":
            status, first_try = "awaiting_post", None
        else:
            status = "pending"
            first_try = domain.first_attempt_at(
                draft.channel, draft.urgent or not self.delivery.sends_out(draft.channel), now, tz,
                self.delivery.quiet_hours)
        return Message(id=new_id(), channel=draft.channel, recipient=draft.recipient,
                       person_id=draft.person_id, event=event, event_id=event_id,
                       template=draft.template, subject=rendered.subject, body=rendered.body,
                       status=status, attempts=0, ticket_id=ticket_id, unit=unit, site=site,
                       timezone=tz, created_at=now, next_attempt_at=first_try, last_error=error)

    def _opted_out(self, person_ids):
        if not person_ids:
            return set()
        return set(self.uow.session.execute(select(OptOut.person_id, OptOut.channel)
                                            .where(OptOut.person_id.in_(person_ids))).all())

    WARRANTY_EVENT = "notifications.warranty_expiring"

    def _remind_warranties(self, now):
        """Units whose warranty ends within a month (in the site's calendar) and that were not
        reminded of this end yet. Two replicas may find the same unit: the message's unique key
        (event id, recipient, channel) keeps one reminder."""
        session = self.uow.session
        utc_today = now.date()
        rows = session.scalars(select(Warranty).where(
            Warranty.warranty_until.between(utc_today - timedelta(days=1),
                                            shift_months(utc_today, domain.WARRANTY_NOTICE_MONTHS)
                                            + timedelta(days=1)),
            or_(Warranty.reminded_for.is_(None), Warranty.reminded_for != Warranty.warranty_until),
        ).order_by(Warranty.unit)).all()
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
                values = {c.key: getattr(message, c.key) for c in Message.__table__.columns}
                made = insert_once(session, insert(Message).values(values)) or made
            row.reminded_for = row.warranty_until
            reminded += made
        session.commit()
        return reminded

    SWEEP_BATCH = 100
    SWEEP_BUDGET_SECONDS = 10.0

    def _deliver_due(self, now, ids=None):
        """Try the messages due at `now` (only `ids`, when given), a batch at a time; batches
        follow each other while full ones are claimed and the budget lasts, so that the backlog
        of an outage drains in one sweep rather than a batch per timer tick."""
        counts = {"sent": 0, "failed": 0, "dead": 0, "skipped": 0}
        if ids is not None and not ids:
            return counts
        deadline = time.monotonic() + self.SWEEP_BUDGET_SECONDS
        while True:
            claimed = self._claim_due(now, ids)
            opted_out = self._opted_out({m.person_id for m in claimed if m.person_id})
            for message in claimed:
                counts[self._attempt(message, now, opted_out)] += 1
                self.uow.session.commit()      # each attempt on record before the next send
            if ids is not None or len(claimed) < self.SWEEP_BATCH or time.monotonic() >= deadline:
                return counts

    def _claim_due(self, now, ids):
        """Claim a batch of due messages, in due order: a lease (`next_attempt_at` moved past the
        sweep, in one short transaction), so that replicas never try the same message at once
        and one that dies mid-delivery lets it lapse. A claimed message is not due again in this
        sweep. The claimed messages, loaded."""
        session = self.uow.session
        lease = timedelta(seconds=self.delivery.setting("claim_lease_seconds", 120.0))
        claimable = (Message.status.in_(("pending", "failed")), Message.next_attempt_at <= now)
        due = (select(Message.id).where(*claimable)
               .order_by(Message.next_attempt_at, Message.id).limit(self.SWEEP_BATCH))
        if ids is not None:
            due = due.where(Message.id.in_(ids))
        candidates = session.scalars(locking(due, session.get_bind())).all()
        if not candidates:
            session.commit()
            return []
        # Another replica may have claimed some since they were read (SQLite takes no row lock):
        # only what this UPDATE moved is ours.
        ours = set(session.scalars(
            update(Message).where(Message.id.in_(candidates), *claimable)
            .values(next_attempt_at=now + lease).returning(Message.id),
            execution_options={"synchronize_session": False}).all())
        claimed = {m.id: m for m in session.scalars(
            select(Message).where(Message.id.in_(ours)).execution_options(populate_existing=True))}
        session.commit()
        return [claimed[message_id] for message_id in candidates if message_id in claimed]

    def _attempt(self, message, now, opted_out):
        if (message.person_id, message.channel) in opted_out:
            message.status, message.next_attempt_at = "skipped", None
            return "skipped"
        try:
            self.delivery.deliver(message)
            ok, error = True, None
        except Exception as exc:   # any provider fault is a failed attempt, retried later
            ok, error = False, f"{type(exc).__name__}: {exc}"[:2000]
            log.warning("delivery of message %s failed: %s", message.id, error,
                        extra={"message_id": message.id, "channel": message.channel})
        self.uow.session.add(DeliveryAttempt(id=new_id(), message_id=message.id, at=now,
                                             ok=ok, error=error))
        message.attempts += 1
        message.last_error = error
        if ok:
            message.status, message.next_attempt_at = "sent", None
        elif message.attempts >= self.delivery.setting("max_attempts", 5):
            message.status, message.next_attempt_at = "dead", None
        else:
            message.status = "failed"
            message.next_attempt_at = domain.retry_at(
                now, message.attempts - 1, self.delivery.setting("retry_base_seconds", 30.0))
        self._deliveries.labels(message.channel, message.status).inc()
        return message.status

    @property
    def _deliveries(self):
        return metric(self.name, "deliveries", lambda registry: Counter(
            "propdesk_notification_deliveries", "Delivery attempts by channel and outcome",
            ["channel", "outcome"], registry=registry))
