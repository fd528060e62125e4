"""The contact rule of key customers (a calendar quarter) and committee members (a calendar
month), in the site's time zone, with the issue's dates (SPEC §8.6)."""
from datetime import datetime
from zoneinfo import ZoneInfo

from services.registry.domain import missed_contact_periods

SH = ZoneInfo("Asia/Shanghai")
FLAGGED = datetime(2026, 9, 20, 10, 0, tzinfo=SH)
NEW_YEARS_EVE = [datetime(2026, 12, 31, 15, 0, tzinfo=SH)]


def missed(flag, as_of, contacts=NEW_YEARS_EVE, since=FLAGGED, tz=SH):
    return [p.label for p in missed_contact_periods(flag, since, as_of, contacts, tz)]


def test_a_key_customer_contacted_on_new_years_eve_misses_2027_q1_not_2026_q4():
    assert missed("key_customer", datetime(2027, 1, 1, 0, 30, tzinfo=SH)) == []
    assert missed("key_customer", datetime(2027, 3, 31, 23, 59, tzinfo=SH)) == []
    assert missed("key_customer", datetime(2027, 4, 1, 0, 0, tzinfo=SH)) == ["2027-Q1"]


def test_a_quarter_ends_at_midnight_of_the_sites_zone():
    utc = ZoneInfo("UTC")
    # 2027-04-01 00:00 in Shanghai is 2027-03-31 16:00 UTC
    assert missed("key_customer", datetime(2027, 3, 31, 16, 0, tzinfo=utc)) == ["2027-Q1"]
    assert missed("key_customer", datetime(2027, 3, 31, 16, 0, tzinfo=utc), tz=utc) == []


def test_the_period_of_the_flag_is_not_held_against_anyone():
    assert missed("committee_member", datetime(2026, 10, 1, 8, 0, tzinfo=SH)) == []     # September
    assert missed("committee_member", datetime(2026, 11, 1, 0, 0, tzinfo=SH)) == ["2026-10"]
    at_midnight = datetime(2026, 10, 1, 0, 0, tzinfo=SH)
    assert missed("key_customer", datetime(2027, 1, 1, tzinfo=SH), [], since=at_midnight) == ["2026-Q4"]


def test_each_month_of_a_committee_member_is_judged_on_its_own():
    contacts = [datetime(2026, 11, 30, 23, 59, tzinfo=SH), *NEW_YEARS_EVE]
    assert missed("committee_member", datetime(2027, 2, 1, tzinfo=SH), contacts) == [
        "2026-10", "2027-01"]


def test_no_flag_no_periods():
    assert missed("key_customer", datetime(2030, 1, 1, tzinfo=SH), since=None) == []
