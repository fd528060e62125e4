"""Frontdesk's commands and answers, used by the service and by the gateway (validation, OpenAPI)."""
from marshmallow import Schema, fields, validate

from services.common.contracts import PLATE, SITE_CODE, UNIT_CODE
from services.common.fields import Day, Instant, Money, Month
from services.common.schemas import HistoryEntryOut
from services.frontdesk.domain import IDENTITY_DOCUMENTS, METERS, PARKING_DOCUMENTS, SIGNED_DOCUMENTS

PHONE = validate.Regexp(r"^\+?\d{7,15}$", error="phone is 7-15 digits")
NAME = validate.Length(min=1, max=100)
TEXT = validate.Length(min=1, max=2000)
ID = validate.Length(min=1, max=40)
READING = validate.Regexp(r"^[0-9]{1,9}(\.[0-9]{1,3})?$", error="a meter reading, e.g. 1234.5")


class CaseOut(Schema):
    """What every case shows."""
    id = fields.String()
    site = fields.String()
    status = fields.String()
    deadlines = fields.Dict(keys=fields.String(), values=fields.String())
    deadlines_met = fields.Dict(keys=fields.String(), values=fields.String())
    breaches = fields.List(fields.Dict())
    history = fields.List(fields.Nested(HistoryEntryOut))
    created_at = Instant()
    created_by = fields.String()
    allowed_actions = fields.List(fields.String())


# -- move-in ---------------------------------------------------------------------------------

class ArrivalIn(Schema):
    unit = fields.String(required=True, validate=UNIT_CODE)
    person_id = fields.String(required=True, validate=ID)
    arrived_at = Instant(load_default=None, metadata={"description": "when the owner arrived; now by default"})


class MoveInDocumentsIn(Schema):
    checked = fields.List(fields.String(validate=validate.OneOf(IDENTITY_DOCUMENTS)), required=True,
                          metadata={"description": f"identity checked: {', '.join(IDENTITY_DOCUMENTS)}"})
    signed = fields.List(fields.String(validate=validate.OneOf(SIGNED_DOCUMENTS)), required=True,
                         metadata={"description": f"signed: {', '.join(SIGNED_DOCUMENTS)}"})


class DefectIn(Schema):
    location = fields.String(required=True, validate=NAME)
    description = fields.String(required=True, validate=TEXT)


class InspectionIn(Schema):
    meter_readings = fields.Dict(keys=fields.String(validate=validate.OneOf(METERS)),
                                 values=fields.String(validate=READING), required=True,
                                 metadata={"description": "water, electricity, gas, signed by the owner"})
    defects = fields.List(fields.Nested(DefectIn), load_default=list,
                          validate=validate.Length(max=100))


class MoveInAssistantIn(Schema):
    name = fields.String(required=True, validate=NAME)
    phone = fields.String(required=True, validate=PHONE)


class MoveInCompleteIn(Schema):
    keys = fields.List(fields.String(validate=NAME), required=True,
                       validate=validate.Length(min=1, max=50, error="at least one key"))
    assistant = fields.Nested(MoveInAssistantIn, required=True)


class Empty(Schema):
    note = fields.String(load_default=None, validate=TEXT)


MOVE_IN_ACTIONS = {"start": Empty, "documents": MoveInDocumentsIn, "inspection": InspectionIn,
                   "complete": MoveInCompleteIn}


class MoveInOut(CaseOut):
    unit = fields.String()
    person_id = fields.String()
    arrived_at = Instant()
    started_at = Instant(allow_none=True)
    completed_at = Instant(allow_none=True)
    identity = fields.Dict(allow_none=True)
    signatures = fields.Dict(allow_none=True)
    inspection = fields.Dict(allow_none=True)
    keys = fields.List(fields.String())
    assistant = fields.Dict(allow_none=True)


class ProgressIn(Schema):
    note = fields.String(required=True, validate=TEXT)


DEFECT_ACTIONS = {"submit": Empty, "progress": ProgressIn, "fixed": Empty, "close": Empty}


class DefectOut(CaseOut):
    unit = fields.String()
    move_in_id = fields.String()
    location = fields.String()
    description = fields.String()
    inspected_at = Instant()
    submitted_at = Instant(allow_none=True)
    fixed_at = Instant(allow_none=True)
    closed_at = Instant(allow_none=True)
    progress = fields.List(fields.Dict())


class DefectFilters(Schema):
    site = fields.String(load_default=None, validate=SITE_CODE)
    status = fields.String(load_default=None, validate=validate.OneOf(
        ["open", "submitted", "fixed", "closed"]))
    unit = fields.String(load_default=None, validate=UNIT_CODE)


# -- parking ---------------------------------------------------------------------------------

class ParkingSpaceIn(Schema):
    site = fields.String(required=True, validate=SITE_CODE)
    number = fields.String(required=True, validate=validate.Regexp(
        r"^[A-Za-z0-9-]{1,20}$", error="1-20 letters, digits or dashes"))
    kind = fields.String(required=True, validate=validate.OneOf(["underground", "surface"]))
    monthly_fee = Money(load_default=None, allow_none=True, metadata={
        "description": "this space's monthly fee; none: the site's parking_per_month"})


class ParkingSpaceOut(Schema):
    id = fields.String()
    site = fields.String()
    number = fields.String()
    kind = fields.String()
    monthly_fee = fields.String(allow_none=True)
    created_at = Instant()


class RentedVehicleIn(Schema):
    # as registry records a vehicle: the rented one is recorded on the unit (on_parking_rented)
    plate = fields.String(required=True, validate=PLATE)
    licence_no = fields.String(required=True, validate=validate.Length(min=1, max=32))


class ParkingRentalIn(Schema):
    space = fields.String(required=True, validate=ID, metadata={"description": "the space's id"})
    unit = fields.String(required=True, validate=UNIT_CODE)
    person_id = fields.String(required=True, validate=ID)
    vehicle = fields.Nested(RentedVehicleIn, required=True)
    documents = fields.List(fields.String(validate=validate.OneOf(PARKING_DOCUMENTS)),
                            load_default=list, metadata={"description": ", ".join(PARKING_DOCUMENTS)})
    start = Day(required=True)
    end = Day(load_default=None, allow_none=True)
    arrived_at = Instant(load_default=None)


class ReasonIn(Schema):
    reason = fields.String(required=True, validate=TEXT)


class EndIn(Schema):
    on = Day(required=True, metadata={"description": "the last day rented; billing stops from the next period"})


PARKING_ACTIONS = {"approve": Empty, "reject": ReasonIn, "end": EndIn}


class ParkingRentalOut(CaseOut):
    unit = fields.String()
    space_id = fields.String()
    space_number = fields.String()
    monthly_fee = fields.String(allow_none=True)
    person_id = fields.String()
    relation = fields.String()
    vehicle = fields.Dict()
    documents = fields.List(fields.String())
    start = fields.Date()
    end = fields.Date(allow_none=True)
    arrived_at = Instant()
    contract_no = fields.String(allow_none=True)
    card_no = fields.String(allow_none=True)
    approved_at = Instant(allow_none=True)
    ended_on = fields.Date(allow_none=True)
    reason = fields.String(allow_none=True)


# -- release passes --------------------------------------------------------------------------

class RequesterIn(Schema):
    name = fields.String(required=True, validate=NAME)
    phone = fields.String(required=True, validate=PHONE)
    person_id = fields.String(load_default=None, validate=ID)


class ItemIn(Schema):
    description = fields.String(required=True, validate=NAME)
    quantity = fields.Integer(required=True, validate=validate.Range(1, 10000))


class ReleasePassIn(Schema):
    unit = fields.String(required=True, validate=UNIT_CODE)
    requested_by = fields.Nested(RequesterIn, required=True)
    items = fields.List(fields.Nested(ItemIn), required=True,
                        validate=validate.Length(min=1, max=100))
    move_on = Day(required=True)


class ConfirmIn(Schema):
    by = fields.String(required=True, validate=validate.OneOf(["resident", "phone"]),
                       metadata={"description": "resident: the owner in the app; phone: staff record the owner's call"})


PASS_ACTIONS = {"confirm": ConfirmIn, "refuse": ReasonIn}


class UseIn(Schema):
    guard = fields.String(load_default=None, validate=NAME,
                          metadata={"description": "the guard's sub; the caller's by default"})


class ReleasePassOut(CaseOut):
    number = fields.String()
    unit = fields.String()
    requested_by = fields.Dict()
    items = fields.List(fields.Dict())
    move_on = fields.Date()
    transfer_watch = fields.Boolean()
    confirmed_by = fields.String(allow_none=True)
    confirmed_at = Instant(allow_none=True)
    used_at = Instant(allow_none=True)
    used_by = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)


class ReleasePassCheckOut(Schema):
    number = fields.String()
    status = fields.String(validate=validate.OneOf(
        ["valid", "awaiting_owner", "refused", "used", "expired", "not_yet"]))
    unit = fields.String()
    holder = fields.String(metadata={"description": "who takes the goods out"})
    valid_until = fields.Date(metadata={"description": "the move_on day"})
    items = fields.List(fields.Dict())
    transfer_watch = fields.Boolean()


# -- activities ------------------------------------------------------------------------------

class ActivityIn(Schema):
    site = fields.String(required=True, validate=SITE_CODE)
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    purpose = fields.String(required=True, validate=TEXT)
    starts_at = Instant(required=True)
    ends_at = Instant(required=True)
    budget = Money(required=True)
    capacity = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(1, 100000))
    notify_sms = fields.Boolean(load_default=False, metadata={
        "description": "publishing also texts every owner of the site (opt-outs respected, "
                       "quiet hours kept), once per owner"})


class RegistrationIn(Schema):
    person_id = fields.String(required=True, validate=ID)


class SummaryIn(Schema):
    summary = fields.String(required=True, validate=TEXT)


class RevisitIn(Schema):
    person_id = fields.String(required=True, validate=ID)
    satisfied = fields.Boolean(required=True)
    comment = fields.String(load_default=None, validate=TEXT)


ACTIVITY_ACTIONS = {"publish": Empty, "register": RegistrationIn, "complete": SummaryIn,
                    "revisit": RevisitIn, "cancel": ReasonIn}


class ActivityOut(CaseOut):
    title = fields.String()
    purpose = fields.String()
    starts_at = Instant()
    ends_at = Instant()
    budget = fields.String()
    capacity = fields.Integer(allow_none=True)
    notify_sms = fields.Boolean()
    published_at = Instant(allow_none=True)
    summary = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    participants = fields.List(fields.Dict())
    revisits = fields.List(fields.Dict())
    revisit_rate = fields.Decimal(as_string=True, allow_none=True)
    satisfaction_rate = fields.Decimal(as_string=True, allow_none=True)
    on_target = fields.Boolean()


# -- the answer book -------------------------------------------------------------------------

class AnswerEntryIn(Schema):
    topic = fields.String(required=True, validate=NAME)
    question = fields.String(required=True, validate=validate.Length(min=1, max=1000))
    answer = fields.String(required=True, validate=validate.Length(min=1, max=4000))


class AnswerReviewIn(Schema):
    """The half-yearly review: what changed (nothing, if the entry still holds); either way it
    counts as reviewed now, due again in 6 months."""
    topic = fields.String(validate=NAME)
    question = fields.String(validate=validate.Length(min=1, max=1000))
    answer = fields.String(validate=validate.Length(min=1, max=4000))


class AnswerFilters(Schema):
    q = fields.String(load_default=None, validate=validate.Length(min=1, max=100),
                      metadata={"description": "text in the question or the answer (Chinese included)"})
    overdue = fields.Boolean(load_default=None, metadata={"description": "only entries due for review"})


class AnswerOut(Schema):
    id = fields.String()
    site = fields.String()
    topic = fields.String()
    question = fields.String()
    answer = fields.String()
    created_by = fields.String()
    created_at = Instant()
    updated_at = Instant(metadata={"description": "written or last reviewed"})
    reviewed_by = fields.String(allow_none=True)
    review_due = Instant()
    review_overdue = fields.Boolean()


# -- reports and the sweep -------------------------------------------------------------------

class KpiIn(Schema):
    month = Month(required=True)


RATE = {"allow_none": True, "metadata": {
    "description": "a fraction with 4 decimals, e.g. \"0.9500\"; null when nothing was measured"}}


class MoveInKpisOut(Schema):
    arrived = fields.Integer()
    completed = fields.Integer()
    start_on_time = fields.Integer(metadata={"description": "started within 15 minutes"})
    start_measured = fields.Integer()
    start_rate = fields.String(**RATE)
    finish_on_time = fields.Integer(metadata={"description": "completed within 30 minutes"})
    finish_measured = fields.Integer()
    finish_rate = fields.String(**RATE)


class ParkingKpisOut(Schema):
    applied = fields.Integer()
    approved = fields.Integer()
    within_20_minutes = fields.Integer()
    measured = fields.Integer()
    rate = fields.String(**RATE)


class DefectKpisOut(Schema):
    found = fields.Integer(metadata={"description": "found at the month's inspections"})
    open = fields.Integer(metadata={"description": "open or submitted now, whenever found"})
    submit_breached = fields.Integer()


class ActivityKpisOut(Schema):
    id = fields.String()
    title = fields.String()
    status = fields.String()
    participants = fields.Integer()
    revisit_rate = fields.String(**RATE)
    satisfaction_rate = fields.String(**RATE)
    on_target = fields.Boolean(metadata={"description": "revisits ≥ 10 % and satisfied ≥ 80 %"})


class ReleasePassKpisOut(Schema):
    issued = fields.Integer()
    used = fields.Integer()


class FrontdeskKpisOut(Schema):
    site = fields.String()
    month = fields.String()
    move_ins = fields.Nested(MoveInKpisOut)
    parking = fields.Nested(ParkingKpisOut)
    defects = fields.Nested(DefectKpisOut)
    activities = fields.List(fields.Nested(ActivityKpisOut),
                             metadata={"description": "the activities starting in the month"})
    release_passes = fields.Nested(ReleasePassKpisOut)


class FrontdeskSweepOut(Schema):
    as_of = Instant()
    breaches = fields.List(fields.Dict())
