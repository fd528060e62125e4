"""Ticketing's commands and answers, used by the service and by the gateway (validation, OpenAPI)."""
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from services.common.contracts import SITE_CODE, UNIT_CODE
from services.common.fields import Instant, Money, Month
from services.common.schemas import HistoryEntryOut
from services.frontdesk.schemas import FrontdeskKpisOut
from services.ticketing.domain import (
    CATEGORIES, CHANNELS, KINDS, PRIORITIES, SCOPES, SEVERITIES, policy_fields,
)

AVAILABLE_KINDS = KINDS


class Window(Schema):
    start = Instant(required=True)
    end = Instant(required=True)

    @validates_schema
    def ordered(self, data, **_):
        if data["end"] <= data["start"]:
            raise ValidationError("end must be after start", "end")


class ReporterIn(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    phone = fields.String(required=True, validate=validate.Regexp(r"^\+?\d{7,15}$", error="phone is 7-15 digits"))
    email = fields.Email(load_default=None, allow_none=True)


class TicketIn(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(AVAILABLE_KINDS))
    site = fields.String(required=True, validate=SITE_CODE)
    unit = fields.String(load_default=None, allow_none=True, validate=UNIT_CODE)
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    description = fields.String(required=True, validate=validate.Length(min=1, max=4000))
    received_at = Instant(load_default=None, allow_none=True)
    priority = fields.String(load_default="normal", validate=validate.OneOf(PRIORITIES))
    scope = fields.String(load_default="common_area", validate=validate.OneOf(SCOPES))
    important = fields.Boolean(load_default=False)
    appointment = fields.Nested(Window, load_default=None, allow_none=True)
    reporter = fields.Nested(ReporterIn, load_default=None, allow_none=True)
    fee = Money(load_default=None, allow_none=True, validate=validate.Range(min=0),
                metadata={"description": "quoted fee of a paid in-home repair"})
    severity = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(SEVERITIES),
                             metadata={"description": "complaints: A major, B general, C minor"})
    category = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(CATEGORIES),
                             metadata={"description": "complaints: KF, ZX, GC, BJ, YY, QT"})
    complainants = fields.Integer(load_default=1, validate=validate.Range(min=1, max=10000),
                                  metadata={"description": "complaints: 3 or more is a joint complaint (always A)"})
    requested_deadline = Instant(
        load_default=None, allow_none=True,
        metadata={"description": "complaints of severity C: the complainant's own deadline"})
    reply_by = Instant(load_default=None, allow_none=True,
                                    metadata={"description": "inquiries: the reply time agreed"})

    @validates_schema
    def complaint_fields(self, data, **_):
        if data.get("kind") != "complaint":
            return
        errors = {}
        if not data.get("category"):
            errors["category"] = ["a complaint needs its category"]
        if not data.get("severity") and (data.get("complainants") or 1) < 3:
            errors["severity"] = ["a complaint needs its severity (A, B or C)"]
        if errors:
            raise ValidationError(errors)

    @validates_schema
    def unit_in_site(self, data, **_):
        if data.get("unit") and data.get("site") and not data["unit"].startswith(data["site"]):
            raise ValidationError("unit code must start with the site code", "unit")
        if data.get("scope") == "in_home" and not data.get("unit"):
            raise ValidationError("an in-home repair needs the unit", "unit")


class DispatchIn(Schema):
    assignee = fields.String(required=True, validate=validate.Length(min=1, max=100))
    appointment = fields.Nested(Window, load_default=None, allow_none=True)


class RescheduleIn(Schema):
    appointment = fields.Nested(Window, required=True)
    missed = fields.Boolean(load_default=False, metadata={"description": "the last appointment was missed"})
    reason = fields.String(load_default=None, allow_none=True)


class CompleteIn(Schema):
    result = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    materials = fields.List(fields.String(), load_default=list)
    signed_off = fields.Boolean(load_default=False, metadata={"description": "customer sign-off"})
    fee = Money(load_default=None, allow_none=True, validate=validate.Range(min=0))


class CallbackIn(Schema):
    reached = fields.Boolean(required=True)
    satisfaction = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(1, 5))
    comment = fields.String(load_default=None, allow_none=True)

    @validates_schema
    def rated_when_reached(self, data, **_):
        if data.get("reached") and data.get("satisfaction") is None:
            raise ValidationError("a reached resident's satisfaction (1-5) is required", "satisfaction")


class EmptyIn(Schema):
    pass


class CancelIn(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))


class NoteIn(Schema):
    note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2000))


class RouteIn(Schema):
    assignee = fields.String(required=True, validate=validate.Length(min=1, max=100),
                             metadata={"description": "the responsible supervisor"})


class AssessIn(Schema):
    valid = fields.Boolean(required=True)
    reason = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2000))

    @validates_schema
    def explained(self, data, **_):
        if data.get("valid") is False and not data.get("reason"):
            raise ValidationError("an invalid complaint is explained to the complainant", "reason")


class AnswerIn(Schema):
    answer = fields.String(load_default=None, validate=validate.Length(min=1, max=4000))
    answer_id = fields.String(load_default=None, validate=validate.Length(min=1, max=40), metadata={
        "description": "an entry of the site's answer book (frontdesk): its answer, cited on the ticket"})

    @validates_schema
    def answered(self, data, **_):
        if not data.get("answer") and not data.get("answer_id"):
            raise ValidationError("an answer, or the answer_id of an answer-book entry", "answer")


class ExtensionIn(Schema):
    until = Instant(required=True, metadata={"description": "the new resolve deadline"})
    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class ApprovalIn(Schema):
    approved = fields.Boolean(load_default=True)
    note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2000))


class ResolveIn(Schema):
    result = fields.String(required=True, validate=validate.Length(min=1, max=4000))
    compensation = Money(load_default=None, allow_none=True, validate=validate.Range(min=0),
                         metadata={"description": "CNY; capped by role: supervisor 1000, quality_supervisor 2000"})


class ReplyIn(Schema):
    message = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=4000))


class ForwardIn(Schema):
    handler = fields.String(required=True, validate=validate.Length(min=1, max=100))


class DecideIn(Schema):
    adopted = fields.Boolean(required=True)
    reason = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2000))
    committee_consulted = fields.Boolean(load_default=False,
                                         metadata={"description": "the owners' committee was asked"})

    @validates_schema
    def reason_when_not_adopted(self, data, **_):
        if data.get("adopted") is False and not data.get("reason"):
            raise ValidationError("a suggestion not adopted needs the reason", "reason")


class ReopenIn(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))


ACTION_SCHEMAS = {
    "dispatch": DispatchIn, "reschedule": RescheduleIn, "arrive": EmptyIn,
    "complete": CompleteIn, "record-callback": CallbackIn, "close": EmptyIn, "cancel": CancelIn,
    "acknowledge": NoteIn, "route": RouteIn, "assess": AssessIn, "answer": AnswerIn,
    "request-extension": ExtensionIn, "approve-extension": ApprovalIn, "resolve": ResolveIn,
    "reply": ReplyIn, "forward": ForwardIn, "decide": DecideIn, "reopen": ReopenIn,
}


SlaPolicyIn = Schema.from_dict(
    {name: fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1))
     for name in policy_fields()}, name="SlaPolicyIn")


class OnCallIn(Schema):
    """One shift of a site's on-call roster: whoever is on call when an urgent repair is
    received is paged."""
    technician = fields.String(required=True, validate=validate.Length(min=1, max=100),
                               metadata={"description": "the technician's sub"})
    phone = fields.String(required=True, validate=validate.Regexp(r"^\+?\d{7,15}$", error="phone is 7-15 digits"))
    from_ = Instant(required=True, data_key="from")
    until = Instant(required=True)

    @validates_schema
    def ordered(self, data, **_):
        if data["until"] <= data["from_"]:
            raise ValidationError("until must be after from", "until")


class OnCallOut(Schema):
    id = fields.String()
    site = fields.String()
    technician = fields.String()
    phone = fields.String()
    from_ = Instant(data_key="from", attribute="from")
    until = Instant()
    set_by = fields.String()
    set_at = Instant()


class SlaPolicyOut(Schema):
    site = fields.String()
    limits = fields.Dict(metadata={"description": "what the site tightened"})
    policy = fields.Dict(metadata={"description": "every limit in force"})


class SiteListQuery(Schema):
    cursor = fields.String(load_default=None)
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200, error="between 1 and 200"))


class KpiQuery(Schema):
    month = Month(required=True)
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "csv"]))


KPI_RATE = {"allow_none": True, "metadata": {
    "description": "a fraction (0..1, 4 decimals); null when there is nothing to measure"}}


class ReceivedOut(Schema):
    repair = fields.Integer()
    complaint = fields.Integer()
    inquiry = fields.Integer()
    suggestion = fields.Integer()


class KpiReportOut(Schema):
    """The site's monthly report (SPEC §2.1, §2.2, §8): the tickets received in the month, and
    the front desk's procedures (frontdesk's figures, also at /sites/{code}/frontdesk-kpis)."""
    site = fields.String()
    month = fields.String()
    households = fields.Integer()
    received = fields.Nested(ReceivedOut)
    timeliness_rate = fields.Float(**KPI_RATE)
    repair_timeliness_rate = fields.Float(**KPI_RATE)
    complaint_timeliness_rate = fields.Float(**KPI_RATE)
    callback_rate = fields.Float(**KPI_RATE)
    satisfaction_rate = fields.Float(**KPI_RATE)
    average_satisfaction = fields.Float(allow_none=True)
    complaint_rate = fields.Float(**KPI_RATE)
    valid_complaint_rate = fields.Float(**KPI_RATE)
    rework_rate = fields.Float(**KPI_RATE)
    inquiry_reply_rate = fields.Float(**KPI_RATE)
    finished = fields.Integer()
    frontdesk = fields.Nested(FrontdeskKpisOut)


class CommitteeReportQuery(Schema):
    month = Month(required=True)
    format = fields.String(load_default="html", validate=validate.OneOf(["html", "json"]),
                           metadata={"description": "html (default) or json; the gateway also "
                                                    "answers JSON for Accept: application/json"})


class CommitteeReportOut(Schema):
    """The monthly work report to the owners' committee (SPEC §8.6) as JSON."""
    site = fields.String()
    month = fields.String()
    kpis = fields.Nested(KpiReportOut, metadata={
        "description": "the site's KPI report of the month, as GET /sites/{code}/kpis?month= "
                       "answers it"})
    against_target = fields.List(fields.Dict(), metadata={
        "description": "[{figure, value, target, on_target}]: rates are fractions"})
    breaches = fields.Dict(metadata={"description": "{tickets: {kind: {deadline: n}}, "
                                                    "tickets_total, contacts, defects_submit, total}"})
    collection = fields.Dict(metadata={"description": "billing's collection rate of the month"})
    activities = fields.List(fields.Dict())
    open_defects = fields.Integer()
    frontdesk = fields.Dict()
    trend = fields.List(fields.Dict(), metadata={
        "description": "the last 12 months, oldest first: received, timeliness_rate, "
                       "callback_rate, satisfaction_rate, collection_rate"})


class TicketFilters(Schema):
    site = fields.String(load_default=None, validate=SITE_CODE)
    kind = fields.String(load_default=None)
    status = fields.String(load_default=None)
    overdue = fields.Boolean(load_default=None, allow_none=True)
    callback_due_before = Instant(load_default=None, allow_none=True)


class TicketOut(Schema):
    id = fields.String()
    code = fields.String()
    kind = fields.String()
    site = fields.String()
    unit = fields.String(allow_none=True)
    status = fields.String()
    channel = fields.String()
    description = fields.String()
    priority = fields.String()
    scope = fields.String()
    important = fields.Boolean()
    reporter = fields.Dict(allow_none=True)
    first_contact_owner = fields.String()
    assignee = fields.String(allow_none=True)
    appointment = fields.Dict(allow_none=True)
    reschedules = fields.Integer()
    missed_appointments = fields.Integer()
    escalated = fields.Boolean()
    received_at = Instant()
    created_at = Instant()
    completed_at = Instant(allow_none=True)
    closed_at = Instant(allow_none=True)
    late_entry = fields.Boolean()
    deadlines = fields.Dict(keys=fields.String(), values=fields.String())
    deadlines_met = fields.Dict(keys=fields.String(), values=fields.String())
    breaches = fields.List(fields.Dict())
    warnings = fields.List(fields.Dict(), metadata={"description": "超时预警: {deadline, due_at, warned_at}"})
    history = fields.List(fields.Nested(HistoryEntryOut))
    callback = fields.Dict(allow_none=True)
    second_callback = fields.Dict(allow_none=True)
    result = fields.Dict(allow_none=True)
    fee = fields.String(allow_none=True)
    policy = fields.Dict()
    severity = fields.String(allow_none=True)
    category = fields.String(allow_none=True)
    complainants = fields.Integer(allow_none=True)
    requested_deadline = Instant(allow_none=True)
    valid = fields.Boolean(allow_none=True)
    compensation = fields.String(allow_none=True)
    extension = fields.Dict(allow_none=True)
    details = fields.Dict(allow_none=True)
    reopened = fields.Integer()
    rework = fields.Integer()
    resolved_at = Instant(allow_none=True)
    next_due_at = Instant(allow_none=True)
    allowed_actions = fields.List(fields.String())
