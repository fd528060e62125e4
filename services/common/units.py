"""Property codes (SPEC §1): 3 project (the site) + 1 group + 2 building + 4 room. Standard
library only: domains import it."""


def site_of_unit(code):
    """The site a unit code belongs to; the one place that knows where the site sits in it."""
    return code[:3]


def building_of_unit(code):
    """Project + group + building: the residents who share a lobby (its in-app notices)."""
    return code[:6]
