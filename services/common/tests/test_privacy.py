"""Masked personal data, as registry's lists and renovation's passes show it."""
from services.common.privacy import mask_id_number, mask_phone


def test_phone_is_masked_like_138_stars_1234():
    assert mask_phone("13812341234") == "138****1234"


def test_id_number_keeps_only_both_ends():
    assert mask_id_number("110101199001011234") == "1101**********1234"
