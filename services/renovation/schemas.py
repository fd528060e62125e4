"""Renovation's commands and answers, used by the service and by the gateway (validation, OpenAPI)."""
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from services.common.contracts import SITE_CODE, UNIT_CODE
from services.common.fields import Day, Instant, Money
from services.common.privacy import mask_id_number
from services.common.schemas import HistoryEntryOut
from services.renovation.domain import APPROVALS, DOCUMENTS, STATUSES, WORK_ITEMS

PHONE = validate.Regexp(r"^\+?\d{7,15}$", error="phone is 7-15 digits")
NAME = validate.Length(min=1, max=100)


class ApplicantIn(Schema):
    name = fields.String(required=True, validate=NAME)
    phone = fields.String(required=True, validate=PHONE)
    is_owner = fields.Boolean(required=True)
    owner_consent = fields.Boolean(load_default=False, metadata={
        "description": "a non-owner applicant brings the owner's written consent (业主书面同意)"})

    @validates_schema
    def consent_of_the_owner(self, data, **_):
        if not data.get("is_owner") and not data.get("owner_consent"):
            raise ValidationError("a non-owner needs the owner's written consent", "owner_consent")


class ContractorIn(Schema):
    name = fields.String(required=True, validate=NAME)
    licence_no = fields.String(required=True, validate=validate.Length(min=1, max=64))


class WorkerIn(Schema):
    name = fields.String(required=True, validate=NAME)
    id_number = fields.String(required=True, validate=validate.Regexp(
        r"^\d{17}[\dXx]$", error="ID number is 18 characters"))


class PlannedIn(Schema):
    start = Day(required=True)
    end = Day(required=True)

    @validates_schema
    def ordered(self, data, **_):
        if data.get("start") and data.get("end") and data["end"] < data["start"]:
            raise ValidationError("end must not be before start", "end")


class RenovationIn(Schema):
    unit = fields.String(required=True, validate=UNIT_CODE)
    applicant = fields.Nested(ApplicantIn, required=True)
    contractor = fields.Nested(ContractorIn, required=True)
    workers = fields.List(fields.Nested(WorkerIn), required=True, validate=validate.Length(
        min=1, max=50, error="between 1 and 50 workers"))
    planned = fields.Nested(PlannedIn, required=True)
    work_items = fields.List(fields.String(validate=validate.OneOf(WORK_ITEMS)), required=True,
                             validate=validate.Length(min=1, error="at least one work item"))
    documents = fields.List(fields.String(validate=validate.OneOf(DOCUMENTS)), load_default=list,
                            metadata={"description": "codes of the documents supplied"})
    approvals = fields.List(fields.String(validate=validate.OneOf(APPROVALS)), load_default=list)
    debris_removal = fields.Boolean(load_default=False)
    submitted_at = Instant(load_default=None, allow_none=True, metadata={
        "description": "when a paper form was handed in; deadlines run from it"})


class ReviewIn(Schema):
    decision = fields.String(required=True, validate=validate.OneOf(["approved", "rejected"]))
    reason = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=1000))

    @validates_schema
    def rejection_says_why(self, data, **_):
        if data.get("decision") == "rejected" and data.get("reason") == "":
            raise ValidationError("empty reason", "reason")


class SignIn(Schema):
    note = fields.String(load_default=None, allow_none=True)


class PatrolIn(Schema):
    note = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    ok = fields.Boolean(required=True)


class ViolationIn(Schema):
    description = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    rectify_by = Instant(required=True)
    deduction = Money(load_default=None, allow_none=True, validate=validate.Range(min=0),
                      metadata={"description": "taken from the deposit"})


class RectifiedIn(Schema):
    numbers = fields.List(fields.Integer(validate=validate.Range(min=1)), load_default=None,
                          allow_none=True, metadata={"description": "notices rectified; all open ones if omitted"})
    note = fields.String(load_default=None, allow_none=True)


class RenovationNoteIn(Schema):
    note = fields.String(load_default=None, allow_none=True)


class InspectIn(Schema):
    passed = fields.Boolean(required=True)
    notes = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    rectify_by = Instant(load_default=None, allow_none=True, metadata={
        "description": "required when failed: the rectification notice's deadline (整改期限)"})

    @validates_schema
    def failed_says_by_when(self, data, **_):
        if data.get("passed") is False and data.get("rectify_by") is None:
            raise ValidationError("required when the inspection fails", "rectify_by")


class CloseIn(Schema):
    reference = fields.String(load_default=None, allow_none=True,
                              metadata={"description": "billing's refund reference"})


ACTION_SCHEMAS = {
    "review": ReviewIn, "sign": SignIn, "patrol": PatrolIn, "violation": ViolationIn,
    "rectified": RectifiedIn, "request-inspection": RenovationNoteIn, "inspect": InspectIn, "close": CloseIn,
}


class RenovationFilters(Schema):
    site = fields.String(load_default=None, validate=SITE_CODE)
    status = fields.String(load_default=None, validate=validate.OneOf(STATUSES))
    unit = fields.String(load_default=None, validate=UNIT_CODE)


class RenovationOut(Schema):
    id = fields.String()
    site = fields.String()
    unit = fields.String()
    status = fields.String()
    applicant = fields.Dict()
    contractor = fields.Dict()
    workers = fields.Method("masked_workers")
    planned = fields.Method("planned_dates")
    work_items = fields.List(fields.String())
    documents = fields.List(fields.String())
    approvals = fields.List(fields.String())
    debris_removal = fields.Boolean()
    rule_violations = fields.List(fields.String())
    rejection_reasons = fields.List(fields.String())
    fees = fields.List(fields.Dict())
    paid_invoices = fields.Dict()
    agreement_signed_at = Instant(allow_none=True)
    permit = fields.Dict(allow_none=True)
    passes = fields.List(fields.Dict())
    patrols = fields.List(fields.Dict())
    violations = fields.List(fields.Dict())
    inspections = fields.List(fields.Dict())
    deductions = fields.String()
    refund = fields.Dict(allow_none=True)
    deadlines = fields.Dict(keys=fields.String(), values=fields.String())
    deadlines_met = fields.Dict(keys=fields.String(), values=fields.String())
    breaches = fields.List(fields.Dict())
    history = fields.List(fields.Nested(HistoryEntryOut))
    submitted_at = Instant()
    created_at = Instant()
    allowed_actions = fields.List(fields.String())

    @staticmethod
    def masked_workers(renovation):
        return [{"name": w["name"], "id_number": mask_id_number(w["id_number"])}
                for w in renovation.workers]

    @staticmethod
    def planned_dates(renovation):
        return {"start": renovation.planned_start.isoformat(), "end": renovation.planned_end.isoformat()}


class PassCheckOut(Schema):
    number = fields.String()
    status = fields.String(validate=validate.OneOf(["valid", "expired", "revoked"]))
    unit = fields.String()
    holder = fields.String()
    valid_from = fields.String(metadata={"description": "YYYY-MM-DD, first day of work"})
    valid_until = fields.String(metadata={"description": "YYYY-MM-DD, last day the pass opens the gate"})
    renovation_id = fields.String()


class RenovationSweepOut(Schema):
    as_of = Instant()
    breaches = fields.List(fields.Dict())
    escalations = fields.List(fields.Dict())
