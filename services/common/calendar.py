"""Business-time arithmetic: calendar days and mainland-China statutory working days
(holidays and adjusted working weekends, 调休), evaluated in the site's time zone.

A limit runs from the instant that starts it: received Monday 09:00 + 2 days is Wednesday
09:00; submitted Wednesday 10:00 + 2 working days is 10:00 on the second working day after.

Where a year is known: a year head office entered (`PUT /api/v1/calendar/{year}`, kept by
notifications and applied in every process with `enter`, see `services/common/calendar_sync.py`)
wins, then the `chinesecalendar` package's years; any other year counts Monday to Friday, says so
in `source(year)` and logs a warning the first time a deadline is computed in it.
"""
import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

import chinese_calendar
from chinese_calendar.constants import Holiday
from chinese_calendar.constants import holidays as LIBRARY_HOLIDAYS
from chinese_calendar.constants import workdays as LIBRARY_WORKDAYS
from lunar_python import Lunar

log = logging.getLogger(__name__)

DEFAULT_TZ = "Asia/Shanghai"

# The statutory holidays by the names the calendar API takes, and the package's name of each.
HOLIDAYS = {
    "new_years_day": Holiday.new_years_day, "spring_festival": Holiday.spring_festival,
    "qingming": Holiday.tomb_sweeping_day, "labour_day": Holiday.labour_day,
    "dragon_boat": Holiday.dragon_boat_festival, "mid_autumn": Holiday.mid_autumn_festival,
    "national_day": Holiday.national_day,
}
LIBRARY = "library"
ENTERED = "entered"
WEEKDAYS_ONLY = "weekdays_only"


@dataclass(frozen=True)
class EnteredYear:
    """A year as head office entered it: `holidays` {name: (first_day, days)}, `workdays` the
    adjusted working weekends (调休); `version` grows with every entry of the year."""
    year: int
    version: int
    holidays: dict
    workdays: frozenset

    @property
    def days_off(self):
        return frozenset(day for _, days in self.holidays.values() for day in days)


_entered = {}           # year → EnteredYear, this process's copy
_unknown_warned = set()  # years a deadline was computed in without a calendar, warned once
_years_used = set()     # years deadlines were computed in, for the calendar gauge


def enter(year, version, holidays, workdays):
    """Apply an entered year (`holidays` [{name, first_day, days}]) unless this process already
    has the same or a newer version of it; True if applied. Deadlines computed from now on use
    it; those already computed stay as they are."""
    kept = _entered.get(year)
    if kept is not None and kept.version >= version:
        return False
    _entered[year] = EnteredYear(
        year, version,
        {h["name"]: (h["first_day"], tuple(sorted(h["days"]))) for h in holidays},
        frozenset(workdays))
    is_working_day.cache_clear()
    return True


def forget_entered():
    """This process back to the library and weekdays only (a fresh process; tests)."""
    _entered.clear()
    _unknown_warned.clear()
    _years_used.clear()
    is_working_day.cache_clear()


def entered(year):
    return _entered.get(year)


@lru_cache(maxsize=None)
def library_knows(year):
    try:
        chinese_calendar.is_workday(date(year, 6, 1))
    except NotImplementedError:
        return False
    return True


def source(year):
    """Where the working days of `year` come from: entered, library or weekdays_only."""
    if year in _entered:
        return ENTERED
    return LIBRARY if library_knows(year) else WEEKDAYS_ONLY


def years_in_use(this_year):
    """This year, the next (deadlines run into it) and every year a deadline was computed in."""
    return sorted({this_year, this_year + 1, *_years_used})


def library_year(year):
    """The package's arrangement of a year it knows, in the API's shape: holidays [{name,
    first_day, days}] (first_day the earliest day of the name in the year) and workdays."""
    by_name = {}
    for day, value in LIBRARY_HOLIDAYS.items():
        if day.year == year:
            by_name.setdefault(Holiday(value), []).append(day)
    holidays = [{"name": name, "first_day": min(by_name[h]), "days": sorted(by_name[h])}
                for name, h in HOLIDAYS.items() if h in by_name]
    workdays = sorted(day for day in LIBRARY_WORKDAYS if day.year == year)
    return {"holidays": holidays, "workdays": workdays}


def holiday_first_day(name, year):
    """The first day of holiday `name` in `year`: as entered, else from the package, else the
    festival's own day (from the lunar calendar for the lunar ones)."""
    kept = _entered.get(year)
    if kept is not None and name in kept.holidays:
        return kept.holidays[name][0]
    if kept is None and library_knows(year):
        days = [h["first_day"] for h in library_year(year)["holidays"] if h["name"] == name]
        if days:
            return days[0]
    return festival_day(name, year)


# The day each festival falls on (month, day) in the calendar it is kept in.
_SOLAR_FESTIVALS = {"new_years_day": (1, 1), "labour_day": (5, 1), "national_day": (10, 1)}
_LUNAR_FESTIVALS = {"spring_festival": (1, 1), "dragon_boat": (5, 5), "mid_autumn": (8, 15)}


def festival_day(name, year):
    """The festival's own day in `year` (Spring Festival 2027: 2027-02-06, 正月初一); None for
    Qingming, whose day is a solar term, not a date of either calendar."""
    if name in _SOLAR_FESTIVALS:
        return date(year, *_SOLAR_FESTIVALS[name])
    if name in _LUNAR_FESTIVALS:
        solar = Lunar.fromYmd(year, *_LUNAR_FESTIVALS[name]).getSolar()
        return date(solar.getYear(), solar.getMonth(), solar.getDay())
    return None


@lru_cache(maxsize=None)
def zone(name):
    return ZoneInfo(name or DEFAULT_TZ)


@lru_cache(maxsize=4096)
def is_working_day(day: date) -> bool:
    """The year as entered, else the statutory calendar where the package knows it, else Monday
    to Friday, so deadlines never stop."""
    kept = _entered.get(day.year)
    if kept is not None:
        return day in kept.workdays or (day.weekday() < 5 and day not in kept.days_off)
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
    for year in range(local.date().year, day.year + 1):
        _note_use(year)
    return _same_wall_time(local, day, tz)


def _note_use(year):
    _years_used.add(year)
    if source(year) == WEEKDAYS_ONLY and year not in _unknown_warned:
        _unknown_warned.add(year)
        log.warning("working days of %s are counted Monday to Friday: no calendar is entered or "
                    "known for the year (PUT /api/v1/calendar/%s)", year, year,
                    extra={"calendar_year": year})


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
