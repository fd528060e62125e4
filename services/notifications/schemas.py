"""Notifications' queries and answers, used by the service and by the gateway (validation, OpenAPI)."""
from marshmallow import Schema, fields, validate

from services.common.calendar import ENTERED, HOLIDAYS, LIBRARY, WEEKDAYS_ONLY
from services.common.contracts import SITE_CODE, UNIT_CODE
from services.common.fields import Day, Instant
from services.notifications.domain import CHANNELS, STATUSES


class MessageFilters(Schema):
    ticket_id = fields.String(load_default=None, allow_none=True)
    unit = fields.String(load_default=None, allow_none=True, validate=UNIT_CODE)
    recipient = fields.String(load_default=None, allow_none=True,
                              metadata={"description": "a phone, an email or a staff sub"})
    channel = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(CHANNELS))
    status = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(STATUSES),
                           metadata={"description": "e.g. dead, or awaiting_post for letters to post"})
    event = fields.String(load_default=None, allow_none=True,
                          metadata={"description": "e.g. billing.arrears_escalated"})
    site = fields.String(load_default=None, allow_none=True, validate=SITE_CODE)


class MessageOut(Schema):
    id = fields.String()
    channel = fields.String(metadata={"enum": list(CHANNELS)})
    recipient = fields.String(metadata={"description": "phone, email or the staff member's sub"})
    event = fields.String(metadata={"description": "the bus event it came from, e.g. ticketing.callback_due"})
    template = fields.String()
    status = fields.String(metadata={"enum": list(STATUSES)})
    ticket_id = fields.String(allow_none=True)
    unit = fields.String(allow_none=True)
    site = fields.String(allow_none=True)
    subject = fields.String(allow_none=True, metadata={"description": "email only"})
    body = fields.String()
    created_at = Instant()
    attempts = fields.Integer()
    next_attempt_at = Instant(allow_none=True,
                                           metadata={"description": "when the sweep tries it next"})
    last_error = fields.String(allow_none=True)
    posted_at = Instant(allow_none=True, metadata={"description": "letters"})
    posted_by = fields.String(allow_none=True)
    tracking_number = fields.String(allow_none=True)


class AttemptOut(Schema):
    at = Instant()
    ok = fields.Boolean()
    error = fields.String(allow_none=True)


class MessageDetailOut(MessageOut):
    attempt_log = fields.List(fields.Nested(AttemptOut), metadata={"description": "every try, oldest first"})


class PostedIn(Schema):
    posted_at = Instant(load_default=None, allow_none=True,
                                     metadata={"description": "default: now"})
    tracking_number = fields.String(load_default=None, allow_none=True,
                                    validate=validate.Length(min=1, max=64),
                                    metadata={"description": "express-mail number (lawyer's letters)"})


class OptOutIn(Schema):
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    opted_out = fields.Boolean(load_default=True)


class OptOutOut(Schema):
    person_id = fields.String()
    channel = fields.String()
    opted_out = fields.Boolean()


TemplateOut = Schema.from_dict({
    "name": fields.String(),
    "channel": fields.String(metadata={"enum": list(CHANNELS)}),
    "event": fields.String(allow_none=True, metadata={"description": "the event it serves"}),
    "fields": fields.List(fields.String(), metadata={"description": "what fills it (its sample's fields)"}),
}, name="TemplateOut")


class PreviewIn(Schema):
    context = fields.Dict(keys=fields.String(), load_default=dict,
                          metadata={"description": "fields laid over the template's sample"})


class PreviewOut(Schema):
    name = fields.String()
    channel = fields.String()
    subject = fields.String(allow_none=True)
    body = fields.String()


class NotificationsSweepOut(Schema):
    warranty_reminders = fields.Integer(metadata={"description": "units reminded of their warranty's end"})
    greetings = fields.Integer(metadata={"description": "holiday greetings made (each person once a holiday)"})
    sent = fields.Integer()
    failed = fields.Integer()
    dead = fields.Integer()
    skipped = fields.Integer()


# -- the working-day calendar (notifications keeps the years head office enters) ---------------

class HolidayIn(Schema):
    name = fields.String(required=True, validate=validate.OneOf(list(HOLIDAYS)))
    first_day = Day(load_default=None, allow_none=True, metadata={
        "description": "the holiday's first day, when greetings go out; one of `days`, the "
                       "earliest by default"})
    days = fields.List(Day(), required=True, validate=validate.Length(min=1, max=31),
                       metadata={"description": "every day off, weekends within it included"})


class CalendarIn(Schema):
    holidays = fields.List(fields.Nested(HolidayIn), required=True,
                           validate=validate.Length(max=len(HOLIDAYS)))
    workdays = fields.List(Day(), load_default=list, validate=validate.Length(max=31), metadata={
        "description": "adjusted working days (调休): weekend days worked"})


class HolidayOut(Schema):
    name = fields.String(metadata={"enum": list(HOLIDAYS)})
    first_day = Day()
    days = fields.List(Day())


class CalendarOut(Schema):
    year = fields.Integer()
    source = fields.String(metadata={"enum": [LIBRARY, ENTERED, WEEKDAYS_ONLY], "description":
                                      "weekdays_only: Monday to Friday count, no holiday known"})
    holidays = fields.List(fields.Nested(HolidayOut))
    workdays = fields.List(Day())
    version = fields.Integer(allow_none=True, metadata={"description": "entered years"})
    entered_by = fields.String(allow_none=True)
    entered_at = Instant(allow_none=True)
