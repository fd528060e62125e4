"""Deadline arithmetic as the seeds count it, in the site's time zone (Asia/Shanghai)."""
from datetime import date, datetime, timedelta, timezone
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


# The 2027 arrangement is not published in this package; this one is TEST DATA, shaped like
# 2026's (nine days from New Year's Eve, two weekends worked), not the State Council's.
SPRING_2027 = [date(2027, 2, 5) + timedelta(days=n) for n in range(9)]     # Fri 5 – Sat 13
WORKED_2027 = [date(2027, 1, 31), date(2027, 2, 20)]                       # Sun, Sat


def enter_2027(version=1, holidays=None):
    return calendar.enter(2027, version, holidays or [
        {"name": "spring_festival", "first_day": SPRING_2027[0], "days": SPRING_2027}], WORKED_2027)


def test_two_working_days_before_the_2027_spring_festival_once_the_year_is_entered():
    submitted = sh(2027, 2, 4, 10, 0)                                   # Thursday before
    assert calendar.add_working_days(submitted, 2) == sh(2027, 2, 8, 10, 0)    # Mon–Fri only
    assert calendar.source(2027) == calendar.WEEKDAYS_ONLY
    enter_2027()
    assert calendar.source(2027) == calendar.ENTERED
    assert calendar.add_working_days(submitted, 2) == sh(2027, 2, 16, 10, 0)   # after the holiday
    # the Sunday worked in exchange counts: Fri 29 Jan + 1 is Sun 31 Jan
    assert calendar.add_working_days(sh(2027, 1, 29, 10, 0), 1) == sh(2027, 1, 31, 10, 0)


def test_an_older_version_of_a_year_does_not_replace_a_newer_one():
    assert enter_2027(version=2)
    assert not enter_2027(version=1, holidays=[
        {"name": "spring_festival", "first_day": date(2027, 2, 8), "days": [date(2027, 2, 8)]}])
    assert calendar.holiday_first_day("spring_festival", 2027) == date(2027, 2, 5)
    assert not calendar.is_working_day(date(2027, 2, 5))


def test_a_deadline_in_a_year_nobody_entered_is_warned_once_and_counted_in_use(caplog):
    with caplog.at_level("WARNING", logger="services.common.calendar"):
        calendar.add_working_days(sh(2028, 3, 1, 9, 0), 2)
        calendar.add_working_days(sh(2028, 3, 2, 9, 0), 2)
    assert [r.calendar_year for r in caplog.records] == [2028]
    assert 2028 in calendar.years_in_use(2026)


def test_holiday_first_days_entered_then_library_then_the_lunar_calendar():
    assert calendar.holiday_first_day("spring_festival", 2026) == date(2026, 2, 15)   # library
    assert calendar.holiday_first_day("mid_autumn", 2026) == date(2026, 9, 25)
    assert calendar.holiday_first_day("spring_festival", 2027) == date(2027, 2, 6)    # 正月初一
    assert calendar.holiday_first_day("mid_autumn", 2027) == date(2027, 9, 15)        # 八月十五
    assert calendar.holiday_first_day("national_day", 2027) == date(2027, 10, 1)
    enter_2027()
    assert calendar.holiday_first_day("spring_festival", 2027) == date(2027, 2, 5)    # entered
    # a holiday the entry leaves out: its festival day still
    assert calendar.holiday_first_day("national_day", 2027) == date(2027, 10, 1)
