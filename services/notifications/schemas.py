"""Notifications' queries and answers, used by the service and by the gateway (validation, OpenAPI)."""
from marshmallow import Schema, fields, validate

from services.common.contracts import SITE_CODE, UNIT_CODE
from services.notifications.domain import CHANNELS, STATUSES

class MessageFilters(Schema):
    ticket_id = fields.String(load_default=None, allow_none=True)
    unit = fields.String(load_default=None, allow_none=True, validate=UNIT_CODE)
    recipient = fields.String(load_default=None, allow_none=True,
                              metadata={"description": "a phone, an email or a staff sub"})
    channel = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(CHANNELS))
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
    body = fields.String()
    created_at = fields.AwareDateTime()
    attempts = fields.Integer()
