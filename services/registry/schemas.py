"""Registry's commands and answers, used by the service and by the gateway (validation, OpenAPI)."""
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from services.common.contracts import SITE_CODE, UNIT_CODE
from services.common.fields import Day, Instant
from services.registry.domain import USAGES, unit_code_problem


class SiteIn(Schema):
    code = fields.String(required=True, validate=SITE_CODE)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    timezone = fields.String(load_default="Asia/Shanghai", validate=validate.Length(max=64))

    @validates_schema
    def known_zone(self, data, **_):
        from zoneinfo import ZoneInfo
        try:
            ZoneInfo(data.get("timezone") or "Asia/Shanghai")
        except Exception as exc:
            raise ValidationError("unknown time zone", "timezone") from exc


PHONE = validate.Regexp(r"^\+?\d{7,15}$", error="phone is 7-15 digits")
NAME = validate.Length(min=1, max=100)


class PersonIn(Schema):
    name = fields.String(required=True, validate=NAME)
    phone = fields.String(required=True, validate=PHONE)
    email = fields.Email(load_default=None, allow_none=True)
    id_number = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=32))
    major_customer = fields.Boolean(load_default=False)


class UnitIn(Schema):
    code = fields.String(required=True, validate=UNIT_CODE)
    site = fields.String(load_default=None, validate=SITE_CODE,
                         metadata={"description": "optional; when given, the code must start with it"})
    usage = fields.String(required=True, validate=validate.OneOf(USAGES))
    area_m2 = fields.Decimal(required=True, places=2, as_string=True,
                             validate=validate.Range(min=0, min_inclusive=False))
    handover_date = Day(load_default=None, allow_none=True)
    warranty_until = Day(load_default=None, allow_none=True, metadata={
        "description": "last day of the warranty (保修期); default: handover date + 2 years"})
    meters = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    owner = fields.Nested(PersonIn, required=True)

    @validates_schema
    def code_of_site(self, data, **_):
        problem = unit_code_problem(data["code"], data.get("site"))
        if problem:
            raise ValidationError(problem, "code")

    @validates_schema
    def warranty_after_handover(self, data, **_):
        handover, warranty = data.get("handover_date"), data.get("warranty_until")
        if handover and warranty and warranty < handover:
            raise ValidationError("the warranty cannot end before the handover", "warranty_until")


class AssistantContact(Schema):
    """The customer-affairs assistant (客户事务助理): staff, so the phone is shown in full."""
    name = fields.String(required=True, validate=NAME)
    phone = fields.String(required=True, validate=PHONE)


class MoveInIn(Schema):
    moved_in_on = Day(load_default=None, allow_none=True, metadata={
        "description": "the day the owner moved in (入伙); default: today at the site"})
    assistant = fields.Nested(AssistantContact, required=True)


class AssistantIn(Schema):
    assistant = fields.Nested(AssistantContact, required=True)


class PersonReadIn(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=3, max=500))


class SiteOut(Schema):
    code = fields.String()
    name = fields.String()
    timezone = fields.String()
    created_at = Instant()


class PersonOut(Schema):
    id = fields.String()
    name = fields.String()
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    id_number = fields.String(allow_none=True)
    major_customer = fields.Boolean()
    relation = fields.String()


class UnitOut(Schema):
    code = fields.String()
    site = fields.String()
    usage = fields.String()
    area_m2 = fields.String()
    handover_date = Day(allow_none=True)
    warranty_until = Day(allow_none=True)
    moved_in_on = Day(allow_none=True)
    assistant = fields.Nested(AssistantContact, allow_none=True)
    meters = fields.Dict()
    active = fields.Boolean()
    transfer_watch = fields.Boolean()
    people = fields.List(fields.Nested(PersonOut), metadata={"description": "phone and ID masked"})
    created_at = Instant()
