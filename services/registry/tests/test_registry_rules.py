"""Registry rules a front desk notices: property codes, what a list may show, the warranty
(保修期) and the move-in (入伙)."""
from datetime import date

import pytest
from marshmallow import ValidationError

from services.registry.domain import move_in_date_problem, unit_code_problem, warranty_end
from services.registry.schemas import MoveInIn, UnitIn


def test_a_ten_digit_code_of_the_site_is_accepted():
    assert unit_code_problem("0011020304", "001") is None


@pytest.mark.parametrize("code", ["001102030", "00110203045", "00A1020304", ""])
def test_codes_that_are_not_ten_digits_are_refused(code):
    assert "10 digits" in unit_code_problem(code, "001")


def test_a_unit_code_must_start_with_its_site_code():
    assert "001" in unit_code_problem("0021020304", "001")


def test_unit_form_names_every_bad_field():
    with pytest.raises(ValidationError) as bad:
        UnitIn().load({"code": "12", "usage": "castle", "area_m2": "-3",
                       "owner": {"name": "张三", "phone": "12"}})
    assert set(bad.value.messages) == {"code", "usage", "area_m2", "owner"}


def test_area_is_kept_as_an_exact_decimal():
    unit = UnitIn().load({"code": "0011020304", "usage": "residential", "area_m2": "88.50",
                          "owner": {"name": "张三", "phone": "13812341234"}})
    assert str(unit["area_m2"]) == "88.50"


def test_a_unit_filed_under_another_site_is_refused_on_its_code():
    with pytest.raises(ValidationError) as bad:
        UnitIn().load({"code": "0021020304", "site": "001", "usage": "residential",
                       "area_m2": "88.50", "owner": {"name": "张三", "phone": "13812341234"}})
    assert list(bad.value.messages) == ["code"]


def test_the_warranty_runs_two_years_from_the_handover():
    assert warranty_end(date(2025, 6, 30)) == date(2027, 6, 30)


def test_a_stated_warranty_wins_over_the_two_years():
    assert warranty_end(date(2025, 6, 30), date(2030, 6, 30)) == date(2030, 6, 30)


def test_no_handover_and_no_warranty_stated_is_no_warranty_end():
    assert warranty_end(None) is None


def test_a_handover_on_29_february_is_under_warranty_until_28_february():
    assert warranty_end(date(2024, 2, 29)) == date(2026, 2, 28)


def test_a_warranty_ending_before_the_handover_is_refused_on_its_field():
    with pytest.raises(ValidationError) as bad:
        UnitIn().load({"code": "0011020304", "usage": "residential", "area_m2": "88.50",
                       "handover_date": "2025-06-30", "warranty_until": "2025-06-29",
                       "owner": {"name": "张三", "phone": "13812341234"}})
    assert list(bad.value.messages) == ["warranty_until"]


def test_a_move_in_is_recorded_up_to_today_at_the_site():
    today = date(2026, 11, 24)
    assert move_in_date_problem(today, today) is None
    assert move_in_date_problem(date(2026, 11, 1), today) is None
    assert "2026-11-24" in move_in_date_problem(date(2026, 11, 25), today)


@pytest.mark.parametrize("payload, field", [
    ({"moved_in_on": "2026-11-24"}, "assistant"),
    ({"assistant": {"name": "王芳", "phone": "12"}}, "assistant"),
    ({"assistant": {"name": "", "phone": "13900001111"}}, "assistant"),
    ({"moved_in_on": "yesterday", "assistant": {"name": "王芳", "phone": "13900001111"}},
     "moved_in_on"),
])
def test_a_move_in_form_names_the_bad_field(payload, field):
    with pytest.raises(ValidationError) as bad:
        MoveInIn().load(payload)
    assert list(bad.value.messages) == [field]
