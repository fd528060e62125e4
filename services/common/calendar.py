"""Business-time arithmetic: calendar days and mainland-China statutory working days
(holidays and adjusted working weekends, 调休), evaluated in the site's time zone.

A limit runs from the instant that starts it: received Monday 09:00 + 2 days is Wednesday
09:00; submitted Wednesday 10:00 + 2 working days is 10:00 on the second working day after.
"""
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

import chinese_calendar

DEFAULT_TZ = "Asia/Shanghai"


@lru_cache(maxsize=None)
def zone(name):
    return ZoneInfo(name or DEFAULT_TZ)


@lru_cache(maxsize=4096)
def is_working_day(day: date) -> bool:
    """The statutory calendar where it is published; past its last known year (the package
    covers up to the year it was released for) Monday to Friday, so deadlines never stop."""
    try:
        return chinese_calendar.is_workday(day)
    except NotImplementedError:
        return day.weekday() < 5


def add_days(start: datetime, days: int, tz=DEFAULT_TZ) -> datetime:
    """`days` calendar days later at the same local wall-clock time in `tz`."""
    local = start.astimezone(zone(tz))
    return _same_wall_time(local, local.date() + timedelta(days=days), tz)


def add_hours(start: datetime, hours: float) -> datetime:
    return start + timedelta(hours=hours)


def add_minutes(start: datetime, minutes: float) -> datetime:
    return start + timedelta(minutes=minutes)


def add_working_days(start: datetime, days: int, tz=DEFAULT_TZ) -> datetime:
    """The same local time on the `days`-th working day after the start's local date."""
    local = start.astimezone(zone(tz))
    day = local.date()
    remaining = days
    while remaining > 0:
        day += timedelta(days=1)
        if is_working_day(day):
            remaining -= 1
    return _same_wall_time(local, day, tz)


def add_months(start: datetime, months: int, tz=DEFAULT_TZ) -> datetime:
    """Same day of month `months` later (clamped to the month's end), same local time."""
    local = start.astimezone(zone(tz))
    return _same_wall_time(local, shift_months(local.date(), months), tz)


def shift_months(day: date, months: int) -> date:
    """The same day of month `months` later (earlier when negative), clamped to the month's
    end: 2027-03-31 a month back is 2027-02-28."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    last_day = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
    return date(year, month, min(day.day, last_day))


def end_of_local_day(start: datetime, tz=DEFAULT_TZ) -> datetime:
    """23:59:59 of the start's local day ("the same day")."""
    local = start.astimezone(zone(tz))
    return datetime.combine(local.date(), time(23, 59, 59), zone(tz)).astimezone(timezone.utc)


def _same_wall_time(local: datetime, day: date, tz) -> datetime:
    return datetime.combine(day, local.time(), zone(tz)).astimezone(timezone.utc)
