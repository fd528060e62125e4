"""Deadline arithmetic as the seeds count it, in the site's time zone (Asia/Shanghai)."""
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from services.common import calendar

SH = ZoneInfo("Asia/Shanghai")


def sh(*args):
    return datetime(*args, tzinfo=SH)


def test_two_calendar_days_from_monday_morning_is_wednesday_same_time():
    received = sh(2026, 11, 23, 9, 0)          # Monday
    assert calendar.add_days(received, 2) == sh(2026, 11, 25, 9, 0)


def test_an_a_complaint_received_monday_0900_is_due_0900_on_the_eleventh_day():
    assert calendar.add_days(sh(2026, 11, 23, 9, 0), 10) == sh(2026, 12, 3, 9, 0)


def test_two_working_days_from_wednesday_1000_skip_the_weekend():
    assert calendar.add_working_days(sh(2026, 11, 25, 10, 0), 2) == sh(2026, 11, 27, 10, 0)
    assert calendar.add_working_days(sh(2026, 11, 26, 10, 0), 2) == sh(2026, 11, 30, 10, 0)


def test_working_days_skip_the_national_day_holiday_and_count_the_adjusted_saturday():
    # 2026: 1–7 October off; Saturday 10 October is an adjusted working day (调休).
    eve = sh(2026, 9, 30, 16, 0)
    assert calendar.add_working_days(eve, 1) == sh(2026, 10, 8, 16, 0)
    assert calendar.add_working_days(eve, 3) == sh(2026, 10, 10, 16, 0)


def test_past_the_known_calendar_weekdays_still_count():
    # The statutory calendar for 2027 is not published in the package yet: Mon–Fri then.
    assert calendar.add_working_days(sh(2027, 3, 5, 9, 0), 1) == sh(2027, 3, 8, 9, 0)


def test_results_are_utc_instants():
    due = calendar.add_days(sh(2026, 11, 23, 9, 0), 1)
    assert due.tzinfo == timezone.utc and due.hour == 1


def test_one_month_later_clamps_to_the_month_end():
    assert calendar.add_months(sh(2026, 1, 31, 12, 0), 1) == sh(2026, 2, 28, 12, 0)
