"""Registry rules a front desk notices: property codes and what a list may show."""
import pytest
from marshmallow import ValidationError

from services.registry.domain import mask_id_number, mask_phone, unit_code_problem
from services.registry.schemas import UnitIn


def test_a_ten_digit_code_of_the_site_is_accepted():
    assert unit_code_problem("0011020304", "001") is None


@pytest.mark.parametrize("code", ["001102030", "00110203045", "00A1020304", ""])
def test_codes_that_are_not_ten_digits_are_refused(code):
    assert "10 digits" in unit_code_problem(code, "001")


def test_a_unit_code_must_start_with_its_site_code():
    assert "001" in unit_code_problem("0021020304", "001")


def test_phone_is_masked_like_138_stars_1234():
    assert mask_phone("13812341234") == "138****1234"


def test_id_number_keeps_only_both_ends():
    assert mask_id_number("110101199001011234") == "1101**********1234"


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
