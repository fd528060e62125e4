"""Registry's commands and answers, used by the service and by the gateway (validation, OpenAPI)."""
from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from services.common.contracts import PLATE, SITE_CODE, UNIT_CODE
from services.common.fields import Day, Instant, Month
from services.registry.domain import (
    CONTACT_CHANNELS, KINDS, RELATIONS, USAGES, changes_problem, target_problem,
    unit_code_problem,
)


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


COLLECTED_AT = dict(load_default=None, allow_none=True, metadata={
    "description": "when the paper form was filled in; entered more than 3 days later is "
                   "flagged late_entry and counted in the site's registry KPIs"})
AREA = dict(places=2, as_string=True, validate=validate.Range(min=0, min_inclusive=False))


class UnitIn(Schema):
    code = fields.String(required=True, validate=UNIT_CODE)
    site = fields.String(load_default=None, validate=SITE_CODE,
                         metadata={"description": "optional; when given, the code must start with it"})
    usage = fields.String(required=True, validate=validate.OneOf(USAGES))
    area_m2 = fields.Decimal(required=True, **AREA)
    collected_at = Instant(**COLLECTED_AT)
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


class LeaseIn(Schema):
    contract_no = fields.String(required=True, validate=validate.Length(min=1, max=40))
    start = Day(required=True)
    end = Day(required=True)

    @validates_schema
    def ends_after_start(self, data, **_):
        if data["end"] < data["start"]:
            raise ValidationError("the lease cannot end before it starts", "end")


class PersonAddIn(PersonIn):
    relation = fields.String(required=True, validate=validate.OneOf(RELATIONS))
    lease = fields.Nested(LeaseIn, load_default=None, allow_none=True,
                          metadata={"description": "required for a tenant"})
    owner_consent = fields.Boolean(load_default=False, metadata={
        "description": "the owner's written consent; required (true) for a tenant"})
    collected_at = Instant(**COLLECTED_AT)



class VehicleIn(Schema):
    plate = fields.String(required=True, validate=PLATE)
    person_id = fields.String(required=True, validate=validate.Length(min=1, max=24))
    licence_no = fields.String(required=True, validate=validate.Length(min=1, max=32),
                               metadata={"description": "driving-licence number (行驶证号)"})
    model = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=100))
    insurance_until = Day(load_default=None, allow_none=True)


class VehicleOut(Schema):
    id = fields.String()
    site = fields.String()
    unit = fields.String()
    person_id = fields.String()
    plate = fields.String()
    licence_no = fields.String()
    model = fields.String(allow_none=True)
    insurance_until = Day(allow_none=True)
    parking_space = fields.String(allow_none=True, metadata={"description": "set by a parking rental"})
    rental_contract_no = fields.String(allow_none=True)
    active = fields.Boolean()
    created_at = Instant()


class PersonOut(Schema):
    id = fields.String()
    name = fields.String()
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    id_number = fields.String(allow_none=True)
    major_customer = fields.Boolean()
    relation = fields.String()
    site = fields.String(allow_none=True)
    lease = fields.Dict(allow_none=True)
    owner_consent = fields.Boolean()
    collected_at = Instant(allow_none=True)
    late_entry = fields.Boolean()
    verified = fields.Boolean()
    entered_by = fields.String(allow_none=True)
    verified_by = fields.String(allow_none=True)
    active = fields.Boolean()
    units = fields.List(fields.String())
    key_customer = fields.Boolean()
    committee_member = fields.Boolean()


# What each kind of change may set, with the same rules as when the record is entered.
class UnitChanges(Schema):
    usage = fields.String(validate=validate.OneOf(USAGES))
    area_m2 = fields.Decimal(**AREA)
    handover_date = Day(allow_none=True)
    warranty_until = Day(allow_none=True)
    moved_in_on = Day(allow_none=True)
    meters = fields.Dict(keys=fields.String(), values=fields.String())


class PersonChanges(Schema):
    name = fields.String(validate=NAME)
    phone = fields.String(validate=PHONE)
    email = fields.Email(allow_none=True)
    id_number = fields.String(allow_none=True, validate=validate.Length(max=32))
    major_customer = fields.Boolean()
    lease = fields.Nested(LeaseIn, allow_none=True)
    key_customer = fields.Boolean(metadata={"description": "要害客户: contacted every quarter"})
    committee_member = fields.Boolean(metadata={
        "description": "a member of the owners' committee: contacted every month"})


class VehicleChanges(Schema):
    plate = fields.String(validate=PLATE)
    licence_no = fields.String(validate=validate.Length(min=1, max=32))
    model = fields.String(allow_none=True, validate=validate.Length(max=100))
    insurance_until = Day(allow_none=True)
    parking_space = fields.String(allow_none=True, validate=validate.Length(max=32))
    rental_contract_no = fields.String(allow_none=True, validate=validate.Length(max=40))


CHANGES = {"unit": UnitChanges, "person": PersonChanges, "vehicle": VehicleChanges}


class ChangeRequestIn(Schema):
    unit = fields.String(required=True, validate=UNIT_CODE)
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    target_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=24),
                              metadata={"description": "the person or vehicle changed; a "
                                        "deactivation without it deactivates the unit"})
    changes = fields.Dict(keys=fields.String(validate=validate.Length(max=40)), load_default=dict)
    reason = fields.String(required=True, validate=validate.Length(min=1, max=1000))
    documents = fields.List(fields.String(validate=validate.Length(min=1, max=100)),
                            load_default=list, validate=validate.Length(max=20),
                            metadata={"description": "the documents checked"})
    effective_on = Day(load_default=None, allow_none=True, metadata={
        "description": "a change that affects fees (area_m2, usage, major_customer, "
                       "handover_date) takes effect on this day, after the day of approval"})

    @validates_schema
    def changes_of_kind(self, data, **_):
        kind = data["kind"]
        problem = target_problem(kind, data.get("target_id"))
        if problem:
            raise ValidationError(problem, "target_id")
        problem = changes_problem(kind, data["changes"])
        if problem:
            raise ValidationError(problem, "changes")
        errors = CHANGES[kind]().validate(data["changes"]) if kind in CHANGES else {}
        if errors:
            raise ValidationError(errors, "changes")

    @post_load
    def typed_changes(self, data, **_):
        if data["kind"] in CHANGES:
            data["changes"] = CHANGES[data["kind"]]().load(data["changes"])
        return data


class ApproveIn(Schema):
    note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=1000))


class RejectIn(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=1000))


class ChangeRequestFilters(Schema):
    site = fields.String(load_default=None, validate=SITE_CODE)
    unit = fields.String(load_default=None, validate=UNIT_CODE)
    status = fields.String(load_default=None, validate=validate.OneOf(
        ("pending", "approved", "applied", "rejected")))


class ChangeRequestOut(Schema):
    id = fields.String()
    site = fields.String()
    unit = fields.String()
    kind = fields.String()
    target_id = fields.String(allow_none=True)
    changes = fields.Dict()
    reason = fields.String()
    documents = fields.List(fields.String())
    affects_fees = fields.Boolean()
    effective_on = Day(allow_none=True)
    status = fields.String()
    requested_by = fields.String()
    requested_at = Instant()
    decided_by = fields.String(allow_none=True)
    decided_at = Instant(allow_none=True)
    rejection_reason = fields.String(allow_none=True)
    applied_at = Instant(allow_none=True)
    before = fields.Dict(allow_none=True)
    after = fields.Dict(allow_none=True)
    notice_event_id = fields.String(allow_none=True, metadata={
        "description": "the bus event whose letter and SMS notify the owner; find them with "
                       "GET /messages?unit="})
    allowed_actions = fields.List(fields.String())
    history = fields.List(fields.Dict())


class UnitHistoryOut(Schema):
    """One applied change of a unit, or of a person or vehicle of it."""
    change_request_id = fields.String()
    kind = fields.String()
    target_id = fields.String(allow_none=True)
    before = fields.Dict()
    after = fields.Dict()
    reason = fields.String()
    requested_by = fields.String()
    approved_by = fields.String()
    approved_at = Instant()
    applied_at = Instant()


class RegistryKpiQuery(Schema):
    month = Month(required=True)


class RegistryKpiOut(Schema):
    site = fields.String()
    month = fields.String()
    units_entered = fields.Integer()
    units_late = fields.Integer()
    people_entered = fields.Integer()
    people_late = fields.Integer()
    late_entries = fields.Integer(metadata={"description": "units and people entered more than 3 days after collected_at"})
    late_entry_rate = fields.String(metadata={"description": "late / entered, as a percentage"})
    people_unverified = fields.Integer()


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
    collected_at = Instant(allow_none=True)
    late_entry = fields.Boolean()
    people = fields.List(fields.Nested(PersonOut), metadata={"description": "phone and ID masked"})
    created_at = Instant()


# -- customer care (SPEC §8.6): contacts and the not-yet-moved-in list -------------------------

class ContactIn(Schema):
    channel = fields.String(required=True, validate=validate.OneOf(CONTACT_CHANNELS))
    note = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    at = Instant(load_default=None, allow_none=True, metadata={
        "description": "when the contact was made; default: now. Not in the future"})


class ContactOut(Schema):
    id = fields.String()
    person_id = fields.String()
    site = fields.String()
    channel = fields.String()
    note = fields.String()
    at = Instant()
    recorded_by = fields.String(metadata={"description": "the caller who recorded it (sub)"})
    recorded_at = Instant()


class NotMovedInOwner(Schema):
    id = fields.String()
    name = fields.String()
    phone = fields.String(allow_none=True, metadata={"description": "masked"})
    key_customer = fields.Boolean()
    committee_member = fields.Boolean()
    contacts = fields.List(fields.Nested(ContactOut), metadata={"description": "oldest first"})


class NotMovedInOut(Schema):
    """A unit handed over and not moved in (客户入住动态表), with its owner to call."""
    unit = fields.String()
    site = fields.String()
    handover_date = Day()
    days_since_handover = fields.Integer()
    owner = fields.Nested(NotMovedInOwner, allow_none=True)
