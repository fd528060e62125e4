"""Ticketing's commands and answers, used by the service and by the gateway (validation, OpenAPI)."""
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from services.common.contracts import SITE_CODE, UNIT_CODE
from services.ticketing.domain import CHANNELS, PRIORITIES, SCOPES

AVAILABLE_KINDS = ("repair",)   # complaints, inquiries and suggestions arrive with issue 3


class Window(Schema):
    start = fields.AwareDateTime(required=True)
    end = fields.AwareDateTime(required=True)

    @validates_schema
    def ordered(self, data, **_):
        if data["end"] <= data["start"]:
            raise ValidationError("end must be after start", "end")


class ReporterIn(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    phone = fields.String(required=True, validate=validate.Regexp(r"^\+?\d{7,15}$", error="phone is 7-15 digits"))
    email = fields.Email(load_default=None, allow_none=True)


class TicketIn(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(
        AVAILABLE_KINDS, error="only repair tickets are available yet"))
    site = fields.String(required=True, validate=SITE_CODE)
    unit = fields.String(load_default=None, allow_none=True, validate=UNIT_CODE)
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    description = fields.String(required=True, validate=validate.Length(min=1, max=4000))
    received_at = fields.AwareDateTime(load_default=None, allow_none=True)
    priority = fields.String(load_default="normal", validate=validate.OneOf(PRIORITIES))
    scope = fields.String(load_default="common_area", validate=validate.OneOf(SCOPES))
    important = fields.Boolean(load_default=False)
    appointment = fields.Nested(Window, load_default=None, allow_none=True)
    reporter = fields.Nested(ReporterIn, load_default=None, allow_none=True)
    fee = fields.Decimal(load_default=None, allow_none=True, places=2, as_string=True,
                         validate=validate.Range(min=0),
                         metadata={"description": "quoted fee of a paid in-home repair"})

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
    fee = fields.Decimal(load_default=None, allow_none=True, places=2, as_string=True,
                         validate=validate.Range(min=0))


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


ACTION_SCHEMAS = {
    "dispatch": DispatchIn, "reschedule": RescheduleIn, "arrive": EmptyIn,
    "complete": CompleteIn, "record-callback": CallbackIn, "close": EmptyIn, "cancel": CancelIn,
}


class TicketFilters(Schema):
    site = fields.String(load_default=None, validate=SITE_CODE)
    kind = fields.String(load_default=None)
    status = fields.String(load_default=None)
    overdue = fields.Boolean(load_default=None, allow_none=True)
    callback_due_before = fields.AwareDateTime(load_default=None, allow_none=True)


class HistoryOut(Schema):
    at = fields.String()
    by = fields.String()
    role = fields.String()
    action = fields.String()
    note = fields.String(allow_none=True)
    data = fields.Dict()


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
    received_at = fields.AwareDateTime()
    created_at = fields.AwareDateTime()
    completed_at = fields.AwareDateTime(allow_none=True)
    closed_at = fields.AwareDateTime(allow_none=True)
    late_entry = fields.Boolean()
    deadlines = fields.Dict(keys=fields.String(), values=fields.String())
    deadlines_met = fields.Dict(keys=fields.String(), values=fields.String())
    breaches = fields.List(fields.Dict())
    history = fields.List(fields.Nested(HistoryOut))
    callback = fields.Dict(allow_none=True)
    second_callback = fields.Dict(allow_none=True)
    result = fields.Dict(allow_none=True)
    fee = fields.String(allow_none=True)
    policy = fields.Dict()
    allowed_actions = fields.List(fields.String())
