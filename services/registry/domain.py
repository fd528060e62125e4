"""Registry rules (SPEC §1): property codes, who may read personal data in full (the masking
itself is services.common.privacy), the warranty and the move-in (000)."""
import re
from datetime import date

from services.common.units import site_of_unit

USAGES = ("residential", "commercial", "office", "parking")
RELATIONS = ("owner", "tenant", "member")


def unit_code_problem(code, site_code):
    """Why a 10-digit property code (3 project + 1 group + 2 building + 4 room) is not valid
    for the site, or None."""
    if not re.fullmatch(r"\d{10}", code or ""):
        return "unit code is 10 digits: 3 project + 1 group + 2 building + 4 room"
    if site_code is not None and site_of_unit(code) != site_code:
        return f"unit code must start with its site code {site_code}"
    return None


def building_of_unit(code):
    """Project + group + building: the residents who share a lobby."""
    return code[:6]


WARRANTY_YEARS = 2


def warranty_end(handover_date, stated=None):
    """The last day of the unit's warranty (保修期): the date stated, or else handover +
    WARRANTY_YEARS, the minimum warranty of decoration, plumbing and wiring (装修工程、给排水管道、
    电气管线) under 《建设工程质量管理条例》 §40. A handover on 29 February ends on 28 February.
    None when neither is known."""
    if stated is not None or handover_date is None:
        return stated
    year = handover_date.year + WARRANTY_YEARS
    try:
        return handover_date.replace(year=year)
    except ValueError:
        return date(year, 2, 28)


def move_in_date_problem(moved_in_on, site_today):
    """Why a move-in (入伙) cannot be recorded on that day, or None. It is recorded once it has
    happened: the welcome SMS goes out as soon as it is (000)."""
    if moved_in_on > site_today:
        return f"a move-in is recorded once it has happened: not after {site_today.isoformat()}"
    return None
