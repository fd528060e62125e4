"""The field types of SPEC §7's hostile-input limits, shared by every service's schemas so that
each limit is enforced in one place: money, instants, days and months. Schemas only (marshmallow):
no domain module imports this."""
import re
from decimal import Decimal

from marshmallow import fields

MONEY_MAX = Decimal("999999999.99")
# ASCII digits only (Decimal() would take "１２" and " 1.00"), no exponent, at most nine digits
# before the point and two after it.
_MONEY = re.compile(r"-?[0-9]{1,9}(\.[0-9]{1,2})?")
FIRST_YEAR, LAST_YEAR = 1900, 2999
_MONTH = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")


class Money(fields.Decimal):
    """An amount: a string (or a JSON number) such as "268.50", answered as a string with two
    decimals. Refused rather than rounded, so that what is stored is what was sent."""

    default_error_messages = {
        "money": f"an amount in ASCII digits with at most two decimals, at most {MONEY_MAX}, "
                 'without spaces or exponent, e.g. "268.50"'}

    def __init__(self, *, metadata=None, **kwargs):
        super().__init__(places=2, as_string=True, metadata={
            "type": "string", "format": "decimal", "example": "268.50", **(metadata or {})}, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        text = repr(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
        if not isinstance(text, str) or not _MONEY.fullmatch(text):
            raise self.make_error("money")
        return super()._deserialize(text, attr, data, **kwargs)


class _WithinYears:
    """Years outside FIRST_YEAR..LAST_YEAR are refused: none is a real date of this business, and
    near the ends of datetime's range a conversion to UTC or a site's zone overflows."""

    default_error_messages = {"years": f"the year must be from {FIRST_YEAR} to {LAST_YEAR}"}

    def _deserialize(self, value, attr, data, **kwargs):
        parsed = super()._deserialize(value, attr, data, **kwargs)
        if not FIRST_YEAR <= parsed.year <= LAST_YEAR:
            raise self.make_error("years")
        return parsed


class Instant(_WithinYears, fields.AwareDateTime):
    """An ISO 8601 instant with its offset (one without is refused)."""


class Day(_WithinYears, fields.Date):
    """An ISO 8601 calendar date."""


class Month(fields.String):
    """A month as YYYY-MM, kept as the string."""

    default_error_messages = {"month": f"a month as YYYY-MM, from {FIRST_YEAR} to {LAST_YEAR}"}

    def __init__(self, *, metadata=None, **kwargs):
        super().__init__(metadata={"pattern": _MONTH.pattern, **(metadata or {})}, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        match = _MONTH.fullmatch(text)
        if not match or not FIRST_YEAR <= int(match[1]) <= LAST_YEAR:
            raise self.make_error("month")
        return text
