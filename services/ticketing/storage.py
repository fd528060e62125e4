"""Ticketing schema. The domain's Ticket is mapped imperatively onto `tickets`, so the domain
stays plain Python; deadlines, breaches and history are JSON columns, with the two instants the
views filter on (`next_due_at`, `callback_due_at`) as indexed columns, and the sweep's own
(`sweep_due_at`, indexed; `upgrade_at`, read by the sweep PostgreSQL does in SQL).

`units` is ticketing's own copy of registry's units and their owners (fed by
`registry.unit_changed`, SPEC §6), so that opening a ticket does not ask registry every time."""
import json
import uuid

from sqlalchemy import (
    JSON, Boolean, Column, Index, Integer, String, Table, Text, bindparam, case, cast, column,
    event, func, insert, literal, or_, select, text, update,
)

from sqlalchemy.dialects.postgresql import ARRAY, insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from services.common.clock import as_utc
from services.common.db import UTCDateTime, declarative_base, insert_once, locking
from services.ticketing.domain import (
    DROPPED_STATUSES, ESCALATION, OPEN_STATUSES, SWEPT_LIMITS, SlaPolicy, Ticket,
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
    Column("breaches", JSON, nullable=False),
    Column("warnings", JSON, nullable=False, server_default="[]"),
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
    # The sweep's own clock: the next instant it has work here (a deadline not yet reported
    # as breached, or the 30-day upgrade); None once there is nothing left to find.
    Column("sweep_due_at", UTCDateTime),
    Column("sweep_claim", String(32)),
    Column("sweep_claimed_at", UTCDateTime),
    # When a valid B/C complaint still open is upgraded to A (None: never), kept by the domain
    # so that the PostgreSQL sweep reads it rather than computing it with the calendar.
    Column("upgrade_at", UTCDateTime),
    Index("ix_tickets_site_status", "site", "status"),
    Index("ix_tickets_sweep_due_at", "sweep_due_at"),
    Index("ix_tickets_site_received_at", "site", "received_at"),
    Index("ix_tickets_next_due_at", "next_due_at"),
    Index("ix_tickets_callback_due_at", "callback_due_at"),
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

Base.registry.map_imperatively(Ticket, tickets, exclude_properties=["sweep_claim", "sweep_claimed_at"])


@event.listens_for(Ticket, "load")
def _fresh_event_list(ticket, _context):
    ticket.events = []


# Opening a ticket reads the unit's copy and the site's limits in one statement, then (after
# registry was asked, if the copy could not answer) takes the next number of the kind's series.
# The statements are written out once, not built per call: building them and their cache keys
# cost as much as running them. The number is one upsert, so concurrent creators (threads or
# replicas) each get their own and none repeats; its row lock is held to the commit, and a
# rollback gives the number back. It is taken last, so that the lock is never held across an
# RPC: on SQLite a writer waiting for that lock blocks the whole process (its busy wait is not
# green), the RPC's reply with it.
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
    due = locking(
        select(tickets.c.id).where(
            tickets.c.sweep_due_at <= as_of,
            or_(tickets.c.sweep_claim.is_(None), tickets.c.sweep_claimed_at < now - lease))
        .order_by(tickets.c.sweep_due_at).limit(batch), engine)
    with engine.begin() as conn:
        return conn.execute(update(tickets).where(tickets.c.id.in_(due.scalar_subquery()))
                            .values(sweep_claim=claim, sweep_claimed_at=now)
                            .returning(tickets.c.id)).scalars().all()


# What the sweep reads of a claimed ticket: what `domain.alerts_due` and `next_sweep_at` need
# and the events carry, never the history; of the policy, only the limits the sweep uses.
SWEPT = ("id", "code", "kind", "site", "timezone", "unit", "status", "severity", "priority",
         "valid", "received_at", "first_contact_owner", "assignee", "deadlines",
         "deadlines_met", "breaches", "warnings")


def claimed_rows(session, ids):
    limits = [tickets.c.policy[name].as_integer().label(name) for name in SWEPT_LIMITS]
    stmt = select(*(tickets.c[name] for name in SWEPT), *limits).where(tickets.c.id.in_(ids))
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()     # a desk action on the same ticket waits, not overwrites
    return session.execute(stmt).all()


def claimed_tickets(session, ids):
    stmt = select(Ticket).where(tickets.c.id.in_(ids))
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return session.scalars(stmt).all()


def release(session, ids):
    session.execute(update(tickets).where(tickets.c.id.in_(ids))
                    .values(sweep_claim=None, sweep_claimed_at=None))


_SWEPT_UPDATE = update(tickets).where(tickets.c.id == bindparam("ticket_id")).values(
    breaches=bindparam("new_breaches", type_=tickets.c.breaches.type),
    warnings=bindparam("new_warnings", type_=tickets.c.warnings.type),
    sweep_due_at=bindparam("next_sweep_at", type_=tickets.c.sweep_due_at.type),
    sweep_claim=None, sweep_claimed_at=None)


# On PostgreSQL the batch's changes go as ONE statement: the rows as one JSON document that
# `json_to_recordset` turns into a table to update from (psycopg's executemany sends one UPDATE
# per ticket: 44 % of the sweep's time). SQLite keeps the executemany of one cached statement.
_SWEPT_UPDATE_PG = text(
    "UPDATE tickets SET breaches = v.new_breaches, warnings = v.new_warnings,"
    " sweep_due_at = v.next_sweep_at, sweep_claim = NULL, sweep_claimed_at = NULL"
    " FROM json_to_recordset(CAST(:rows AS json))"
    " AS v(ticket_id text, new_breaches json, new_warnings json, next_sweep_at timestamptz)"
    " WHERE tickets.id = v.ticket_id")


def save_swept(session, changes):
    """Write what the sweep found on each ticket and release it, in one statement:
    [{ticket_id, new_breaches, new_warnings, next_sweep_at}]."""
    if not changes:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_SWEPT_UPDATE_PG.bindparams(rows=json.dumps([
            {**change, "next_sweep_at": _iso(change["next_sweep_at"])} for change in changes])))
        return
    session.execute(_SWEPT_UPDATE, changes)


def _iso(instant):
    return None if instant is None else as_utc(instant).isoformat()


def record_breaches_once(session, found, detected_at):
    """Insert the breaches `found` [(ticket_id, deadline, due_at)] in one statement; answers the
    set of those this replica is the first to see (the others were already recorded)."""
    return _record_once(session, breaches, "detected_at", found, detected_at)


def record_warnings_once(session, found, warned_at):
    return _record_once(session, warnings, "warned_at", found, warned_at)


def recorded(session, table, ticket_ids):
    """{(ticket_id, deadline, due_at): instant} already in `table` (breaches or warnings)."""
    at = table.c.detected_at if table is breaches else table.c.warned_at
    rows = session.execute(select(table.c.ticket_id, table.c.deadline, table.c.due_at, at)
                           .where(table.c.ticket_id.in_(ticket_ids))).all()
    return {(r[0], r[1], as_utc(r[2])): as_utc(r[3]) for r in rows}


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
# The rules of `domain.alerts_due` and `domain.next_sweep_at` over the JSON columns, for a
# batch of locked tickets at once (a test checks them against the domain's on the same
# tickets): a deadline is open while unmet and the ticket not dropped; it is breached once past
# due, and warned of once within its lead time before (not when first seen past due); the
# ticket's next instant is its earliest open deadline's warning or, once warned, its due
# instant, or its upgrade. The upgrade itself, which changes severity and history, stays with
# the whole Ticket.

def lock_due(session, as_of, batch):
    """PostgreSQL: lock up to `batch` tickets the sweep has work on at `as_of`, most overdue
    first, for this transaction (one a replica or a desk action holds is skipped; a replica
    that dies lets go with its connection). [(ticket_id, upgrade due)], from the index."""
    t = tickets.c
    # The planner prices each JSON function at 100 rows, so the batch's statements look dear
    # enough to be JIT-compiled: 0.3 s of compiling for 30 ms of work, per statement.
    session.execute(text("SET LOCAL jit = off"))
    return session.execute(
        select(t.id, func.coalesce(t.upgrade_at <= as_of, False))
        .where(t.sweep_due_at <= as_of).order_by(t.sweep_due_at).limit(batch)
        .with_for_update(skip_locked=True, key_share=True)).all()


def _deadlines_of(t):
    """The open deadlines of ticket row `t` (an alias in the enclosing statement), with their
    warning instant and whether its JSON lists already show them breached or warned."""
    return f"""
    SELECT d.key AS deadline, d.value AS due_text, CAST(d.value AS timestamptz) AS due_at,
           d.ordinality AS ord,
           CAST(d.value AS timestamptz) - make_interval(mins => CASE WHEN d.key = 'dispatch'
               THEN coalesce(CAST({t}.policy ->> 'warn_dispatch_minutes' AS integer), :warn_dispatch_minutes)
               ELSE coalesce(CAST({t}.policy ->> 'warn_minutes' AS integer), :warn_minutes) END) AS warn_at,
           EXISTS (SELECT FROM json_array_elements({t}.breaches) AS x
                   WHERE x ->> 'deadline' = d.key AND x ->> 'due_at' = d.value) AS listed_breached,
           EXISTS (SELECT FROM json_array_elements({t}.warnings) AS x
                   WHERE x ->> 'deadline' = d.key AND x ->> 'due_at' = d.value) AS listed_warned
    FROM json_each_text({t}.deadlines) WITH ORDINALITY AS d
    WHERE {t}.status <> ALL(:dropped) AND json_extract_path_text({t}.deadlines_met, d.key) IS NULL"""


# The open deadlines of the locked tickets `:ids`, as rows.
_OPEN_DEADLINES = f"""
    SELECT t.id AS ticket_id, o.* FROM tickets AS t, LATERAL ({_deadlines_of('t')}) AS o
    WHERE t.id = ANY(:ids)"""


def _open_deadline_params(ids):
    defaults = SlaPolicy()
    return dict(ids=list(ids), dropped=list(DROPPED_STATUSES), warn_minutes=defaults.warn_minutes,
                warn_dispatch_minutes=defaults.warn_dispatch_minutes)


def _first_recorded(table, at_column, where, ids, at):
    """INSERT … SELECT of the open deadlines of `ids` matching `where` into `table` (breaches
    or warnings), ON CONFLICT DO NOTHING: a CTE of the (ticket_id, deadline) this replica is
    the first to record. Written as text so that SQLAlchemy caches the statement's compiled
    form (its ON CONFLICT construct has no cache key: compiling it anew was most of the
    sweep's Python)."""
    return text(
        f"INSERT INTO {table.name} (ticket_id, deadline, due_at, {at_column})"
        f" SELECT ticket_id, deadline, due_at, CAST(:as_of AS timestamptz)"
        f" FROM ({_OPEN_DEADLINES}) AS o WHERE {where}"
        f" ON CONFLICT DO NOTHING RETURNING ticket_id, deadline").bindparams(
        bindparam("as_of", value=at, type_=UTCDateTime()),
        bindparam("ids", type_=ARRAY(String)), bindparam("dropped", type_=ARRAY(String)),
        **_open_deadline_params(ids)).columns(
        column("ticket_id", String), column("deadline", String)).cte(f"first_{table.name}")


def first_breach_payloads(ids, as_of):
    """(site, data, sort, shape) of the ticketing.sla_breached of every deadline of the locked
    tickets `ids` past due at `as_of` and not yet reported, recorded in `breaches` by the same
    statement (only those this replica records first), for `UnitOfWork.add_events_selected`."""
    first = _first_recorded(breaches, "detected_at", "NOT listed_breached AND due_at <= :as_of",
                            ids, as_of)
    return _alert_payloads(first, _breach_fields(as_of))


def first_warning_payloads(ids, as_of):
    """The same for the warnings (超时预警) due at `as_of`: within the lead time, not yet due."""
    first = _first_recorded(
        warnings, "warned_at",
        "NOT listed_breached AND NOT listed_warned AND due_at > :as_of AND warn_at <= :as_of",
        ids, as_of)
    return _alert_payloads(first, _warning_fields(as_of))


def _iso_sql(column):
    """`column` (timestamptz) as Python's isoformat() writes it in UTC."""
    return (f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS')"
            f" || CASE WHEN {column} = date_trunc('second', {column}) THEN ''"
            f" ELSE to_char({column} AT TIME ZONE 'UTC', '.US') END || '+00:00'")


def _appended(column, new):
    """The JSON list `t.column` with the list `new` after it (each element kept as it is)."""
    return (f"CASE WHEN {new} IS NULL THEN t.{column} ELSE (SELECT json_agg(e ORDER BY part, n) FROM ("
            f"SELECT e, 1 AS part, n FROM json_array_elements(t.{column}) WITH ORDINALITY AS a(e, n)"
            f" UNION ALL SELECT e, 2, n FROM json_array_elements({new}) WITH ORDINALITY AS b(e, n)) AS listed) END")


# Each ticket's new lists and next instant from a subquery over its own deadlines (correlated
# with the row it updates): work in proportion to the batch, with no join for the planner to
# misjudge (a join of the batch with its aggregate once took 15 s for 2,000 tickets). OFFSET 0
# keeps the planner from inlining the lookups of each deadline into every place they are read.
_SWEPT_IN_DATABASE = text(f"""
    UPDATE tickets AS t SET (breaches, warnings, sweep_due_at) = (
        SELECT {_appended('breaches', 'a.new_breaches')}, {_appended('warnings', 'a.new_warnings')},
               LEAST(a.next_at, t.upgrade_at)
        FROM (
            SELECT json_agg(json_build_object('deadline', deadline, 'due_at', due_text,
                                              'detected_at', {_iso_sql('detected_at')}) ORDER BY due_at, ord)
                       FILTER (WHERE detected_at IS NOT NULL AND NOT listed_breached) AS new_breaches,
                   json_agg(json_build_object('deadline', deadline, 'due_at', due_text,
                                              'warned_at', {_iso_sql('warned_at')}) ORDER BY due_at, ord)
                       FILTER (WHERE warned_at IS NOT NULL AND NOT listed_warned) AS new_warnings,
                   min(CASE WHEN warned_at IS NOT NULL OR listed_warned THEN due_at ELSE warn_at END)
                       FILTER (WHERE detected_at IS NULL AND NOT listed_breached) AS next_at
            FROM (
                SELECT o.*,
                       (SELECT detected_at FROM breaches AS b WHERE b.ticket_id = t.id
                           AND b.deadline = o.deadline AND b.due_at = o.due_at) AS detected_at,
                       (SELECT warned_at FROM warnings AS w WHERE w.ticket_id = t.id
                           AND w.deadline = o.deadline AND w.due_at = o.due_at) AS warned_at
                FROM ({_deadlines_of('t')}) AS o
                OFFSET 0) AS o) AS a)
    WHERE t.id = ANY(:ids)""").bindparams(
    bindparam("ids", type_=ARRAY(String)), bindparam("dropped", type_=ARRAY(String)))


def save_swept_in_database(session, ids):
    """After `first_*_payloads`: each locked ticket of `ids` lists what is recorded of its open
    deadlines (by this replica or one before it, with the instant recorded), and its next
    instant is computed anew: ONE UPDATE for the batch, no row through Python."""
    session.execute(_SWEPT_IN_DATABASE, _open_deadline_params(ids))


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



def ticket_row(ticket):
    """A domain Ticket as a row of `tickets` (bulk loads: migrations from another system, the
    sweep bench and tests)."""
    return {column.key: getattr(ticket, column.key, None) for column in tickets.columns
            if column.key not in ("sweep_claim", "sweep_claimed_at")}


def bulk_insert(connection, ticket_list):
    """Insert many tickets in one executemany."""
    if ticket_list:
        connection.execute(insert(tickets), [ticket_row(t) for t in ticket_list])


def open_cases(conn):
    """propdesk_open_cases: open tickets by site and kind (SPEC §9)."""
    rows = conn.execute(select(tickets.c.site, tickets.c.kind, func.count())
                        .where(tickets.c.status.in_(OPEN_STATUSES))
                        .group_by(tickets.c.site, tickets.c.kind))
    return [({"site": site, "kind": kind}, count) for site, kind, count in rows]
