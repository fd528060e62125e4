"""Answer schemas that more than one service shows the same way."""
from marshmallow import Schema, fields


class HistoryEntryOut(Schema):
    at = fields.String()
    by = fields.String()
    role = fields.String()
    action = fields.String()
    note = fields.String(allow_none=True)
    data = fields.Dict()
