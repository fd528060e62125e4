"""Registry rules (SPEC §1): property codes, masking of personal data, who may read it."""
import re

USAGES = ("residential", "commercial", "office", "parking")
RELATIONS = ("owner", "tenant", "member")

# Roles that need a resident's full phone and ID number to do their job; every such read is logged.
FULL_RECORD_ROLES = ("agent", "supervisor", "quality_supervisor", "manager", "hq", "legal", "ops_admin")


def unit_code_problem(code, site_code):
    """Why a 10-digit property code (3 project + 1 group + 2 building + 4 room) is not valid
    for the site, or None."""
    if not re.fullmatch(r"\d{10}", code or ""):
        return "unit code is 10 digits: 3 project + 1 group + 2 building + 4 room"
    if site_code is not None and code[:3] != site_code:
        return f"unit code must start with its site code {site_code}"
    return None


def site_of_unit(code):
    return code[:3]


def building_of_unit(code):
    """Project + group + building: the residents who share a lobby."""
    return code[:6]


def mask_phone(phone):
    """138****1234: enough to recognise, not enough to dial."""
    if not phone:
        return phone
    digits = phone.strip()
    if len(digits) < 7:
        return "*" * len(digits)
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


def mask_id_number(id_number):
    if not id_number:
        return id_number
    if len(id_number) <= 8:
        return "*" * len(id_number)
    return id_number[:4] + "*" * (len(id_number) - 8) + id_number[-4:]
