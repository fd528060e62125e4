"""Per-object scope, checked at the gateway before a call (and again by the owning service);
a site named outright is checked with `Identity.require_site`.

- A site the caller names (path, body, query, or the first 3 digits of a unit code) outside
  their token's `sites`: 403.
- An object fetched by id: staff of another site get 403, as the services answer; a resident
  gets 404 for anything that is not theirs, so that a resident learns nothing about others.
"""
import re

from services.common.errors import Forbidden, NotFound
from services.registry.domain import site_of_unit

_UNIT_CODE = re.compile(r"\d{10}")


def require_unit(identity, code):
    """Units are 404 to a resident outside their sites, 403 to staff. Whether the unit is the
    resident's own is known only to registry, which answers 404 otherwise."""
    if not _UNIT_CODE.fullmatch(code) or identity.can_see_site(site_of_unit(code)):
        return
    if identity.is_resident:
        raise NotFound(f"no unit {code}", {"unit": code})
    raise Forbidden(f"{identity.sub} has no access to site {site_of_unit(code)}",
                    {"site": site_of_unit(code)})


def require_person(identity, person_id):
    """A resident reads only their own record; staff are checked by registry (site, role)."""
    if identity.is_resident and identity.person_id != person_id:
        raise NotFound(f"no person {person_id}")


def require_ticket(identity, ticket):
    if identity.is_resident and (ticket.get("reporter") or {}).get("person_id") != identity.person_id:
        raise NotFound(f"no ticket {ticket['id']}", {"ticket_id": ticket["id"]})
    if not identity.can_see_site(ticket["site"]):
        raise Forbidden(f"ticket {ticket['id']} belongs to another site", {"site": ticket["site"]})
