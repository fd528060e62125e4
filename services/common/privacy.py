"""Personal data as staff without a need for the full record see it (SPEC §1): masked phone
and ID numbers, shown the same way by every service. Standard library only: domains import it."""


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
