"""notifications: messages made from bus events, delivered through providers (SPEC §5)."""
import logging

from nameko.events import event_handler
from sqlalchemy import false, select

from services.common import entrypoints
from services.common.contracts import load_event
from services.common.db import Database, new_id, paginate, within_sites
from services.common.entrypoints import command, load
from services.common.errors import ValidationFailed
from services.notifications import domain
from services.notifications.providers import Providers
from services.notifications.rendering import render
from services.notifications.schemas import MessageFilters, MessageOut
from services.notifications.storage import Base, Message

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
        message whose record could still roll back and be sent again on redelivery."""
        data, now = envelope["data"], self.clock()
        messages = [Message(
            id=new_id(), channel=draft.channel, recipient=draft.recipient,
            person_id=draft.person_id, event=envelope["event"], event_id=envelope["id"],
            template=draft.template, body=render(draft), status="pending", attempts=0,
            ticket_id=data.get("ticket_id"), unit=data.get("unit"), site=envelope["site"],
            created_at=now,
        ) for draft in drafts]
        self.uow.session.add_all(messages)
        self.uow.commit()
        for message in messages:
            message.status = self.delivery.deliver(message)
            message.attempts += 1
        self.uow.commit()
