"""What a gateway route is scoped by, declared on `@route` and checked before any RPC (the
owning service checks again):

- a site the caller names (in the path, the body, or a list's filters), or a unit code (its
  site by `site_of_unit`), outside their token's `sites`: 403; a unit is 404 to a resident;
- an object loaded by id: checked by the owning service as it loads it
  (`Identity.require_visible`), so the gateway makes one call;
- a person: a resident may name only themselves (404 otherwise); staff are checked by registry;
- any caller, the service narrows what they see; or public.
"""
import re
from dataclasses import dataclass

from services.common.errors import Forbidden, NotFound
from services.common.units import site_of_unit

_UNIT_CODE = re.compile(r"\d{10}")


def require_unit(identity, code):
    """Units are 404 to a resident but their own (the units registry named when the gateway
    looked the resident up), 403 to staff outside their sites. A code that is no unit code is
    the service's to refuse (422, or 404)."""
    if not _UNIT_CODE.fullmatch(code):
        return
    if identity.is_resident:
        if not (identity.owns_unit(code) and identity.can_see_site(site_of_unit(code))):
            raise NotFound(f"no unit {code}", {"unit": code})
        return
    if identity.can_see_site(site_of_unit(code)):
        return
    raise Forbidden(f"{identity.sub} has no access to site {site_of_unit(code)}",
                    {"site": site_of_unit(code)})


def require_person(identity, person_id):
    if identity.is_resident and identity.person_id != person_id:
        raise NotFound(f"no person {person_id}")


@dataclass(frozen=True)
class Scope:
    kind: str                       # for the OpenAPI document and the route-table test
    source: str | None = None       # where the scoping value is: path, body or query
    field: str | None = None
    authenticated: bool = True

    def check(self, identity, call, path_values):
        """Raise unless the caller may reach this route's object; by default the owning
        service narrows (an object by id, or what a list shows)."""
        values = {"path": path_values, "body": call.payload, "query": call.query}.get(self.source)
        if self.kind == "site":
            identity.require_site(values[self.field])
        elif self.kind == "unit":
            require_unit(identity, values[self.field])
        elif self.kind == "person":
            require_person(identity, values[self.field])
        elif self.kind == "filters":
            if call.query.get("site") is not None:
                identity.require_site(call.query["site"])
            if call.query.get("unit") is not None:
                require_unit(identity, call.query["unit"])

    @property
    def description(self):
        return {
            "site": f"the site in the {self.source} ({self.field})",
            "unit": f"the site of the unit in the {self.source} ({self.field})",
            "person": f"a resident only for themselves ({self.field})",
            "filters": "the site and unit filtered on; the list shows only the caller's sites",
            "object": "the object's site, and a resident's own only (checked by the owning service)",
            "any": "any caller; the service shows only what they may see",
            "public": "public",
        }[self.kind]


def site_in(source, field="code"):
    return Scope("site", source, field)


def unit_in(source, field="code"):
    return Scope("unit", source, field)


OWN_PERSON = Scope("person", "path", "person_id")
FILTERS = Scope("filters", "query")
OBJECT = Scope("object")
ANY_CALLER = Scope("any")
PUBLIC = Scope("public", authenticated=False)
