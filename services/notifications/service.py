"""notifications: messages made from bus events, delivered through providers (SPEC §5)."""
import logging
from datetime import timedelta

from nameko.events import event_handler
from nameko.timer import timer
from sqlalchemy import delete, false, insert, select, update

from services.common import entrypoints
from services.common.calendar import DEFAULT_TZ
from services.common.contracts import load_event
from services.common.clock import as_utc
from services.common.db import Database, insert_once, locking, new_id, paginate, within_sites
from services.common.entrypoints import command, load
from services.common.errors import Forbidden, ValidationFailed
from services.notifications import domain
from services.notifications.providers import Providers
from services.notifications.rendering import render
from services.notifications.schemas import MessageFilters, MessageOut
from services.notifications.storage import Base, DeliveryAttempt, Message, OptOut

log = logging.getLogger(__name__)


class NotificationsService(entrypoints.ServiceBase):
    name = "notifications"

    uow = Database(Base)
    delivery = Providers()

    # Requeued on error, so that an event is not lost to a database hiccup; a redelivery of one
    # already handled stops at `first_time`, and one that breaks its contract is dropped below.
    @event_handler("ticketing", "callback_due", requeue_on_error=True)
    def on_callback_due(self, body):
        envelope = self._envelope(body)
        if envelope is None or not self.uow.first_time(envelope["id"], "notifications.callback_due"):
            return
        self._send(envelope, domain.callback_due_messages(envelope))

    @event_handler("ticketing", "sla_breached", requeue_on_error=True)
    def on_ticket_sla_breached(self, body):
        envelope = self._envelope(body)
        if envelope is None or not self.uow.first_time(envelope["id"], "notifications.ticketing_sla_breached"):
            return
        envelope["data"]["ticket_id"] = envelope["data"]["subject_id"]   # listed by ticket
        self._send(envelope, domain.sla_breach_messages(envelope))

    @event_handler("renovation", "sla_breached", requeue_on_error=True)
    def on_renovation_sla_breached(self, body):
        envelope = self._envelope(body)
        if envelope is None or not self.uow.first_time(envelope["id"], "notifications.renovation_sla_breached"):
            return
        self._send(envelope, domain.sla_breach_messages(envelope))

    @event_handler("renovation", "decided", requeue_on_error=True)
    def on_renovation_decided(self, body):
        envelope = self._envelope(body)
        if envelope is None or not self.uow.first_time(envelope["id"], "notifications.renovation_decided"):
            return
        self._send(envelope, domain.renovation_decided_messages(envelope))

    @event_handler("renovation", "permit_issued", requeue_on_error=True)
    def on_permit_issued(self, body):
        envelope = self._envelope(body)
        if envelope is None or not self.uow.first_time(envelope["id"], "notifications.permit_issued"):
            return
        self._send(envelope, domain.lobby_notice_messages(envelope))

    @event_handler("billing", "arrears_escalated", requeue_on_error=True)
    def on_arrears_escalated(self, body):
        envelope = self._envelope(body)
        if envelope is None or not self.uow.first_time(envelope["id"], "notifications.arrears_escalated"):
            return
        self._send(envelope, domain.arrears_messages(envelope))

    # -- delivery --------------------------------------------------------------------------

    @timer(interval=15)
    def deliver_pending(self):
        """The sweep: every replica runs it; each due message is claimed by one of them."""
        self._deliver_due(self.clock())

    @command
    def deliver(self, as_of=None):
        """Try every message due at `as_of` (now by default): {"sent": n, "failed": n, "dead": n}.
        Staff and ops only (a resident has no business driving the sweep)."""
        if self.caller.identity.is_resident:
            raise Forbidden("residents may not run deliveries", {"action": "deliver"})
        try:
            now = as_utc(as_of) if as_of else self.clock()
        except (AttributeError, TypeError, ValueError) as exc:
            raise ValidationFailed.from_messages({"as_of": ["an ISO 8601 instant with an offset"]}) from exc
        return self._deliver_due(now)

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
        identity = self.caller.identity
        f = load(MessageFilters(), filters or {})
        stmt = within_sites(select(Message), Message.site, identity, f["site"])
        if identity.is_resident:
            stmt = stmt.where(Message.person_id == identity.person_id
                              if identity.person_id else false())
        for name in ("ticket_id", "unit", "recipient", "channel"):
            if f[name]:
                stmt = stmt.where(getattr(Message, name) == f[name])
        rows, next_cursor = paginate(self.uow.session, stmt, Message.id, cursor, limit)
        return {"items": MessageOut(many=True).dump(rows), "next_cursor": next_cursor}

    # -- helpers -------------------------------------------------------------------------

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

    def _send(self, envelope, drafts):
        """Stored first, with the event's claim, then delivered: a provider never sends a
        message whose record could still roll back and be sent again on redelivery. A message
        to a person who opted out of its channel is kept as `skipped`; a non-urgent SMS in
        quiet hours waits (`next_attempt_at`) for the sweep in the morning (unless its provider
        only stores it: nothing then reaches anyone's phone)."""
        data, now = envelope["data"], self.clock()
        tz = data.get("timezone") or DEFAULT_TZ
        opted_out = self._opted_out({d.person_id for d in drafts if d.person_id})
        messages = []
        for draft in drafts:
            skipped = (draft.person_id, draft.channel) in opted_out
            messages.append(Message(
                id=new_id(), channel=draft.channel, recipient=draft.recipient,
                person_id=draft.person_id, event=envelope["event"], event_id=envelope["id"],
                template=draft.template, body=render(draft),
                status="skipped" if skipped else "pending", attempts=0,
                ticket_id=data.get("ticket_id"), unit=data.get("unit"), site=envelope["site"],
                created_at=now,
                next_attempt_at=None if skipped else domain.first_attempt_at(
                    draft.channel, draft.urgent or not self.delivery.sends_out(draft.channel),
                    now, tz),
            ))
        self.uow.session.add_all(messages)
        self.uow.commit()
        self._deliver_due(now, [m.id for m in messages if m.status == "pending"])

    def _opted_out(self, person_ids):
        if not person_ids:
            return set()
        return set(self.uow.session.execute(select(OptOut.person_id, OptOut.channel)
                                            .where(OptOut.person_id.in_(person_ids))).all())

    SWEEP_BATCH = 100

    def _deliver_due(self, now, ids=None):
        """Claim the messages due at `now` (a lease: `next_attempt_at` moved past the sweep, in
        a short transaction, so that replicas never try the same message at once and one that
        dies mid-delivery lets it lapse), then try each and record the attempt."""
        if ids is not None and not ids:
            return {"sent": 0, "failed": 0, "dead": 0, "skipped": 0}
        session, delivery = self.uow.session, self.delivery
        lease = timedelta(seconds=delivery.setting("claim_lease_seconds", 120.0))
        due = (select(Message.id).where(Message.status.in_(("pending", "failed")),
                                        Message.next_attempt_at <= now)
               .order_by(Message.next_attempt_at, Message.id).limit(self.SWEEP_BATCH))
        if ids is not None:
            due = due.where(Message.id.in_(ids))
        candidates = session.scalars(locking(due, session.get_bind())).all()
        claimed = [message_id for message_id in candidates if session.execute(
            update(Message).where(Message.id == message_id,
                                  Message.status.in_(("pending", "failed")),
                                  Message.next_attempt_at <= now)
            .values(next_attempt_at=now + lease)).rowcount]
        session.commit()
        counts = {"sent": 0, "failed": 0, "dead": 0, "skipped": 0}
        for message_id in claimed:
            message = session.get(Message, message_id, populate_existing=True)
            counts[self._attempt(message, now)] += 1
            session.commit()
        return counts

    def _attempt(self, message, now):
        if message.person_id and (message.person_id, message.channel) in self._opted_out({message.person_id}):
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
        return message.status
