"""SPEC §7's limits on money, instants, days and months, at the shared field types every schema
uses: refused with the field named, never rounded, never an overflow further on."""
import importlib
import inspect
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from marshmallow import Schema, fields

from services.common.fields import Day, Instant, Money, Month


class Sample(Schema):
    amount = Money()
    at = Instant()
    on = Day()
    month = Month()


def errors(**data):
    return Sample().validate(data)


@pytest.mark.parametrize("sent, stored", [
    ("268.50", Decimal("268.50")), ("12", Decimal("12.00")), (12, Decimal("12.00")),
    (1.5, Decimal("1.50")), ("999999999.99", Decimal("999999999.99")), ("0.01", Decimal("0.01")),
])
def test_an_amount_of_at_most_two_decimals_is_kept_exactly(sent, stored):
    assert Sample().load({"amount": sent})["amount"] == stored


def test_an_amount_is_answered_as_a_string_with_two_decimals():
    assert Sample().dump({"amount": Decimal("268.5")}) == {"amount": "268.50"}


@pytest.mark.parametrize("sent", [
    "1.005", 1.005, "1e20", 1e20, "99999999999999999999.99", "1000000000.00", 10 ** 20,
    "１２", "١٢", " 1.00", "1.00 ", "1 000", "NaN", "Infinity", float("nan"), float("inf"),
    "1E2", "+1.00", "", ".5", "1.", True, None, ["1"], {"v": 1},
])
def test_an_amount_that_is_not_plain_money_is_refused_not_rounded(sent):
    assert "amount" in errors(amount=sent)


def test_an_instant_needs_its_offset_and_a_year_of_this_business():
    assert Sample().load({"at": "2026-11-20T09:00:00+08:00"})["at"] == datetime(
        2026, 11, 20, 9, tzinfo=timezone(timedelta(hours=8)))
    for sent in ("2026-11-20T09:00:00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
                 "1899-12-31T23:59:59+00:00", "3000-01-01T00:00:00Z"):
        assert "at" in errors(at=sent), sent


def test_a_day_is_in_the_years_1900_to_2999():
    assert Sample().load({"on": "1900-01-01"})["on"] == date(1900, 1, 1)
    assert Sample().load({"on": "2999-12-31"})["on"] == date(2999, 12, 31)
    for sent in ("0001-01-01", "1899-12-31", "3000-01-01", "9999-12-31"):
        assert "on" in errors(on=sent), sent


def test_a_month_is_yyyy_mm_in_the_years_1900_to_2999():
    assert Sample().load({"month": "2026-02"})["month"] == "2026-02"
    for sent in ("0000-01", "1899-12", "3000-01", "2026-13", "2026-00", "2026-1", "２０２６-01", " 2026-01"):
        assert "month" in errors(month=sent), sent


# Decimals that are not money: a unit's floor area and a daily late-fee rate (0.0003).
NOT_MONEY = {"area_m2", "late_fee_daily_rate"}


def declared_fields():
    for service in ("billing", "notifications", "registry", "renovation", "ticketing"):
        module = importlib.import_module(f"services.{service}.schemas")
        for schema in vars(module).values():
            if inspect.isclass(schema) and issubclass(schema, Schema) and schema.__module__ == module.__name__:
                pending = list(schema._declared_fields.items())
                while pending:
                    name, field = pending.pop()
                    yield f"{schema.__name__}.{name}", name, field
                    if isinstance(field, fields.List):
                        pending.append((name, field.inner))
                    elif isinstance(field, fields.Dict) and field.value_field is not None:
                        pending.append((name, field.value_field))


def test_every_schema_takes_its_money_instants_and_days_through_the_shared_fields():
    stray = [where for where, name, field in declared_fields()
             if isinstance(field, fields.DateTime) and not isinstance(field, Instant)
             or isinstance(field, fields.Date) and not isinstance(field, Day)
             or isinstance(field, fields.Decimal) and not isinstance(field, Money) and name not in NOT_MONEY]
    assert stray == []
