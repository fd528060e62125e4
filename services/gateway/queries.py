"""What the gateway's own endpoints accept beyond the services' schemas: query strings of the
lists (cursor pagination and filters) and the admin echo."""
from marshmallow import Schema, fields, validate

from services.billing.schemas import ArrearsFilters, LawsuitFilters
from services.common.contracts import SITE_CODE
from services.common.db import MAX_PAGE
from services.frontdesk.schemas import AnswerFilters, DefectFilters
from services.notifications.schemas import MessageFilters
from services.registry.schemas import ChangeRequestFilters
from services.renovation.schemas import RenovationFilters
from services.ticketing.schemas import TicketFilters


class Page(Schema):
    cursor = fields.String(load_default=None, metadata={"description": "next_cursor of the previous page"})
    limit = fields.Integer(load_default=50, validate=validate.Range(
        1, MAX_PAGE, error=f"between 1 and {MAX_PAGE}"))


class UnitQuery(Page):
    site = fields.String(required=True, validate=SITE_CODE)


class TicketQuery(TicketFilters, Page):
    pass


class MessageQuery(MessageFilters, Page):
    pass


class RenovationQuery(RenovationFilters, Page):
    pass


class ArrearsQuery(ArrearsFilters, Page):
    pass


class ChangeRequestQuery(ChangeRequestFilters, Page):
    pass


class LawsuitQuery(LawsuitFilters, Page):
    pass


class EchoIn(Schema):
    service = fields.String(load_default="registry", metadata={"description": "whose echo to call"})
    payload = fields.Dict(keys=fields.String(), load_default=None, allow_none=True,
                          metadata={"description": "any JSON object; answered back as sent"})


def page_args(query):
    """(filters, cursor, limit) of a loaded list query; filters without the empty ones."""
    filters = {k: v for k, v in query.items() if k not in ("cursor", "limit") and v is not None}
    return filters, query["cursor"], query["limit"]


# -- frontdesk ------------------------------------------------------------------------------

class DefectQuery(DefectFilters, Page):
    pass


class AnswerQuery(AnswerFilters, Page):
    pass
