"""Ticketing schema. The domain's Ticket is mapped imperatively onto `tickets` joined with
`ticket_sweeps`, so the domain stays plain Python; deadlines and history are JSON columns, with
the two instants the views filter on (`next_due_at`, `callback_due_at`) as indexed columns.

The sweep's own clock (`sweep_due_at`, indexed; `upgrade_at`, read by the sweep PostgreSQL does
in SQL; SQLite's claim) is a narrow row of its own in `ticket_sweeps`, and a ticket's breaches
and warnings are the rows of the `breaches` and `warnings` tables, read with the ticket: so
the sweep writes those narrow rows and never rewrites the wide ticket row.

`units` is ticketing's own copy of registry's units and their owners (fed by
`registry.unit_changed`, SPEC §6), so that opening a ticket does not ask registry every time."""
import json
import uuid

from datetime import datetime, timezone

from sqlalchemy import (
    JSON, Boolean, Column, Index, Integer, String, Table, Text, bindparam, case, cast,
    column, event, func, insert, literal, or_, select, text, type_coerce, update,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import column_property
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator

from sqlalchemy.dialects.postgresql import ARRAY, insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from services.common.clock import as_utc
from services.common.db import (
    UTCDateTime, declarative_base, insert_once, insert_rows, locking, row_of,
)
from services.ticketing.domain import (
    DROPPED_STATUSES, ESCALATION, OPEN_STATUSES, SWEPT_LIMITS, SlaPolicy, Ticket, breach_entry,
    warning_entry,
)

Base = declarative_base()

tickets = Table(
    "tickets", Base.metadata,
    Column("id", String(24), primary_key=True),
    Column("code", String(32), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("site", String(3), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("unit", String(10)),
    Column("channel", String(16), nullable=False),
    Column("description", Text, nullable=False),
    Column("reporter", JSON),
    Column("priority", String(8), nullable=False),
    Column("scope", String(16), nullable=False),
    Column("important", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("first_contact_owner", String(100), nullable=False),
    Column("assignee", String(100)),
    Column("appointment", JSON),
    Column("reschedules", Integer, nullable=False),
    Column("missed_appointments", Integer, nullable=False),
    Column("escalated", Boolean, nullable=False),
    Column("late_entry", Boolean, nullable=False),
    Column("policy", JSON, nullable=False),
    Column("deadlines", JSON, nullable=False),
    Column("deadlines_met", JSON, nullable=False),
    Column("history", JSON, nullable=False),
    Column("callback", JSON),
    Column("second_callback", JSON),
    Column("result", JSON),
    Column("fee", String(16)),
    Column("received_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("completed_at", UTCDateTime),
    Column("closed_at", UTCDateTime),
    Column("next_due_at", UTCDateTime),
    Column("callback_due_at", UTCDateTime),
    Column("severity", String(1)),
    Column("category", String(2)),
    Column("complainants", Integer),
    Column("requested_deadline", UTCDateTime),
    Column("valid", Boolean),
    Column("compensation", String(16)),
    Column("extension", JSON),
    Column("details", JSON),
    Column("reopened", Integer, nullable=False, server_default="0"),
    Column("rework", Integer, nullable=False, server_default="0"),
    Column("resolved_at", UTCDateTime),
    Index("ix_tickets_site_status", "site", "status"),
    Index("ix_tickets_site_received_at", "site", "received_at"),
    Index("ix_tickets_next_due_at", "next_due_at"),
    Index("ix_tickets_callback_due_at", "callback_due_at"),
)

# The sweep's own clock, one narrow row per ticket: what the sweep rewrites for each ticket it
# sweeps (the wide `tickets` row, with its six indexes, it only locks).
sweeps = Table(
    "ticket_sweeps", Base.metadata,
    # the ticket's id (no foreign key: SQLite's migrations rebuild `tickets`, which one would
    # forbid; the mapping writes both rows of a ticket together)
    Column("ticket_id", String(24), primary_key=True),
    # the next instant the sweep has work here (a deadline not yet reported as breached, or the
    # 30-day upgrade); None once there is nothing left to find
    Column("sweep_due_at", UTCDateTime),
    # when a valid B/C complaint still open is upgraded to A (None: never), kept by the domain
    # so that the PostgreSQL sweep reads it rather than computing it with the calendar
    Column("upgrade_at", UTCDateTime),
    Column("sweep_claim", String(32)),          # SQLite's claim (PostgreSQL locks rows)
    Column("sweep_claimed_at", UTCDateTime),
    Index("ix_ticket_sweeps_sweep_due_at", "sweep_due_at"),
)

serials = Table(
    "serials", Base.metadata,
    Column("site", String(3), primary_key=True),
    Column("series", String(8), primary_key=True),
    Column("last", Integer, nullable=False),
)

# One row per detected breach: the unique key is what makes the sweep report each deadline
# once, however many replicas sweep at the same time (an extended deadline is a new due_at).
breaches = Table(
    "breaches", Base.metadata,
    Column("ticket_id", String(24), primary_key=True),
    Column("deadline", String(24), primary_key=True),
    Column("due_at", UTCDateTime, primary_key=True),
    Column("detected_at", UTCDateTime, nullable=False),
)

# One row per warning before a deadline (超时预警), unique like a breach: each warned once.
warnings = Table(
    "warnings", Base.metadata,
    Column("ticket_id", String(24), primary_key=True),
    Column("deadline", String(24), primary_key=True),
    Column("due_at", UTCDateTime, primary_key=True),
    Column("warned_at", UTCDateTime, nullable=False),
)

# Each site's on-call roster (SPEC §2.2): who an urgent repair received in [from, until) pages.
on_call = Table(
    "on_call", Base.metadata,
    Column("id", String(24), primary_key=True),
    Column("site", String(3), nullable=False),
    Column("technician", String(100), nullable=False),
    Column("phone", String(20), nullable=False),
    Column("from", UTCDateTime, nullable=False),
    Column("until", UTCDateTime, nullable=False),
    Column("set_by", String(100), nullable=False),
    Column("set_at", UTCDateTime, nullable=False),
    Index("ix_on_call_site_until", "site", "until"),
)

# Each site's SLA policy (only the limits it tightened; SPEC defaults for the rest).
sla_policies = Table(
    "sla_policies", Base.metadata,
    Column("site", String(3), primary_key=True),
    Column("limits", JSON, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", String(100), nullable=False),
)

units = Table(
    "units", Base.metadata,
    Column("code", String(10), primary_key=True),
    Column("site", String(3), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("owner", JSON),                  # name, phone, email, person_id; None: no owner yet
    # The instant registry made the change: an event overtaken by a later one changes nothing.
    Column("changed_at", UTCDateTime, nullable=False),
)

def _json_function(name, doc, **per_dialect):
    """A SQL function returning JSON, named as each dialect names it."""
    function = type(name, (FunctionElement,), {"type": JSON(), "inherit_cache": True, "__doc__": doc})
    for dialect, sql_name in per_dialect.items():
        compiles(function, dialect)(lambda element, compiler, sql_name=sql_name, **kw:
                                    f"{sql_name}({compiler.process(element.clauses, **kw)})")
    return function


_json_list = _json_function("_json_list", "One JSON array of the group's values.",
                            postgresql="json_agg", sqlite="json_group_array")
_json_row = _json_function("_json_row", "A JSON array of the values given.",
                           postgresql="json_build_array", sqlite="json_array")


def _instant(value):
    """An instant as a JSON array holds it: PostgreSQL's text with an offset, SQLite's naive UTC."""
    instant = datetime.fromisoformat(value)
    return as_utc(instant if instant.tzinfo else instant.replace(tzinfo=timezone.utc))


class _Listed(TypeDecorator):
    """A ticket's breaches or warnings as the domain lists them (`breach_entry`,
    `warning_entry`), from the [deadline, due_at, instant] of each of its rows."""
    impl = JSON
    cache_ok = True

    def __init__(self, entry):
        super().__init__()
        self.entry = entry

    def process_result_value(self, value, dialect):
        make = breach_entry if self.entry == "breach" else warning_entry
        return [make(deadline, _instant(due_at), _instant(at)) for deadline, due_at, at in value or ()]


def _listed(table, at_column, entry):
    """The correlated subquery listing a ticket's rows of `table` (breaches or warnings)."""
    row = _json_row(table.c.deadline, table.c.due_at, table.c[at_column])
    return (select(type_coerce(_json_list(row), _Listed(entry)))
            .where(table.c.ticket_id == tickets.c.id).correlate_except(table)
            .scalar_subquery())


# Read with the ticket, never written through it: the sweep inserts the rows (once each, by the
# tables' unique keys), and what the domain appends to the lists is only its own view of them.
# Not expired on flush, so that a ticket just opened or changed is not read again to answer.
BREACHES_LISTED = _listed(breaches, "detected_at", "breach")
WARNINGS_LISTED = _listed(warnings, "warned_at", "warning")

Base.registry.map_imperatively(Ticket, tickets.join(sweeps, sweeps.c.ticket_id == tickets.c.id), properties={
    "id": [tickets.c.id, sweeps.c.ticket_id],
    "breaches": column_property(BREACHES_LISTED, expire_on_flush=False),
    "warnings": column_property(WARNINGS_LISTED, expire_on_flush=False),
}, exclude_properties=["sweep_claim", "sweep_claimed_at"])


def _in_order(entries, at, deadlines):
    """The lists in the order the sweep added them: by the instant it saw them, then as
    `alerts_due` orders one sweep's (by due instant, then the deadlines' own order)."""
    position = {name: n for n, name in enumerate(deadlines or ())}
    return sorted(entries, key=lambda e: (datetime.fromisoformat(e[at]), datetime.fromisoformat(e["due_at"]),
                                          position.get(e["deadline"], len(position))))


def _ordered_lists(ticket, attrs=None):
    for name, at in (("breaches", "detected_at"), ("warnings", "warned_at")):
        if (attrs is None or name in attrs) and name in ticket.__dict__:
            set_committed_value(ticket, name, _in_order(ticket.__dict__[name], at, ticket.deadlines))


@event.listens_for(Ticket, "load")
def _fresh_event_list(ticket, _context):
    ticket.events = []
    _ordered_lists(ticket)


@event.listens_for(Ticket, "refresh")
def _refreshed(ticket, _context, attrs):
    _ordered_lists(ticket, attrs)


# Opening a ticket reads the unit's copy and the site's limits in one statement, then (after
# registry was asked, if the copy could not answer, and once the ticket is known to be
# acceptable) takes the next number of the kind's series. The statements are written out once,
# not built per call: building them and their cache keys cost as much as running them. The
# number is one upsert, so concurrent creators (threads or replicas) each get their own and
# none repeats. On PostgreSQL the service runs both on their own (`uow.autocommit`): no BEGIN
# or COMMIT round trips, and the number's row lock is held for its one statement, so the
# openings of a busy site do not queue behind each other's INSERT and COMMIT; a number is
# then used up even if its ticket is not written after all (a crash or a database failure in
# between: a gap in the series, never a repeat). Run in a transaction (SQLite, and these
# functions given a session) a rollback gives the number back. It is taken after registry was
# asked, so that the lock is never held across an RPC: on SQLite a writer waiting for that
# lock blocks the whole process (its busy wait is not green), the RPC's reply with it.
_COPY_AND_LIMITS = text("""
    SELECT (SELECT limits FROM sla_policies WHERE site = :site) AS limits,
           units.site, units.timezone, units.owner
    FROM (SELECT 1) AS one LEFT JOIN units ON units.code = :unit
""").columns(column("limits", JSON), column("site", String), column("timezone", String),
             column("owner", JSON))
_NEXT_SERIAL = text(
    "INSERT INTO serials (site, series, last) VALUES (:site, :series, 1) "
    "ON CONFLICT (site, series) DO UPDATE SET last = serials.last + 1 RETURNING last",
).columns(column("last", Integer))


def opening(session, site, unit):
    """(ticketing's copy of `unit`: {site, timezone, owner}, or None if it has none or no unit
    is given; the limits site `site` tightened, {} if none)."""
    row = session.execute(_COPY_AND_LIMITS, {"site": site, "unit": unit or ""}).one()
    known = None if row.site is None else \
        {"site": row.site, "timezone": row.timezone, "owner": row.owner}
    return known, dict(row.limits or {})


def next_serial(session, site, series):
    """The next number of a per-site series (see above)."""
    return session.execute(_NEXT_SERIAL, {"site": site, "series": series}).scalar_one()


def copy_unit(session, code, site, timezone, owner, changed_at):
    """Keep the copy of unit `code` as of `changed_at`, unless a later change is already kept
    (events of one unit may arrive out of order)."""
    values = dict(site=site, timezone=timezone, owner=owner, changed_at=changed_at)
    if not insert_once(session, insert(units).values(code=code, **values)):
        session.execute(update(units).where(units.c.code == code, units.c.changed_at <= changed_at)
                        .values(**values))


def site_policy(session, site):
    """The limits site `site` tightened ({} if none)."""
    row = session.execute(select(sla_policies.c.limits).where(sla_policies.c.site == site)).first()
    return dict(row.limits) if row else {}


def save_site_policy(session, site, limits, now, by):
    changed = session.execute(update(sla_policies).where(sla_policies.c.site == site)
                              .values(limits=limits, updated_at=now, updated_by=by)).rowcount
    if not changed:
        session.execute(insert(sla_policies).values(site=site, limits=limits, updated_at=now,
                                                    updated_by=by))


def claim_due(engine, as_of, now, lease, batch):
    """SQLite (PostgreSQL locks rows instead: `lock_due`): claim up to `batch` tickets the
    sweep has work on at `as_of`, most overdue first, in a short transaction of its own;
    another replica skips them (the writer lock serialises the claims) until this claim is
    released or its lease runs out. The selection uses the index on `sweep_due_at`, never a
    scan of every ticket. The claimed ids."""
    claim = uuid.uuid4().hex
    s = sweeps.c
    due = locking(
        select(s.ticket_id).where(
            s.sweep_due_at <= as_of,
            or_(s.sweep_claim.is_(None), s.sweep_claimed_at < now - lease))
        .order_by(s.sweep_due_at).limit(batch), engine)
    with engine.begin() as conn:
        return conn.execute(update(sweeps).where(s.ticket_id.in_(due.scalar_subquery()))
                            .values(sweep_claim=claim, sweep_claimed_at=now)
                            .returning(s.ticket_id)).scalars().all()


# What the sweep reads of a claimed ticket: what `domain.alerts_due` and `next_sweep_at` need
# and the events carry, never the history; of the policy, only the limits the sweep uses.
SWEPT = ("id", "code", "kind", "site", "timezone", "unit", "status", "severity", "priority",
         "valid", "received_at", "first_contact_owner", "assignee", "deadlines",
         "deadlines_met")


def claimed_rows(session, ids):
    limits = [tickets.c.policy[name].as_integer().label(name) for name in SWEPT_LIMITS]
    stmt = select(*(tickets.c[name] for name in SWEPT), BREACHES_LISTED.label("breaches"),
                  WARNINGS_LISTED.label("warnings"), *limits).where(tickets.c.id.in_(ids))
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=tickets)   # a desk action on the same ticket waits
    return session.execute(stmt).all()


def claimed_tickets(session, ids):
    stmt = select(Ticket).where(tickets.c.id.in_(ids))
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return session.scalars(stmt).all()


def release(session, ids):
    session.execute(update(sweeps).where(sweeps.c.ticket_id.in_(ids))
                    .values(sweep_claim=None, sweep_claimed_at=None))


_SWEPT_UPDATE = update(sweeps).where(sweeps.c.ticket_id == bindparam("id_")).values(
    sweep_due_at=bindparam("next_sweep_at", type_=sweeps.c.sweep_due_at.type),
    sweep_claim=None, sweep_claimed_at=None)


def save_swept(session, changes):
    """SQLite: each swept ticket's next instant, and its release, in one executemany of one
    cached statement: {ticket_id: next_sweep_at}. (What it found is in the rows of `breaches`
    and `warnings` already.)"""
    if changes:
        session.execute(_SWEPT_UPDATE, [{"id_": ticket_id, "next_sweep_at": at}
                                        for ticket_id, at in changes.items()])


def _iso(instant):
    return None if instant is None else as_utc(instant).isoformat()


def record_breaches_once(session, found, detected_at):
    """Insert the breaches `found` [(ticket_id, deadline, due_at)] in one statement; answers the
    set of those this replica is the first to see (the others were already recorded)."""
    return _record_once(session, breaches, "detected_at", found, detected_at)


def record_warnings_once(session, found, warned_at):
    return _record_once(session, warnings, "warned_at", found, warned_at)


def _record_once(session, table, at_column, found, at):
    if not found:
        return set()
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        # one statement for the batch: the found keys as one JSON document, inserted from
        # `json_to_recordset` (the multi-row VALUES pages were re-parsed by psycopg each time)
        rows = session.execute(text(
            f"INSERT INTO {table.name} (ticket_id, deadline, due_at, {at_column})"
            " SELECT v.ticket_id, v.deadline, v.due_at, :at"
            " FROM json_to_recordset(CAST(:found AS json))"
            " AS v(ticket_id text, deadline text, due_at timestamptz)"
            " ON CONFLICT DO NOTHING RETURNING ticket_id, deadline, due_at").bindparams(
                bindparam("at", value=at, type_=UTCDateTime()),
                found=json.dumps([{"ticket_id": t, "deadline": d, "due_at": _iso(due)}
                                  for t, d, due in found])))
        return {(row.ticket_id, row.deadline, as_utc(row.due_at)) for row in rows}
    insert_ = {"postgresql": pg_insert, "sqlite": sqlite_insert}[dialect]
    # an executemany of one cached statement (SQLAlchemy batches it into multi-row INSERTs and
    # gathers RETURNING), not one statement compiled afresh for each batch of values
    stmt = insert_(table).on_conflict_do_nothing().returning(
        table.c.ticket_id, table.c.deadline, table.c.due_at)
    rows = session.execute(stmt, [{"ticket_id": t, "deadline": d, "due_at": due, at_column: at}
                                  for t, d, due in found])
    return {(row.ticket_id, row.deadline, as_utc(row.due_at)) for row in rows}


def _alert_payloads(found, fields):
    """(site, data, sort, shape) of an alert on each (ticket_id, deadline) of `found`."""
    t = tickets.c
    due = t.deadlines.op("->>", return_type=String)(found.c.deadline)
    data = func.json_build_object(*(part for name, value in fields(t, found.c.deadline, due)
                                    for part in (literal(name, String), value)))
    # what may make two alerts differ in shape: which values are null, and the severity and
    # priority (how many levels a breach escalates to)
    shape = func.json_build_array(t.severity, t.priority == "urgent", *(column.is_(None) for column in (
        t.unit, t.assignee, t.first_contact_owner, t.timezone, t.code, due))).cast(String)
    return (select(t.site.label("site"), data.label("data"), (t.id + due).label("sort"),
                   shape.label("shape"))
            .select_from(found).join(tickets, t.id == found.c.ticket_id))


def _breach_fields(detected_at):
    """The fields of `domain.breach_event`, as SQL."""
    def fields(t, deadline, due):
        level = func.coalesce(t.severity, case((t.priority == "urgent", "B"), else_="C"))
        escalate = case({level_: cast(literal(json.dumps(list(to)), Text), JSON)
                         for level_, to in ESCALATION.items()}, value=level)
        return (("subject", literal("ticket", String)), ("subject_id", t.id), ("code", t.code),
                ("kind", t.kind), ("deadline", deadline), ("due_at", due),
                ("detected_at", literal(as_utc(detected_at).isoformat(), String)),
                ("severity", t.severity), ("unit", t.unit),
                ("first_contact_owner", t.first_contact_owner), ("escalate_to", escalate),
                ("timezone", t.timezone))
    return fields


def _warning_fields(warned_at):
    """The fields of `domain.warning_event`, as SQL."""
    def fields(t, deadline, due):
        return (("ticket_id", t.id), ("code", t.code), ("kind", t.kind), ("deadline", deadline),
                ("due_at", due), ("warned_at", literal(as_utc(warned_at).isoformat(), String)),
                ("severity", t.severity), ("unit", t.unit),
                ("first_contact_owner", t.first_contact_owner), ("assignee", t.assignee),
                ("timezone", t.timezone))
    return fields


# -- the sweep done by PostgreSQL ------------------------------------------------------------
# The rules of `domain.alerts_due` and `domain.next_sweep_at` over the tickets' JSON deadlines
# and the rows of `breaches` and `warnings`, for a batch of locked tickets at once (a test
# checks them against the domain's on the same tickets): a deadline is open while unmet and
# the ticket not dropped; it is breached once past due, and warned of once within its lead
# time before (not when first seen past due); the ticket's next instant is its earliest open
# deadline's warning or, once warned, its due instant, or its upgrade. The upgrade itself,
# which changes severity and history, stays with the whole Ticket. The sweep writes the new
# rows of `breaches` and `warnings`, the outbox's and the narrow `ticket_sweeps` rows; the
# ticket's own row it only locks.

def _recorded(table, t, o):
    """Whether `table` (breaches or warnings) has the row of ticket `t`'s deadline `o`."""
    return (f"EXISTS (SELECT FROM {table} AS r WHERE r.ticket_id = {t}.id"
            f" AND r.deadline = {o}.deadline AND r.due_at = {o}.due_at)")


# The open deadlines of ticket row `t` (an alias in the enclosing statement), with their
# instant to warn at. The policy (its JSON text, all of it parsed for each key read) is read
# once per ticket, not once per deadline: that was a fifth of each statement's time; and only
# by the statements that warn (`_DEADLINES_OF_T`), not by the breaches' (`_DUE_OF_T`).
_OPEN_OF_T = """
    SELECT d.key AS deadline, CAST(d.value AS timestamptz) AS due_at{warn_at}
    FROM {policy}json_each_text(t.deadlines) AS d
    WHERE t.status <> ALL(:dropped) AND json_extract_path_text(t.deadlines_met, d.key) IS NULL"""
_DEADLINES_OF_T = _OPEN_OF_T.format(
    warn_at=""",
           CAST(d.value AS timestamptz) - make_interval(mins => CASE WHEN d.key = 'dispatch'
               THEN coalesce(p.warn_dispatch_minutes, :warn_dispatch_minutes)
               ELSE coalesce(p.warn_minutes, :warn_minutes) END) AS warn_at""",
    policy="json_to_record(t.policy) AS p(warn_minutes integer, warn_dispatch_minutes integer), ")
_DUE_OF_T = _OPEN_OF_T.format(warn_at="", policy="")


def _open_deadline_params():
    """The values the open-deadline SQL above takes besides the tickets: the statuses in which
    a deadline is dropped, and the default lead times of a policy that sets none."""
    defaults = SlaPolicy()
    return dict(dropped=list(DROPPED_STATUSES), warn_minutes=defaults.warn_minutes,
                warn_dispatch_minutes=defaults.warn_dispatch_minutes)


def _first_recorded(table, at_column, where, ids, at, deadlines=_DEADLINES_OF_T):
    """INSERT … SELECT of the open deadlines of the locked tickets `ids` matching `where` into
    `table` (breaches or warnings), ON CONFLICT DO NOTHING: a CTE of the (ticket_id, deadline)
    this replica is the first to record (the unique key skips what is recorded already).
    Written as text so that SQLAlchemy caches the statement's compiled form (its ON CONFLICT
    construct has no cache key: compiling it anew was most of the sweep's Python)."""
    return text(
        f"INSERT INTO {table.name} (ticket_id, deadline, due_at, {at_column})"
        f" SELECT t.id, o.deadline, o.due_at, CAST(:as_of AS timestamptz)"
        f" FROM tickets AS t, LATERAL ({deadlines}) AS o WHERE t.id = ANY(:ids) AND {where}"
        f" ON CONFLICT DO NOTHING RETURNING ticket_id, deadline").bindparams(
        bindparam("as_of", value=at, type_=UTCDateTime()),
        bindparam("ids", type_=ARRAY(String)), bindparam("dropped", type_=ARRAY(String)),
        ids=list(ids), **{name: value for name, value in _open_deadline_params().items()
                          if f":{name}" in deadlines}).columns(
        column("ticket_id", String), column("deadline", String)).cte(f"first_{table.name}")


def first_breach_payloads(ids, as_of):
    """(site, data, sort, shape) of the ticketing.sla_breached of every deadline of the locked
    tickets `ids` past due at `as_of` and not yet reported, recorded in `breaches` by the same
    statement (only those this replica records first), for `UnitOfWork.add_events_selected`."""
    first = _first_recorded(breaches, "detected_at", "o.due_at <= :as_of", ids, as_of, _DUE_OF_T)
    return _alert_payloads(first, _breach_fields(as_of))


def first_warning_payloads(ids, as_of):
    """The same for the warnings (超时预警) due at `as_of`: within the lead time, not yet due,
    nor reported as breached (a sweep replayed at an earlier instant)."""
    first = _first_recorded(
        warnings, "warned_at",
        f"o.due_at > :as_of AND o.warn_at <= :as_of AND NOT {_recorded('breaches', 't', 'o')}",
        ids, as_of)
    return _alert_payloads(first, _warning_fields(as_of))


# One statement locks a batch of due tickets and writes each one's next instant, computed from
# its open deadlines as this sweep leaves them: every open deadline past due is then recorded
# as breached (by this sweep, or one before it), and one within its lead time as warned. It
# also says which alerts each ticket has due, so that each INSERT … SELECT reads only the
# tickets it has work on (the all-due pass reads none for warnings). The batch is chosen from
# the index on `sweep_due_at`; its narrow rows are locked with the tickets' (so that a replica
# whose scan began before another committed a batch reads that batch's new instants and passes
# over it) and found by key, the ticket read by key for each.
_LOCK_DUE = text(f"""
    UPDATE ticket_sweeps AS s SET sweep_due_at = LEAST(n.next_at, s.upgrade_at)
    FROM (
        SELECT l.ticket_id,
               min(CASE WHEN od.warned OR od.warn_at <= :as_of THEN od.due_at ELSE od.warn_at END)
                   FILTER (WHERE od.due_at > :as_of AND NOT od.breached) AS next_at,
               coalesce(bool_or(od.due_at <= :as_of AND NOT od.breached), false) AS breach_due,
               coalesce(bool_or(od.due_at > :as_of AND od.warn_at <= :as_of
                                AND NOT od.breached AND NOT od.warned), false) AS warning_due
        FROM unnest(ARRAY(
                 SELECT d.ticket_id FROM ticket_sweeps AS d JOIN tickets AS dt ON dt.id = d.ticket_id
                 WHERE d.sweep_due_at <= :as_of ORDER BY d.sweep_due_at LIMIT :batch
                 FOR NO KEY UPDATE OF d, dt SKIP LOCKED)) AS l(ticket_id)
             JOIN tickets AS t ON t.id = l.ticket_id
             LEFT JOIN LATERAL (
                 SELECT o.*, {_recorded('breaches', 't', 'o')} AS breached,
                        {_recorded('warnings', 't', 'o')} AS warned
                 FROM ({_DEADLINES_OF_T}) AS o) AS od ON true
        GROUP BY l.ticket_id) AS n
    WHERE s.ticket_id = n.ticket_id
    RETURNING s.ticket_id, coalesce(s.upgrade_at <= :as_of, false) AS upgrade_due, n.breach_due,
              n.warning_due""").bindparams(
    bindparam("as_of", type_=UTCDateTime()), bindparam("dropped", type_=ARRAY(String))).columns(
    column("ticket_id", String), column("upgrade_due", Boolean), column("breach_due", Boolean),
    column("warning_due", Boolean))


def lock_due(session, as_of, batch):
    """PostgreSQL: lock up to `batch` tickets the sweep has work on at `as_of`, most overdue
    first, for this transaction (one a replica or a desk action holds is skipped; a replica
    that dies lets go with its connection), and write their next instants (see above): the
    sweep then records what is due in the same transaction. [(ticket_id, upgrade_due,
    breach_due, warning_due)]."""
    # The planner prices each JSON function at 100 rows, so the batch's statements look dear
    # enough to be JIT-compiled: 0.3 s of compiling for 30 ms of work, per statement.
    session.execute(text("SET LOCAL jit = off"))
    return session.execute(_LOCK_DUE, {**_open_deadline_params(), "as_of": as_of, "batch": batch}).all()


def on_call_at(session, site, instant):
    """The roster entry on call at `instant` at `site` (the latest set, if shifts overlap)."""
    return session.execute(select(on_call).where(
        on_call.c.site == site, on_call.c["from"] <= instant, on_call.c.until > instant)
        .order_by(on_call.c.set_at.desc(), on_call.c.id.desc()).limit(1)).mappings().first()


def add_on_call(session, row):
    session.execute(insert(on_call).values(**row))


def roster(site, since):
    """The shifts of `site` not over at `since`, soonest first (a query to page)."""
    return select(on_call).where(on_call.c.site == site, on_call.c.until > since)


def bulk_insert(connection, ticket_list):
    """Insert many tickets, with the breaches and warnings they list (bulk loads: migrations
    from another system, tests)."""
    insert_rows(connection, Ticket, [row_of(t) for t in ticket_list])
    for table, at, listed in ((breaches, "detected_at", "breaches"), (warnings, "warned_at", "warnings")):
        rows = [{"ticket_id": t.id, "deadline": e["deadline"], "due_at": datetime.fromisoformat(e["due_at"]),
                 at: datetime.fromisoformat(e[at])} for t in ticket_list for e in getattr(t, listed) or ()]
        if rows:
            connection.execute(insert(table), rows)


def open_cases(conn):
    """propdesk_open_cases: open tickets by site and kind (SPEC §9)."""
    rows = conn.execute(select(tickets.c.site, tickets.c.kind, func.count())
                        .where(tickets.c.status.in_(OPEN_STATUSES))
                        .group_by(tickets.c.site, tickets.c.kind))
    return [({"site": site, "kind": kind}, count) for site, kind, count in rows]
