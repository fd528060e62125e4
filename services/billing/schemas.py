"""What billing accepts and answers; the gateway validates HTTP bodies with the same schemas.
Money travels as a string with two decimals."""
from decimal import Decimal

from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

from services.common.contracts import SITE_CODE, UNIT_CODE
from services.common.fields import Day, Money, Month
from services.billing import domain

NON_NEGATIVE = validate.Range(min=Decimal("0"), error="not negative")
POSITIVE = validate.Range(min=Decimal("0.01"), error="at least 0.01")
PAYMENT_METHODS = ("cash", "card", "bank_transfer", "wechat", "alipay", "cheque")


class FeeScheduleIn(Schema):
    site = fields.String(required=True, validate=SITE_CODE)
    management_per_m2 = fields.Dict(
        keys=fields.String(validate=validate.OneOf(domain.USAGES)),
        values=Money(validate=NON_NEGATIVE), load_default=dict,
        metadata={"description": "CNY per m² per month by usage, e.g. {\"residential\": \"2.50\"}"})
    parking_per_month = Money(load_default=Decimal("0.00"), validate=NON_NEGATIVE)
    renovation_management = Money(load_default=Decimal("0.00"), validate=NON_NEGATIVE)
    renovation_deposit = Money(load_default=Decimal("0.00"), validate=NON_NEGATIVE)
    debris_removal = Money(load_default=Decimal("0.00"), validate=NON_NEGATIVE)
    repair_call_out = Money(load_default=Decimal("0.00"), validate=NON_NEGATIVE)
    late_fee_daily_rate = fields.Decimal(
        as_string=True, load_default=domain.DEFAULT_LATE_FEE_DAILY_RATE,
        metadata={"type": "string", "format": "decimal", "description": "0.0003 = 0.03 % a day"},
        validate=validate.Range(min=Decimal("0"), max=Decimal("0.01"), error="between 0 and 0.01"))
    due_day = fields.Integer(load_default=domain.DEFAULT_DUE_DAY, validate=validate.Range(1, 28))


class BillingRunIn(Schema):
    site = fields.String(required=True, validate=SITE_CODE)
    period = Month(required=True)


class InvoiceItemIn(Schema):
    fee = fields.String(required=True, validate=validate.OneOf(domain.FEES))
    amount = Money(required=True, validate=POSITIVE)
    description = fields.String(load_default="", validate=validate.Length(max=200))


class InvoiceIn(Schema):
    unit = fields.String(required=True, validate=UNIT_CODE)
    period = Month(load_default=None, allow_none=True)
    due_date = Day(required=True)
    items = fields.List(fields.Nested(InvoiceItemIn), required=True,
                        validate=validate.Length(min=1, error="at least one item"))


class PaymentIn(Schema):
    unit = fields.String(required=True, validate=UNIT_CODE)
    amount = Money(required=True, validate=POSITIVE)
    method = fields.String(required=True, validate=validate.OneOf(PAYMENT_METHODS))
    reference = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=80))


class AccountQuery(Schema):
    as_of = Day(load_default=None, metadata={"description": "default: today"})


class ArrearsFilters(Schema):
    site = fields.String(load_default=None, validate=SITE_CODE)
    stage = fields.String(load_default=None, validate=validate.OneOf(domain.STAGES[1:]))
    as_of = Day(load_default=None)


class CollectionQuery(Schema):
    site = fields.String(required=True, validate=SITE_CODE)
    period = Month(required=True)

    @validates("period")
    def _known_period(self, value, **_):
        try:
            domain.parse_period(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc


class WaiverIn(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=200),
                           metadata={"description": "why it is waived (减免), e.g. 业主困难申请"})


class LawsuitFileIn(Schema):
    filed_on = Day(required=True)
    court = fields.String(required=True, validate=validate.Length(min=1, max=200))
    case_number = fields.String(required=True, validate=validate.Length(min=1, max=80))


class LawsuitJudgeIn(Schema):
    won = fields.Boolean(required=True)
    judged_on = Day(required=True)
    amount_awarded = Money(load_default=None, allow_none=True, validate=NON_NEGATIVE)
    note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=1000))

    @validates_schema
    def _won_names_the_award(self, data, **_):
        if data.get("won") and data.get("amount_awarded") is None:
            raise ValidationError("required for a won judgement", "amount_awarded")


class LawsuitPreserveIn(Schema):
    applied_on = Day(required=True)
    note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=1000))


class LawsuitCloseIn(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=1000))


LAWSUIT_ACTIONS = {"file": LawsuitFileIn, "judge": LawsuitJudgeIn, "preserve": LawsuitPreserveIn,
                   "close": LawsuitCloseIn}


class LawsuitFilters(Schema):
    site = fields.String(load_default=None, validate=SITE_CODE)
    status = fields.String(load_default=None, validate=validate.OneOf(domain.LAWSUIT_STATUSES))
    unit = fields.String(load_default=None, validate=UNIT_CODE)


class LawsuitOut(Schema):
    id = fields.String()
    unit = fields.String()
    site = fields.String()
    status = fields.String()
    since = Day(metadata={"description": "the arrears episode it belongs to"})
    referred_on = Day()
    amount_referred = fields.String()
    filing = fields.Dict(allow_none=True)
    judgement = fields.Dict(allow_none=True)
    preservation = fields.Dict(allow_none=True)
    closing = fields.Dict(allow_none=True)
    deadlines = fields.Dict()
    deadlines_met = fields.Dict()
    breaches = fields.List(fields.Dict())
    history = fields.List(fields.Dict())
    allowed_actions = fields.List(fields.String(), dump_only=True)
