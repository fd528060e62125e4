"""Who may do what: the roles of SPEC §7 and the groups that the services' rules and the
gateway's routes name. One home for every group, so that the gateway and the owning service
check the same thing (defence in depth) and a group means the same everywhere.

Plain data, standard library only: domains import it.

The head-office rule is one rule: `hq` and `ops_admin` may do whatever a site manager may, at
every site (their tokens carry `sites: ["*"]`)."""

RESIDENT = "resident"
ROLES = (
    RESIDENT, "agent", "technician", "supervisor", "quality_supervisor",
    "manager", "hq", "legal", "ops_admin",
)
STAFF = tuple(r for r in ROLES if r != RESIDENT)

HEAD_OFFICE = ("hq", "ops_admin")
MANAGERS = ("manager", *HEAD_OFFICE)                     # a site manager's decisions
SUPERVISORS = ("supervisor", *MANAGERS)                  # operators of a site's queues
DESK = ("agent", *SUPERVISORS)                           # the front desk (前台) and up
HANDLERS = ("supervisor", "quality_supervisor", *MANAGERS)   # who handles a complaint
# Work in the field on a repair (arrive, complete) and on a renovation (patrols)
TECHNICIANS = ("technician", *SUPERVISORS)
PATROLLERS = ("agent", *TECHNICIANS)
INSPECTORS = SUPERVISORS                                 # renovation completion inspection
# Everyone at work on a site: the front desk's views (handover, callbacks, KPIs), the
# renovation list, the gate staff checking a pass.
SITE_STAFF = tuple(r for r in STAFF if r != "legal")
GATE = SITE_STAFF
# Full personal records (phone, ID number) and the arrears lists: every staff role whose work
# needs them (001 §2.4); technicians see masked records only.
RECORD_READERS = tuple(r for r in STAFF if r != "technician")
# The time-driven sweeps replayed by hand, and echo (SPEC §7).
SWEEPERS = HEAD_OFFICE
# The lawsuits after an arrears referral (SPEC §4): the legal adviser records them.
LEGAL = ("legal", *HEAD_OFFICE)
