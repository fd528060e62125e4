"""Versioned payload schemas of every bus event, shared by sender and receivers.

An event on the wire is an envelope: {id, event, version, source, occurred_at, site,
correlation_id, data}. The sender validates `data` against the schema of (event, version)
before it writes the outbox row; a receiver loads it with the same schema. A breaking change
adds a new version and keeps the old one until no sender uses it.
"""
import uuid
from functools import lru_cache

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from services.common.errors import ValidationFailed
from services.common.money import DEFAULT_LATE_FEE_DAILY_RATE

SITE_CODE = validate.Regexp(r"^\d{3}$", error="site code is 3 digits")
UNIT_CODE = validate.Regexp(
    r"^\d{10}$", error="unit code is 10 digits: 3 project + 1 group + 2 building + 4 room")


class Envelope(Schema):
    class Meta:
        unknown = EXCLUDE

    id = fields.String(required=True)
    event = fields.String(required=True)
    version = fields.Integer(required=True)
    source = fields.String(required=True)
    occurred_at = fields.AwareDateTime(required=True)
    site = fields.String(allow_none=True, validate=SITE_CODE)
    correlation_id = fields.String(allow_none=True)
    data = fields.Dict(required=True)


class Contact(Schema):
    name = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    person_id = fields.String(allow_none=True)


class CallbackDueV1(Schema):
    """A repair was completed or a complaint resolved: the resident must be called back."""
    ticket_id = fields.String(required=True)
    code = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(["repair", "complaint"]))
    unit = fields.String(allow_none=True, validate=UNIT_CODE)
    first_contact_owner = fields.String(required=True)
    reporter = fields.Nested(Contact, allow_none=True)
    due_at = fields.AwareDateTime(required=True)
    completed_at = fields.AwareDateTime(required=True)
    important = fields.Boolean(load_default=False)
    description = fields.String(load_default="")
    # Optional in v1 (senders before them omit them): site time zone and repair priority.
    timezone = fields.String(load_default="Asia/Shanghai")
    priority = fields.String(load_default="normal", validate=validate.OneOf(["normal", "urgent"]))


class UnitChangedV1(Schema):
    unit = fields.String(required=True, validate=UNIT_CODE)
    change = fields.String(required=True, validate=validate.OneOf(
        ["created", "updated", "deactivated", "moved_in", "assistant_changed"]))
    usage = fields.String(allow_none=True)
    area_m2 = fields.Decimal(as_string=True, allow_none=True)
    owner = fields.Nested(Contact, allow_none=True)
    # Optional in v1 (senders before them omit them): the owner is a major customer (大客户),
    # which changes the arrears ladder; the site's time zone; the unit's handover date and the
    # end of its warranty (保修期); the day the owner moved in (入伙) and the customer-affairs
    # assistant (客户事务助理) who looks after the unit, whose phone the welcome SMS gives.
    major_customer = fields.Boolean(load_default=False)
    timezone = fields.String(load_default="Asia/Shanghai")
    handover_date = fields.Date(load_default=None, allow_none=True)
    warranty_until = fields.Date(load_default=None, allow_none=True)
    moved_in_on = fields.Date(load_default=None, allow_none=True)
    assistant = fields.Nested(Contact, load_default=None, allow_none=True)


MONEY = dict(as_string=True, places=2)


def late_fee_daily_rate():
    """Optional in v1 (senders before it omit it): the site's rate, which reminders state."""
    return fields.Decimal(as_string=True, load_default=DEFAULT_LATE_FEE_DAILY_RATE,
                          metadata={"description": "a day, e.g. 0.0003 (0.03 %)"})


class SlaBreachedV1(Schema):
    """A deadline of a ticket or a renovation case passed unmet (detected once per deadline)."""
    subject = fields.String(required=True, validate=validate.OneOf(["ticket", "renovation"]))
    subject_id = fields.String(required=True)
    code = fields.String(required=True)
    kind = fields.String(required=True, metadata={"description": "repair, complaint, ..., renovation"})
    deadline = fields.String(required=True, metadata={"description": "e.g. resolve, callback, review"})
    due_at = fields.AwareDateTime(required=True)
    detected_at = fields.AwareDateTime(required=True)
    severity = fields.String(allow_none=True, metadata={"description": "complaints: A, B or C"})
    unit = fields.String(allow_none=True, validate=UNIT_CODE)
    first_contact_owner = fields.String(allow_none=True)
    escalate_to = fields.List(fields.String(), load_default=list,
                              metadata={"description": "roles alerted, lowest first"})
    timezone = fields.String(load_default="Asia/Shanghai")


class ServiceChargeV1(Schema):
    """A paid in-home repair was completed: bill its quoted fee to the unit."""
    ticket_id = fields.String(required=True)
    code = fields.String(required=True)
    unit = fields.String(required=True, validate=UNIT_CODE)
    amount = fields.Decimal(required=True, **MONEY)
    description = fields.String(load_default="")
    completed_at = fields.AwareDateTime(required=True)


class FeeLine(Schema):
    fee = fields.String(required=True, metadata={"description": "renovation_management, renovation_deposit, debris_removal"})
    amount = fields.Decimal(required=True, **MONEY)
    description = fields.String(load_default="")


class FeesDueV1(Schema):
    """A renovation was approved: invoice its fees and hold its deposit."""
    renovation_id = fields.String(required=True)
    unit = fields.String(required=True, validate=UNIT_CODE)
    items = fields.List(fields.Nested(FeeLine), required=True)
    due_date = fields.Date(required=True)
    # Optional in v1: who applied, for the fee notice (SPEC §5).
    applicant = fields.Nested(Contact, load_default=None, allow_none=True)


class DepositRefundDueV1(Schema):
    """A renovation passed its inspection: refund the deposit less the recorded deductions."""
    renovation_id = fields.String(required=True)
    unit = fields.String(required=True, validate=UNIT_CODE)
    deductions = fields.Decimal(required=True, **MONEY)
    refund_by = fields.AwareDateTime(required=True, metadata={"description": "3 working days"})


class RenovationDecidedV1(Schema):
    renovation_id = fields.String(required=True)
    unit = fields.String(required=True, validate=UNIT_CODE)
    decision = fields.String(required=True, validate=validate.OneOf(["approved", "rejected"]))
    rejection_reasons = fields.List(fields.String(), load_default=list)
    applicant = fields.Nested(Contact, allow_none=True)


class PermitIssuedV1(Schema):
    renovation_id = fields.String(required=True)
    unit = fields.String(required=True, validate=UNIT_CODE)
    permit_number = fields.String(required=True)
    valid_from = fields.Date(required=True)
    valid_until = fields.Date(required=True)
    passes = fields.List(fields.Dict(), load_default=list, metadata={"description": "{number, holder}"})
    applicant = fields.Nested(Contact, allow_none=True)


class InvoicePaidV1(Schema):
    """An invoice is settled in full; `reference` ties it to what raised it."""
    invoice_id = fields.String(required=True)
    unit = fields.String(required=True, validate=UNIT_CODE)
    period = fields.String(allow_none=True)
    amount = fields.Decimal(required=True, **MONEY)
    paid_at = fields.AwareDateTime(required=True)
    reference = fields.Dict(load_default=dict,
                            metadata={"description": "e.g. {renovation_id} or {ticket_id}"})
    # Optional in v1: the receipt of the payment that settled it, the owner to tell, and the
    # site's time zone (the receipt states the local time).
    receipt_number = fields.String(load_default=None, allow_none=True)
    owner = fields.Nested(Contact, load_default=None, allow_none=True)
    timezone = fields.String(load_default="Asia/Shanghai", allow_none=True)


class InvoiceIssuedV1(Schema):
    """An invoice was issued to a unit: the monthly bill (账单) goes to its owner by SMS and
    email (000: 每月的管理费帐单及时通过电子邮件、短信...发送给客户)."""
    invoice_id = fields.String(required=True)
    unit = fields.String(required=True, validate=UNIT_CODE)
    period = fields.String(allow_none=True, metadata={"description": "YYYY-MM; none for one-off invoices"})
    kind = fields.String(required=True, metadata={"description": "monthly, manual, renovation, repair"})
    amount = fields.Decimal(required=True, **MONEY)
    due_date = fields.Date(required=True)
    items = fields.List(fields.Nested(FeeLine), load_default=list)
    owner = fields.Nested(Contact, allow_none=True)
    timezone = fields.String(load_default="Asia/Shanghai")
    late_fee_daily_rate = late_fee_daily_rate()


class ArrearsEscalatedV1(Schema):
    """A step of the arrears ladder was taken (each step once)."""
    unit = fields.String(required=True, validate=UNIT_CODE)
    step = fields.String(required=True, metadata={"description": "reminder, payment_notice, lawyer_letter, lawsuit_referral, transfer_watch"})
    stage = fields.String(required=True, validate=validate.OneOf(["none", "reminder", "lawyer_letter", "lawsuit"]))
    months = fields.Integer(required=True)
    amount_due = fields.Decimal(required=True, **MONEY)
    late_fee = fields.Decimal(required=True, **MONEY)
    major_customer = fields.Boolean(load_default=False)
    taken_on = fields.Date(required=True)
    owner = fields.Nested(Contact, allow_none=True)
    late_fee_daily_rate = late_fee_daily_rate()


# -- the working-day calendar (SPEC preamble: a year head office enters) ----------------------

class EnteredHoliday(Schema):
    name = fields.String(required=True, metadata={"description": "spring_festival, mid_autumn, ..."})
    first_day = fields.Date(required=True)
    days = fields.List(fields.Date(), required=True)


class CalendarEnteredV1(Schema):
    """A year's statutory holidays and adjusted working weekends as head office entered them:
    every process of every service applies it to its working-day calendar (a newer `version`
    of the year replaces an older one)."""
    year = fields.Integer(required=True)
    version = fields.Integer(required=True)
    holidays = fields.List(fields.Nested(EnteredHoliday), required=True)
    workdays = fields.List(fields.Date(), required=True)
    entered_at = fields.AwareDateTime(required=True)


SCHEMAS = {
    ("ticketing.callback_due", 1): CallbackDueV1,
    ("ticketing.sla_breached", 1): SlaBreachedV1,
    ("ticketing.service_charge", 1): ServiceChargeV1,
    ("renovation.fees_due", 1): FeesDueV1,
    ("renovation.deposit_refund_due", 1): DepositRefundDueV1,
    ("renovation.decided", 1): RenovationDecidedV1,
    ("renovation.permit_issued", 1): PermitIssuedV1,
    ("renovation.sla_breached", 1): SlaBreachedV1,
    ("billing.invoice_paid", 1): InvoicePaidV1,
    ("billing.invoice_issued", 1): InvoiceIssuedV1,
    ("billing.arrears_escalated", 1): ArrearsEscalatedV1,
    ("registry.unit_changed", 1): UnitChangedV1,
    ("notifications.calendar_entered", 1): CalendarEnteredV1,
}

LATEST = {}
for (_name, _version) in SCHEMAS:
    LATEST[_name] = max(_version, LATEST.get(_name, 0))


@lru_cache(maxsize=None)
def _schema(event, version):
    """One instance per contract, reused: making one (and its nested schemas) costs more than
    dumping and validating a payload, which counts when a bulk change raises thousands."""
    return SCHEMAS[(event, version)]()


def dump_payload(event, data, version=None):
    """Validate and serialise `data` for the outbox; raises on a contract breach, so a bad event
    fails the transaction that would have caused it instead of a consumer later."""
    version = version or LATEST[event]
    schema = _schema(event, version)
    payload = schema.dump(data)
    errors = schema.validate(payload)
    if errors:
        raise ValueError(f"{event} v{version} payload breaks its contract: {errors}")
    return version, payload


def envelope(event, data, *, site=None, correlation_id=None, occurred_at, event_id=None):
    """The wire form of an event: its validated payload in the envelope every receiver reads."""
    version, payload = dump_payload(event, data)
    return {
        "id": event_id or str(uuid.uuid4()), "event": event, "version": version,
        "source": event.split(".", 1)[0], "occurred_at": occurred_at.isoformat(),
        "site": site, "correlation_id": correlation_id, "data": payload,
    }


def load_event(body):
    """Envelope and payload as the receiver sees them, both validated."""
    try:
        envelope = Envelope().load(body)
        schema = SCHEMAS[(envelope["event"], envelope["version"])]()
        envelope["data"] = schema.load(envelope["data"], unknown=EXCLUDE)
    except KeyError as exc:
        raise ValidationFailed(f"unknown event contract {exc}") from exc
    except ValidationError as exc:
        raise ValidationFailed.from_messages(exc.messages) from exc
    return envelope
