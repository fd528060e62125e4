"""Versioned payload schemas of every bus event, shared by sender and receivers.

An event on the wire is an envelope: {id, event, version, source, occurred_at, site,
correlation_id, data}. The sender validates `data` against the schema of (event, version)
before it writes the outbox row; a receiver loads it with the same schema. A breaking change
adds a new version and keeps the old one until no sender uses it.
"""
import uuid
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from services.common.errors import ValidationFailed
from services.common.money import DEFAULT_LATE_FEE_DAILY_RATE

SITE_CODE = validate.Regexp(r"^\d{3}$", error="site code is 3 digits")
UNIT_CODE = validate.Regexp(
    r"^\d{10}$", error="unit code is 10 digits: 3 project + 1 group + 2 building + 4 room")
# A vehicle's plate as registry records it; frontdesk's rentals take the same (SPEC §1, §8.2).
PLATE = validate.Regexp(r"^[\w\u4e00-\u9fff]{5,10}$", error="a plate such as 粤B12345")


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
    """A deadline of a ticket, a renovation or a lawsuit passed unmet (detected once per
    deadline)."""
    subject = fields.String(required=True, validate=validate.OneOf(["ticket", "renovation", "lawsuit"]))
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


# -- registry's change requests (SPEC §1) ------------------------------------------------------
class ChangeNoticeV1(Schema):
    """A change that affects the owner's fees was approved: the owner is told in writing (a
    letter to post and an SMS) before it takes effect on `effective_on`."""
    change_request_id = fields.String(required=True)
    unit = fields.String(required=True, validate=UNIT_CODE)
    owner = fields.Nested(Contact, allow_none=True)
    changes = fields.Dict(required=True)
    before = fields.Dict(required=True)
    effective_on = fields.Date(required=True)
    reason = fields.String(required=True)
    timezone = fields.String(load_default="Asia/Shanghai")


# -- frontdesk (SPEC §8) ---------------------------------------------------------------------

class MovedInV1(Schema):
    """A move-in (入伙) was completed: registry records the occupancy and the assistant (and
    announces it, which welcomes the owner)."""
    move_in_id = fields.String(required=True)
    unit = fields.String(required=True, validate=UNIT_CODE)
    person_id = fields.String(required=True)
    moved_in_on = fields.Date(required=True, metadata={"description": "the site's local day"})
    assistant = fields.Nested(Contact, required=True)
    keys = fields.List(fields.String(), load_default=list)
    timezone = fields.String(load_default="Asia/Shanghai")


class ParkingRentedV1(Schema):
    """A parking rental became active (the manager signed): billed monthly from `start`."""
    rental_id = fields.String(required=True)
    unit = fields.String(required=True, validate=UNIT_CODE)
    space_number = fields.String(required=True)
    monthly_fee = fields.Decimal(allow_none=True, load_default=None, **MONEY,
                                 metadata={"description": "none: the site's parking_per_month"})
    start = fields.Date(required=True)
    end = fields.Date(allow_none=True, load_default=None)
    plate = fields.String(required=True)
    person_id = fields.String(allow_none=True)
    contract_no = fields.String(allow_none=True)
    licence_no = fields.String(allow_none=True, load_default=None, metadata={
        "description": "the vehicle's licence number, for registry to record a vehicle it lacks"})


class ParkingEndedV1(ParkingRentedV1):
    """A rental ended on `ended_on`: billed no more from the next period."""
    ended_on = fields.Date(required=True)


class FrontdeskSlaBreachedV1(SlaBreachedV1):
    """A front-desk procedure's deadline passed unmet or was met late (detected once)."""
    subject = fields.String(required=True, validate=validate.OneOf(
        ["move_in", "defect", "parking_rental"]))


class FrontdeskNoticeV1(Schema):
    """A message a procedure sends: the defect letter to the developer, the owner told a defect
    is fixed, the owner asked to confirm a release pass, the manager alerted to a pass of a unit
    under transfer watch, an activity published to the site's residents."""
    notice = fields.String(required=True, validate=validate.OneOf(
        ["defect_letter", "defect_fixed", "pass_confirmation", "pass_transfer_watch",
         "activity_published"]))
    channel = fields.String(required=True, validate=validate.OneOf(
        ["sms", "email", "in_app", "letter", "staff"]))
    recipient = fields.String(required=True)
    person_id = fields.String(allow_none=True, load_default=None)
    unit = fields.String(allow_none=True, load_default=None, validate=UNIT_CODE)
    context = fields.Dict(load_default=dict, metadata={"description": "what fills the template"})


FRONTDESK_SCHEMAS = {
    ("frontdesk.moved_in", 1): MovedInV1,
    ("frontdesk.parking_rented", 1): ParkingRentedV1,
    ("frontdesk.parking_ended", 1): ParkingEndedV1,
    ("frontdesk.sla_breached", 1): FrontdeskSlaBreachedV1,
    ("frontdesk.notice", 1): FrontdeskNoticeV1,
}


# -- billing: late fees, lawsuits and refunded deposits (issue 17) ------------------------------

class DepositRefundedV1(Schema):
    """billing refunded a renovation deposit (less the deductions): the file is archived."""
    renovation_id = fields.String(required=True)
    unit = fields.String(required=True, validate=UNIT_CODE)
    amount = fields.Decimal(required=True, **MONEY)
    deductions = fields.Decimal(required=True, **MONEY)
    refunded_at = fields.AwareDateTime(required=True)


BILLING_CASES = {
    ("billing.deposit_refunded", 1): DepositRefundedV1,
    ("billing.sla_breached", 1): SlaBreachedV1,     # a lawsuit's preservation deadline
}

# -- ticketing: warnings before a breach, on-call paging, escalations (issue 17) ------------

class SlaWarningV1(Schema):
    """A ticket's deadline is near (超时预警): its assignee and first-contact owner are warned,
    once per deadline, before any breach alert."""
    ticket_id = fields.String(required=True)
    code = fields.String(required=True)
    kind = fields.String(required=True)
    deadline = fields.String(required=True)
    due_at = fields.AwareDateTime(required=True)
    warned_at = fields.AwareDateTime(required=True)
    severity = fields.String(allow_none=True)
    unit = fields.String(allow_none=True, validate=UNIT_CODE)
    first_contact_owner = fields.String(allow_none=True)
    assignee = fields.String(allow_none=True)
    timezone = fields.String(load_default="Asia/Shanghai")


class OnCall(Schema):
    technician = fields.String(required=True)
    phone = fields.String(required=True)


class OnCallPagedV1(Schema):
    """An urgent repair was received: the technician on call at `received_at` is paged (SMS,
    whatever the hour, and a staff task), or, with `on_call` null, the site's supervisors."""
    ticket_id = fields.String(required=True)
    code = fields.String(required=True)
    unit = fields.String(allow_none=True, validate=UNIT_CODE)
    description = fields.String(load_default="")
    received_at = fields.AwareDateTime(required=True)
    on_call = fields.Nested(OnCall, allow_none=True)
    reporter = fields.Nested(Contact, allow_none=True)
    timezone = fields.String(load_default="Asia/Shanghai")


class TicketEscalatedV1(Schema):
    """A ticket went up the chain by a rule, once: a joint complaint to head office the same
    day (`to: hq`), a second missed appointment to the site's supervisors (`to: supervisor`)."""
    ticket_id = fields.String(required=True)
    code = fields.String(required=True)
    kind = fields.String(required=True)
    to = fields.String(required=True, validate=validate.OneOf(["hq", "supervisor"]))
    reason = fields.String(required=True, validate=validate.OneOf(
        ["joint_complaint", "missed_appointments"]))
    note = fields.String(load_default="")
    unit = fields.String(allow_none=True, validate=UNIT_CODE)
    severity = fields.String(allow_none=True)
    complainants = fields.Integer(allow_none=True)
    missed_appointments = fields.Integer(load_default=0)
    first_contact_owner = fields.String(allow_none=True)
    description = fields.String(load_default="")
    escalated_at = fields.AwareDateTime(required=True)
    timezone = fields.String(load_default="Asia/Shanghai")
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


# -- customer care (issue 16): contact breaches, activities told by SMS ---------------------

class RegistrySlaBreachedV1(SlaBreachedV1):
    """A key customer with no contact in a calendar quarter, or a committee member with none in
    a calendar month (SPEC §8.6): `kind` the flag, `deadline` quarterly_contact or
    monthly_contact, `code` the person's name and the period; detected once per period."""
    subject = fields.String(required=True, validate=validate.OneOf(["person"]))


class ActivityPublishedV1(Schema):
    """frontdesk published an activity; with `notify_sms` the site's owners are texted."""
    activity_id = fields.String(required=True)
    title = fields.String(required=True)
    purpose = fields.String(required=True)
    starts_at = fields.AwareDateTime(required=True)
    ends_at = fields.AwareDateTime(required=True)
    capacity = fields.Integer(allow_none=True, load_default=None)
    notify_sms = fields.Boolean(load_default=False)


CARE_SCHEMAS = {
    ("registry.sla_breached", 1): RegistrySlaBreachedV1,
    ("frontdesk.activity_published", 1): ActivityPublishedV1,
}


SCHEMAS = {
    ("ticketing.sla_warning", 1): SlaWarningV1,
    ("ticketing.on_call_paged", 1): OnCallPagedV1,
    ("ticketing.escalated", 1): TicketEscalatedV1,
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
    ("registry.change_notice", 1): ChangeNoticeV1,
    **FRONTDESK_SCHEMAS,
    **BILLING_CASES,
    **CARE_SCHEMAS,
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


@lru_cache(maxsize=None)
def _envelope_schema():
    return Envelope()


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


def dump_payloads(event, datas, version=None):
    """`dump_payload` of many payloads of one event (a bulk change raises thousands): the
    contract is checked in full once per shape of payload (its keys, and each value's type,
    nested; a Decimal's places too), on the first of that shape; the others are serialised by
    plain conversion, which is what the schema's dump gives for that shape (compared on the
    first: a shape where it is not keeps the schema's dump and check for each). So what a
    value alone decides (a unit code's digits, a listed choice) is checked on the first of a
    shape only: bulk payloads are built from the service's own validated rows."""
    version = version or LATEST[event]
    if len(datas) == 1:      # one event: nothing to gain from knowing its shape
        return version, [dump_payload(event, datas[0], version)[1]]
    plain_matches = {}
    payloads = []
    for data in datas:
        plain, shape = _plain(data)
        if plain_matches.get(shape):
            payloads.append(plain)
            continue
        _, payload = dump_payload(event, data, version)
        plain_matches.setdefault(shape, payload == plain)
        payloads.append(payload)
    return version, payloads


def _plain(value):
    """(JSON-ready value, its shape)."""
    if isinstance(value, dict):
        pairs = [(key, _plain(item)) for key, item in value.items()]
        return ({key: plain for key, (plain, _) in pairs},
                ("dict",) + tuple((key, shape) for key, (_, shape) in pairs))
    if isinstance(value, (list, tuple)):
        items = [_plain(item) for item in value]
        return [plain for plain, _ in items], ("list", frozenset(shape for _, shape in items))
    if isinstance(value, Decimal):
        return str(value), ("Decimal", value.as_tuple().exponent, value.adjusted() < -6)
    if isinstance(value, datetime):
        return value.isoformat(), ("datetime", value.utcoffset() is None)
    if isinstance(value, date):
        return value.isoformat(), ("date",)
    return value, type(value)


def envelope(event, data, *, site=None, correlation_id=None, occurred_at, event_id=None):
    """The wire form of an event: its validated payload in the envelope every receiver reads."""
    version, payload = dump_payload(event, data)
    return _envelope(event, version, payload, site, correlation_id, occurred_at, event_id)


def envelopes(event, items, *, correlation_id=None, occurred_at):
    """`envelope` of each (data, site) of `items`, their payloads checked by `dump_payloads`."""
    version, payloads = dump_payloads(event, [data for data, _ in items])
    return [_envelope(event, version, payload, site, correlation_id, occurred_at)
            for payload, (_, site) in zip(payloads, items)]


def _envelope(event, version, payload, site, correlation_id, occurred_at, event_id=None):
    return {
        "id": event_id or str(uuid.uuid4()), "event": event, "version": version,
        "source": event.split(".", 1)[0],
        "occurred_at": occurred_at if isinstance(occurred_at, str) else occurred_at.isoformat(),
        "site": site, "correlation_id": correlation_id, "data": payload,
    }


def load_event(body):
    """Envelope and payload as the receiver sees them, both validated."""
    try:
        envelope = _envelope_schema().load(body)
        schema = _schema(envelope["event"], envelope["version"])
        envelope["data"] = schema.load(envelope["data"], unknown=EXCLUDE)
    except KeyError as exc:
        raise ValidationFailed(f"unknown event contract {exc}") from exc
    except ValidationError as exc:
        raise ValidationFailed.from_messages(exc.messages) from exc
    return envelope
