"""Storage plumbing every service shares: engines, one unit of work per Nameko worker, the
transactional outbox and its relay, idempotent event handling, cursor pagination.

A service's entrypoint changes state and records the events that change causes in the same
transaction (`uow.add_event`), then `uow.commit()`s. Only after the commit does the relay publish
the recorded events to RabbitMQ (and mark them published), so an event goes out if and only if
its change committed. A crash between commit and publish leaves the row unpublished; the relay
of the restarted (or any other) replica finds it and sends it. Receivers de-duplicate on the
event id (`uow.first_time`), which makes the at-least-once relay exactly-once in effect.

A command called with a client's Idempotency-Key (`uow.once`) records its answer in the same
transaction as its effect, so that a retry after a timeout or a crash, or a request redelivered
to a restarted replica, gets the first answer instead of a second effect.
"""
import base64
import functools
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
import uuid
from collections import namedtuple
from datetime import datetime, timedelta, timezone
from operator import itemgetter

import eventlet
from eventlet.queue import Empty, LightQueue
from kombu.utils import json as wire_json
from nameko.constants import AMQP_URI_CONFIG_KEY
from nameko.events import get_event_exchange
from nameko.extensions import DependencyProvider
from prometheus_client import Counter, Gauge
from psycopg.pq import TransactionStatus
from sqlalchemy import (
    JSON, Column, DateTime, Index, Integer, MetaData, String, Table, Text, bindparam, cast,
    create_engine, delete, event, func, insert, inspect as sa_inspect, literal, or_, select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DisconnectionError, IntegrityError
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.types import TypeDecorator

from services.common import contracts
from services.common.auth import CallContext
from services.common.clock import as_utc, utcnow
from services.common.config import load_config
from services.common.errors import ProblemError, ValidationFailed
from services.common.metrics import breaches_counter, metric
from services.common.publish import ConfirmedPublisher, NotConfirmed

log = logging.getLogger(__name__)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator):
    """Instants are stored in UTC and always come back timezone-aware (SQLite keeps no offset)."""
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        value = as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else as_utc(value)


def new_id():
    """Sortable by creation time (48-bit milliseconds) and unique across replicas."""
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(6)}"


def declarative_base():
    """A service's own declarative base: its metadata also carries the outbox and the
    processed-events table, so Alembic migrates them with the service's schema."""
    metadata = MetaData(naming_convention=NAMING)
    Table(
        "outbox", metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("event", String(80), nullable=False),
        Column("body", JSON, nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Column("published_at", UTCDateTime, nullable=True),
        Column("claim", String(32), nullable=True),
        Column("claimed_at", UTCDateTime, nullable=True),
        Index("ix_outbox_unpublished", "published_at", "id"),
    )
    Table(
        "processed_events", metadata,
        Column("event_id", String(36), primary_key=True),
        Column("handler", String(120), primary_key=True),
        Column("processed_at", UTCDateTime, nullable=False),
    )

    Table(
        "idempotent_commands", metadata,
        Column("caller", String(200), primary_key=True),
        Column("key", String(200), primary_key=True),
        Column("command", String(120), primary_key=True),
        Column("request", String(64), nullable=False),
        Column("answer", Text, nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Index("ix_idempotent_commands_created_at", "created_at"),
    )

    class Base(DeclarativeBase):
        pass

    Base.metadata = metadata
    Base.registry.metadata = metadata
    return Base


def make_engine(url, **kwargs):
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    pooled = "poolclass" not in kwargs
    if pooled:
        kwargs.update(pool_size=10, max_overflow=10)
    _wait_for_postgres_greenly()
    engine = create_engine(url, **kwargs)
    if pooled:
        _ping_when_idle(engine)
    return engine


# A pooled connection idle this long is pinged before it is handed out (a database restarted,
# a connection cut by a firewall); one in steady use is not. SQLAlchemy's pool_pre_ping pinged
# on every checkout: one round trip in seven of opening a repair.
PING_AFTER_IDLE_SECONDS = 5.0


def _ping_when_idle(engine):
    @event.listens_for(engine, "connect")
    @event.listens_for(engine, "checkin")
    def _idle_from_now(_dbapi_conn, record):
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_conn, record, _proxy):
        if time.monotonic() - record.info.get("idle_since", 0.0) < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            # the pool drops this connection and checks out another (a fresh one if need be)
            raise DisconnectionError(f"a pooled connection failed its ping: {exc}") from exc


def _wait_for_postgres_greenly():
    """psycopg waits for the server in C (`wait_c`), which stops every greenthread of the
    process while one query is in flight: a service ran one statement at a time, and 16
    clients were no faster than one. Under eventlet's patching, wait through `select`, which
    the patching routes to eventlet's hub (epoll, no FD_SETSIZE limit)."""
    if eventlet.patcher.is_monkey_patched("select"):
        from psycopg import waiting
        waiting.wait = waiting.wait_select


def locking(stmt, engine):
    """Row locks that other replicas skip, where the database has them (PostgreSQL); SQLite
    serialises writers anyway, and unique constraints keep each step single there."""
    return stmt.with_for_update(skip_locked=True) if engine.dialect.name == "postgresql" else stmt


class UnitOfWork:
    """One per worker: the session, the events its change raises, event de-duplication, and
    the answers of commands called with an idempotency key."""

    def __init__(self, provider, worker_ctx):
        self._provider = provider
        self._context = CallContext(worker_ctx)
        entrypoint = getattr(worker_ctx, "entrypoint", None)
        self._command = entrypoint.method_name if entrypoint is not None else None
        self._answering = None   # the key of the command whose commit `once` does
        self._deferred = False   # and whether that command asked for one
        self.session = Session(provider.engine, expire_on_commit=False)
        self.autocommit = _Autocommit(self.session)
        self._inserts = []    # (statements, values) of `insert`, written when the unit commits
        self._raised = False
        self._breaches = []   # (site, kind, deadline, how many), counted once they commit

    def insert(self, obj):
        """Write the new mapped object `obj` when this unit commits, by one INSERT of its columns
        into each table it is mapped onto (a ticket: `tickets` and its narrow `ticket_sweeps`
        row), instead of `session.add` and the ORM's flush, which were a third of the Python of
        opening a repair (its unit-of-work bookkeeping for a lone row). On PostgreSQL the
        tables' INSERTs are one statement (the first ones as data-modifying CTEs), and when that
        statement is all the unit writes it runs on its own, without BEGIN and COMMIT (see
        `commit`). For rows written once, as they are made: `obj` is not in the session, so a
        change made to it afterwards is not saved, and a statement of the unit run before the
        commit does not see it."""
        mapper = sa_inspect(type(obj))
        values = {name: getattr(obj, key) for name, key in _insertable(mapper)[1]}
        postgresql = self.session.get_bind().dialect.name == "postgresql"
        self._inserts.append((_inserting(mapper, postgresql), values))

    def add_event(self, event, data, *, site=None, occurred_at=None):
        """Record `event` (e.g. 'ticketing.callback_due') to publish once this unit commits."""
        return self.add_events(event, [(data, site)], occurred_at=occurred_at)[0]

    def add_events(self, event, items, *, occurred_at=None):
        """Record one `event` per (data, site) in `items` in one executemany, for a bulk change
        that raises thousands; the payloads checked against the contract first (once per
        shape, `contracts.dump_payloads`). Their ids."""
        now, items = utcnow(), list(items)
        bodies = contracts.envelopes(event, items, occurred_at=occurred_at or now,
                                     correlation_id=self._context.correlation_id)
        if event.endswith(".sla_breached"):
            self._breaches += [(site, data["kind"], data["deadline"], 1) for data, site in items]
        if bodies:
            bulk_insert(self.session, self._provider.outbox, [
                {"event_id": body["id"], "event": event, "body": body, "created_at": now}
                for body in bodies])
            self._raised = True
        return [body["id"] for body in bodies]

    def add_events_selected(self, event, source, *, occurred_at=None):
        """Record one `event` per row of `source` — a SELECT of `site`, `data` (the payload as
        JSON, built by the database), `sort` (the order to publish in) and `shape` (a text that
        differs wherever the payloads' shapes may: which values are null, how many items a list
        has) — by ONE INSERT … SELECT, for a bulk change on PostgreSQL (`sql_events`): no
        payload passes through Python. The contract is checked once per shape, on one payload
        of each (a regular expression taking each payload's values out to find its shape cost
        a second per 10,000 in PostgreSQL); a breach fails the transaction. How many were
        recorded. The breaches of an `….sla_breached` are counted on commit by (site, kind,
        deadline), as `add_events` counts those it records; the same statement groups them."""
        outbox, now = self._provider.outbox, utcnow()
        version = contracts.LATEST[event]
        given = source.subquery()
        # a CTE read twice (and volatile, by gen_random_uuid()) is computed once: each row's id
        made = select(func.gen_random_uuid().cast(String).label("event_id"), given.c.site,
                      given.c.data, given.c.sort, given.c.shape).cte("made")

        def typed(value):
            return literal(value, String if not isinstance(value, int) else Integer)
        body = func.json_build_object(
            typed("id"), made.c.event_id, typed("event"), typed(event), typed("version"),
            typed(version), typed("source"), typed(event.split(".", 1)[0]),
            typed("occurred_at"), typed((occurred_at or now).isoformat()),
            typed("site"), made.c.site,
            typed("correlation_id"), typed(self._context.correlation_id), typed("data"), made.c.data)
        written = insert(outbox).from_select(
            ["event_id", "event", "body", "created_at"],
            select(made.c.event_id, literal(event), body, literal(now, outbox.c.created_at.type))
            .order_by(made.c.sort)).returning(outbox.c.id).cte("written")
        # one payload of each shape from `made` (joining the written rows back to it was a
        # nested loop, 10,000 × 10,000); the count of the written rows makes the insert run
        counted = literal(None, JSON)
        if event.endswith(".sla_breached"):
            kind, deadline = (made.c.data.op("->>", return_type=String)(name) for name in ("kind", "deadline"))
            groups = select(made.c.site, kind.label("kind"), deadline.label("deadline"),
                            func.count().label("n")).group_by(made.c.site, kind, deadline).subquery()
            counted = select(func.json_agg(func.json_build_array(
                groups.c.site, groups.c.kind, groups.c.deadline, groups.c.n))).scalar_subquery()
        shapes = self.session.execute(
            select(cast(made.c.data, Text),
                   select(func.count()).select_from(written).scalar_subquery(), counted)
            .distinct(made.c.shape)).all()
        schema = contracts.SCHEMAS[(event, version)]()
        for one, _, _ in shapes:
            errors = schema.validate(json.loads(one))
            if errors:
                raise ValueError(f"{event} v{version} payload breaks its contract: {errors}")
        count = shapes[0][1] if shapes else 0
        if shapes:
            self._breaches += [tuple(group) for group in shapes[0][2] or ()]
        if count:
            self._raised = True
        return count

    def first_time(self, event_id, handler):
        """True the first time `handler` sees `event_id` in a committed unit; False on any
        redelivery. Claims the pair inside this unit, so the claim and the effect commit together."""
        table = self._provider.processed
        seen = self.session.execute(select(table.c.event_id).where(
            table.c.event_id == event_id, table.c.handler == handler)).first()
        if seen:
            return False
        self.session.execute(insert(table).values(
            event_id=event_id, handler=handler, processed_at=utcnow()))
        return True

    def first_times(self, event_ids, handler):
        """The ids of `event_ids` that `handler` sees for the first time, claimed in this unit in
        one statement (INSERT … ON CONFLICT DO NOTHING RETURNING): a batch's de-duplication. A
        replica claiming the same id at the same moment waits for this unit's end (PostgreSQL's
        unique index), then finds it taken; so the effect of an event commits once."""
        table, now = self._provider.processed, utcnow()
        event_ids = list(dict.fromkeys(event_ids))
        if not event_ids:
            return set()
        dialect = self.session.get_bind().dialect.name
        if dialect not in ("postgresql", "sqlite"):
            return {event_id for event_id in event_ids if self.first_time(event_id, handler)}
        insert_of = postgresql_insert if dialect == "postgresql" else sqlite_insert
        stmt = (insert_of(table).values([{"event_id": event_id, "handler": handler,
                                          "processed_at": now} for event_id in event_ids])
                .on_conflict_do_nothing().returning(table.c.event_id))
        return set(self.session.scalars(stmt).all())

    def once(self, run):
        """`run()` once per (caller, Idempotency-Key, command): its answer is written in the
        transaction of its effect, so both commit or neither does, and every later call with the
        key gets that answer back (the same key for another request is a 422). Inside, the
        command's `commit()`s only flush: the one commit comes after the answer is known. A
        command that never commits (a read) records nothing.

        Calls racing with the same key (a retry while the first still runs after the gateway
        gave up on it): the answer's primary key lets one commit; the other's effect is rolled
        back and it answers what the first did, also when it failed first on the state the first
        left (a 409)."""
        carried = self._context.idempotency
        if not carried or self._answering is not None or self._command is None:
            return run()
        key = (self._context.identity.sub, str(carried["key"]), self._command)
        request = str(carried["request"])
        stored = self._stored(key, request)
        if stored is not None:
            return stored[0]
        self._answering, self._deferred = key, False
        try:
            answer = run()
        except ProblemError:
            self.session.rollback()
            stored = self._stored(key, request)
            if stored is not None:
                return stored[0]
            raise
        finally:
            self._answering = None
        if not self._deferred:   # it changed nothing (a read, a no-op): nothing to replay
            return answer
        table = self._provider.answers
        try:
            self.session.execute(insert(table).values(
                caller=key[0], key=key[1], command=key[2], request=request,
                answer=wire_json.dumps(answer), created_at=utcnow()))
            self.commit()
        except IntegrityError:
            self.session.rollback()
            return self._stored(key, request)[0]
        return answer

    def _stored(self, key, request):
        """(answer,) recorded for `key`, None if there is none yet."""
        table = self._provider.answers
        row = self.session.execute(select(table.c.request, table.c.answer).where(
            table.c.caller == key[0], table.c.key == key[1], table.c.command == key[2])).first()
        self.session.rollback()  # end the read, so a long run holds no snapshot or lock
        if row is None:
            return None
        if row.request != request:
            raise ValidationFailed.from_messages({"Idempotency-Key": [
                "already used for another request; use a new key for a new request"]})
        return (wire_json.loads(row.answer),)

    def commit(self):
        """Commit, and wake the relay if this unit wrote events: waking it for every commit
        (most write none, e.g. opening a repair) cost a quarter of a service's time in empty
        claims. Inside `once`, only flush: its one commit comes with the recorded answer.

        The objects of `insert` are written first. When they are one statement and the unit has
        written nothing else (no transaction begun: its reads ran on `autocommit`, no ORM
        change pending), that statement runs on its own: one round trip where BEGIN, INSERT and
        COMMIT were three, and as atomic, a single statement being a transaction of its own."""
        self._write_inserts()
        if self._answering is not None:
            self.session.flush()
            self._deferred = True
            return
        self.session.commit()
        if self._raised:
            self._raised = False
            self._provider.relay.kick()
        breaches, self._breaches = self._breaches, []
        for site, kind, deadline, count in breaches:
            service = self._provider.service
            breaches_counter(service).labels(service, site or "", kind, deadline).inc(count)

    def _write_inserts(self):
        inserts, self._inserts = self._inserts, []
        if (len(inserts) == 1 and len(inserts[0][0]) == 1 and self._answering is None
                and not (self.session.new or self.session.dirty or self.session.deleted)):
            self.autocommit.execute(inserts[0][0][0], inserts[0][1])
            return
        for statements, values in inserts:
            for statement in statements:
                self.session.connection().execute(statement, values)

    def close(self, failed):
        if failed:
            self.session.rollback()
        self.session.close()


class _Autocommit:
    """`uow.autocommit.execute(statement, params)`: a statement run on its own and committed at
    once, outside the unit's transaction, while the unit has begun none (PostgreSQL): no BEGIN
    and no COMMIT, two round trips fewer. For a read whose snapshot need not be the one the
    unit's writes see (the unit's copy and the site's limits before a ticket opens), or a write
    that must not wait for the unit's end (a ticket's number: its row lock is held for that one
    statement, not across the rest of the opening; a unit that fails after it leaves the number
    unused). Once the unit has begun a transaction (it wrote), and on SQLite, the statement runs
    in the unit's transaction like any other. It takes what `Session.execute` takes, so a
    storage function may be given either."""

    def __init__(self, session):
        self._session = session

    def execute(self, statement, params=None):
        connection = self._session.connection()
        raw = connection.connection.driver_connection if connection.dialect.name == "postgresql" else None
        if raw is None or raw.info.transaction_status != TransactionStatus.IDLE:
            return connection.execute(statement, params)
        raw.autocommit = True
        try:
            return connection.execute(statement, params)
        finally:
            if raw.info.transaction_status == TransactionStatus.IDLE:   # else broken: the pool discards it
                raw.autocommit = False


@functools.cache
def _insertable(mapper):
    """The INSERT of each table `mapper` maps, in the order the mapper writes them, its values
    bound by parameters named <table>__<column>; and (parameter, attribute) for each of those
    (an attribute mapped onto two tables' columns, a joined mapping's key, gives both)."""
    statements, parameters = [], []
    for table in mapper.tables:
        columns = [(prop.key, column) for prop in mapper.column_attrs for column in prop.columns
                   if getattr(column, "table", None) is table]
        statements.append(insert(table).values({column.key: bindparam(
            f"{table.name}__{column.key}", type_=column.type) for _, column in columns}))
        parameters += [(f"{table.name}__{column.key}", key) for key, column in columns]
    return statements, tuple(parameters)


@functools.cache
def _inserting(mapper, postgresql):
    """The statements `UnitOfWork.insert` runs, written once: on PostgreSQL the INSERTs of a
    mapping onto several tables as one statement, the first ones as data-modifying CTEs."""
    statements = _insertable(mapper)[0]
    if postgresql and len(statements) > 1:
        return [statements[-1].add_cte(*(first.cte(f"written_{n}")
                                         for n, first in enumerate(statements[:-1])))]
    return statements


def row_of(obj):
    """The new mapped object `obj` as a row for `insert_rows`: {attribute: value} of every
    column it is mapped onto."""
    return {key: getattr(obj, key) for _, key in _insertable(sa_inspect(type(obj)))[1]}


def insert_rows(connection, cls, rows):
    """Write many new objects of the mapped class `cls`, given as `row_of` rows (changed at
    will: bulk loads, the benches): one executemany per table `cls` is mapped onto, of the
    statements `UnitOfWork.insert` is made of."""
    statements, parameters = _insertable(sa_inspect(cls))
    if rows:
        values = [{name: row[key] for name, key in parameters} for row in rows]
        for statement in statements:
            connection.execute(statement, values)


def sql_events(session):
    """Whether `UnitOfWork.add_events_selected` can build events in this database (PostgreSQL's
    JSON functions); elsewhere a bulk change builds them in Python (`add_events`)."""
    return session.get_bind().dialect.name == "postgresql"


class Database(DependencyProvider):
    """`self.uow` in a service: a UnitOfWork per worker, rolled back if the worker fails and
    closed when it ends. The engine URL is `DB_URIS[<service>]` in config.yml."""

    def __init__(self, base):
        self.base = base
        self.units = {}

    def setup(self):
        self.service = service = self.container.service_name
        self.url = self.container.config["DB_URIS"][service]
        self.engine = make_engine(self.url)
        tables = self.base.metadata.tables
        self.outbox, self.processed = tables["outbox"], tables["processed_events"]
        self.answers = tables["idempotent_commands"]
        self.relay = OutboxRelay(self.engine, self.outbox, self.container.config, service,
                                 answers=self.answers)

    def start(self):
        self.relay.start()

    def stop(self):
        # setup() may have failed before making them; its error is the one worth seeing
        if getattr(self, "relay", None) is not None:
            self.relay.stop()
            self.engine.dispose()

    def kill(self):
        self.stop()

    def get_dependency(self, worker_ctx):
        unit = UnitOfWork(self, worker_ctx)
        self.units[worker_ctx] = unit
        return unit

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        unit = self.units.pop(worker_ctx, None)
        if unit is not None:
            unit.close(failed=exc_info is not None)


class OutboxRelay:
    """Publishes committed outbox rows to the source service's Nameko event exchange, in order,
    with publisher confirms; woken after each commit and polling for rows left by a crash."""

    BATCH = 1000
    PRUNE_EVERY = timedelta(hours=1)
    PRUNE_BATCH = 5000

    def __init__(self, engine, table, config, service, answers=None):
        self.engine, self.table, self.service, self.answers = engine, table, service, answers
        self.poll_seconds = float(config.get("OUTBOX_POLL_SECONDS", 2))
        # Published rows are kept this long (to see what went out), then deleted, so that the
        # outbox stays the size of what is in flight rather than of everything ever raised.
        self.retention = timedelta(hours=float(config.get("OUTBOX_RETENTION_HOURS", 72)))
        # Commands' answers are kept as long as the gateway keeps an Idempotency-Key's.
        self.answer_retention = timedelta(
            hours=float(config.get("IDEMPOTENCY_RETENTION_HOURS", 24)))
        self.pruned_at = None
        # How long a claimed batch stays another relay's: long enough for a healthy publish of
        # one batch, short enough that a crashed relay's events go out soon after a restart.
        # A slow relay overtaken after it is only duplicates events, which receivers ignore.
        self.lease = timedelta(seconds=float(config.get("OUTBOX_LEASE_SECONDS", 10)))
        self.publisher = ConfirmedPublisher(config[AMQP_URI_CONFIG_KEY],
                                            get_event_exchange(service, config))
        self.wakeups = LightQueue(maxsize=1)
        self.thread = None
        self.published = metric(service, "outbox_published", lambda registry: Counter(
            "propdesk_outbox_published", "Events relayed to RabbitMQ",
            ["service"], registry=registry)).labels(service)
        self.pending = metric(service, "outbox_pending", lambda registry: Gauge(
            "propdesk_outbox_pending", "Committed events not yet relayed",
            ["service"], registry=registry)).labels(service)
        self.oldest_age = metric(service, "outbox_oldest_age", lambda registry: Gauge(
            "propdesk_outbox_oldest_age_seconds",
            "Age of the oldest committed event not yet relayed (0 when none is waiting)",
            ["service"], registry=registry)).labels(service)
        self.measured_at = None

    def start(self):
        self.thread = eventlet.spawn(self._run)

    def stop(self):
        if self.thread is not None:
            self.thread.kill()
            self.thread = None
        self.publisher.close()

    def kick(self):
        if self.wakeups.empty():
            try:
                self.wakeups.put_nowait(True)
            except Exception:  # already woken
                pass

    def _run(self):
        failures = 0
        while True:
            try:
                self.wakeups.get(timeout=self.poll_seconds)
            except Empty:
                pass
            try:
                self.flush()
                now = utcnow()
                if self.pruned_at is None or now - self.pruned_at >= self.PRUNE_EVERY:
                    self.prune(now)
                    self.pruned_at = now
                failures = 0
            except Exception:
                failures += 1
                log.exception("outbox relay of %s failed; will retry", self.service)
                eventlet.sleep(min(30, 0.5 * 2 ** failures))

    def flush(self):
        """Publish what is waiting, a batch at a time, until a batch comes back short; how many
        rows went out.

        Each batch is claimed in a short write transaction (a lease), so that replicas sharing
        the database never publish the same row, on SQLite as on PostgreSQL, and no write of
        the service waits on the broker. A relay that dies holding a claim lets it lapse after
        its lease; one whose publish fails marks what went out and releases the rest.

        While the broker routes and persists the batch just sent, the next batch is claimed,
        and the one confirmed before is marked published in that same transaction: one
        transaction per batch, run while waiting for the broker. A batch is sent only once the
        one before it is confirmed (events go out in order), and only while its lease is young:
        one claimed before a long wait for the broker is claimed anew rather than sent."""
        self._measure_age()
        published, done = 0, None   # done: the batch confirmed, not marked published yet
        batch = self._claim_batch()
        while batch.ids:
            self._measure_age()
            if time.monotonic() - batch.taken > self.lease.total_seconds() / 2:
                batch, published = self._claim_batch(done, release=batch), published + self._count(done)
                done = None
                continue
            sending, batch = batch, NO_BATCH
            try:
                self.publisher.send(sending.messages)
                if len(sending.ids) == self.BATCH:
                    batch = self._claim_batch(done)   # while the broker persists `sending`
                else:
                    self._settle(done)
                published, done = published + self._count(done), None
                self.publisher.wait()
            except NotConfirmed as exc:
                self._settle(done, failed=sending, confirmed=exc.confirmed, release=batch)
                self._count(done)
                self.published.inc(exc.confirmed)
                raise
            done = sending
        self._settle(done)
        return published + self._count(done)

    def _count(self, batch):
        """How many rows `batch`, just marked published, had (none for None), counted in
        propdesk_outbox_published."""
        if batch is None:
            return 0
        self.published.inc(len(batch.ids))
        return len(batch.ids)

    def _measure_age(self):
        """The oldest waiting event's age, at most once a poll interval: one index-ordered row,
        however long the backlog, so that a relay busy draining one still reports it."""
        now = utcnow()
        if self.measured_at is not None and (now - self.measured_at).total_seconds() < self.poll_seconds:
            return
        self.measured_at = now
        table = self.table
        with self.engine.connect() as conn:
            self._in_index_order(conn)
            oldest = conn.execute(select(table.c.created_at).where(table.c.published_at.is_(None))
                                  .order_by(table.c.published_at, table.c.id).limit(1)).scalar()
        self.oldest_age.set(0 if oldest is None else max(0.0, (now - as_utc(oldest)).total_seconds()))

    def prune(self, now):
        """Delete rows published before `now` − retention, a chunk per transaction so that no
        delete holds the table long; never an unpublished row. How many went. Commands'
        answers past their retention go too."""
        if self.answers is not None:
            with self.engine.begin() as conn:
                conn.execute(delete(self.answers).where(
                    self.answers.c.created_at < now - self.answer_retention))
        table, cutoff, deleted = self.table, now - self.retention, 0
        while True:
            chunk = (select(table.c.id).where(table.c.published_at < cutoff)
                     .limit(self.PRUNE_BATCH).scalar_subquery())
            with self.engine.begin() as conn:
                gone = conn.execute(delete(table).where(table.c.id.in_(chunk))).rowcount
            deleted += gone
            if gone < self.PRUNE_BATCH:
                return deleted

    def _claim_batch(self, done=None, release=None):
        """The next batch, claimed in a write transaction that also marks `done` (a batch
        confirmed) published and releases `release` (a batch claimed, not sent)."""
        table, now, claim, taken = self.table, utcnow(), uuid.uuid4().hex, time.monotonic()
        claimable = locking(
            select(table.c.id).where(
                table.c.published_at.is_(None),
                or_(table.c.claimed_at.is_(None), table.c.claimed_at < now - self.lease))
            .order_by(table.c.published_at, table.c.id).limit(self.BATCH), self.engine)
        with self.engine.begin() as conn:
            self._mark_published(conn, done)
            self._release(conn, release)
            self._in_index_order(conn)
            # the claimed rows come back by primary key (`claim` has no index: finding them by it
            # read the whole table, published rows included, once per batch), each body as the
            # JSON text it is stored as (published as it is, not decoded and encoded again)
            rows = sorted(conn.execute(
                update(table).where(table.c.id.in_(claimable.scalar_subquery()))
                .values(claim=claim, claimed_at=now)
                .returning(table.c.id, table.c.event, cast(table.c.body, Text),
                           table.c.body["correlation_id"].as_string())).tuples().all(),
                key=itemgetter(0))
            if not rows:
                self.pending.set(conn.execute(select(func.count()).select_from(table)
                                              .where(table.c.published_at.is_(None))).scalar())
        return Batch(claim, taken, [row[0] for row in rows], [
            (body, event.split(".", 1)[1], {"nameko.correlation_id": correlation_id or ""})
            for _, event, body, correlation_id in rows])

    @staticmethod
    def _in_index_order(conn):
        """The unpublished rows read in the order of `ix_outbox_unpublished` (published_at, id:
        the id order of those still waiting), stopping at the batch. Right after a bulk write
        (a monthly run's 100,000 events) the table's statistics still say few rows wait, and
        PostgreSQL then chose a bitmap scan of every waiting row and a sort of them all, per
        batch: the relay slowed as the backlog grew (8 s per 10,000 events at 10,000, 29 s at
        100,000). Off for this transaction only."""
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL enable_bitmapscan = off")

    def _settle(self, done, failed=None, confirmed=0, release=None):
        """In one transaction: `done` marked published; of `failed` (a batch whose publish
        failed), its first `confirmed` rows marked published and the rest released, and so is
        `release` (a batch claimed, not sent)."""
        if done is None and failed is None and not (release and release.ids):
            return
        with self.engine.begin() as conn:
            self._mark_published(conn, done)
            if failed is not None:
                self._mark_published(conn, failed, confirmed)
                self._release(conn, failed, confirmed)
            self._release(conn, release)

    # A batch's ids ascend and what went out of it is a prefix, so what is marked or released
    # is a range of the primary key that holds the batch's claim: one statement of the same
    # four parameters whatever the batch's size, rows another relay has taken over left alone.

    def _mark_published(self, conn, batch, count=None):
        """`batch`'s first `count` rows (all by default) marked published."""
        ids = [] if batch is None else batch.ids[:count]
        if ids:
            table = self.table
            conn.execute(update(table).where(table.c.id.between(ids[0], ids[-1]),
                                             table.c.claim == batch.claim)
                         .values(published_at=utcnow()))

    def _release(self, conn, batch, start=0):
        """`batch`'s rows from its `start`th released for any relay to claim."""
        ids = [] if batch is None else batch.ids[start:]
        if ids:
            table = self.table
            conn.execute(update(table).where(table.c.id.between(ids[0], ids[-1]),
                                             table.c.claim == batch.claim,
                                             table.c.published_at.is_(None))
                         .values(claim=None, claimed_at=None))


class Batch(namedtuple("Batch", "claim taken ids messages")):
    """Outbox rows claimed together: the claim's token, when it was taken (monotonic), the rows'
    ids (ascending), and their messages for `ConfirmedPublisher.send`."""


NO_BATCH = Batch(None, 0.0, [], [])


def encode_cursor(value):
    """The opaque, signed cursor of a page that follows `value` (a key or an offset)."""
    payload = _b64encode(json.dumps(value).encode())
    return f"{payload}.{_cursor_signature(payload)}"


def decode_cursor(cursor, kind=str):
    """The value of a cursor this system issued for a list keyed by `kind`; any other cursor is a
    422 naming it. Signed, because a client-made value reaches the query (a dict or a huge offset
    there is a 500, and a key of another list compares across column types)."""
    try:
        payload, _, signature = cursor.partition(".")
        if not hmac.compare_digest(signature.encode(), _cursor_signature(payload).encode()):
            raise ValueError("not signed by this system")
        value = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        if type(value) is not kind:
            raise ValueError("not a cursor of this list")
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValidationFailed("invalid cursor", {"errors": {"cursor": ["not a cursor"]}}) from exc
    return value


def _b64encode(data):
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _cursor_signature(payload):
    return _b64encode(hmac.new(_cursor_key(), payload.encode(), hashlib.sha256).digest()[:16])


@functools.cache
def _cursor_key():
    # Every replica of every service reads the same secret, so any of them takes the cursor
    # another issued; derived, so that a cursor's signature says nothing about the JWT secret.
    secret = str(load_config()["JWT_SECRET"]).encode()
    return hmac.new(secret, b"propdesk pagination cursor", hashlib.sha256).digest()


MAX_PAGE = 200


def page_size(limit):
    """`limit` as an int within 1..MAX_PAGE; a ValidationFailed naming `limit` otherwise."""
    try:
        size = int(limit)
    except (TypeError, ValueError):
        size = 0
    if not 1 <= size <= MAX_PAGE:
        raise ValidationFailed.from_messages({"limit": [f"between 1 and {MAX_PAGE}"]})
    return size


def paginate(session, stmt, id_column, cursor=None, limit=50):
    """Keyset pagination on a unique, creation-ordered id: (rows, next_cursor)."""
    limit = page_size(limit)
    if cursor:
        stmt = stmt.where(id_column > decode_cursor(cursor))
    rows = session.scalars(stmt.order_by(id_column).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (encode_cursor(getattr(rows[-1], id_column.key)) if more else None)


def paginate_ordered(session, stmt, order_column, id_column, key, cursor=None, limit=50,
                     scalars=True):
    """Keyset pagination of a list in another order than creation (a due instant, nulls last,
    then the id): (rows, next_cursor). `key(row)` gives the row's (instant or None, id). A row
    that joins or leaves the list between two pages moves nothing else, as offsets would."""
    limit = page_size(limit)
    if cursor:
        after, after_id = _ordered_position(decode_cursor(cursor, list))
        if after is None:
            stmt = stmt.where(order_column.is_(None), id_column > after_id)
        else:
            stmt = stmt.where(or_(order_column.is_(None), order_column > after,
                                  (order_column == after) & (id_column > after_id)))
    stmt = stmt.order_by(order_column.is_(None), order_column, id_column).limit(limit + 1)
    rows = (session.scalars(stmt) if scalars else session.execute(stmt)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    if not more:
        return rows, None
    instant, last_id = key(rows[-1])
    return rows, encode_cursor([None if instant is None else as_utc(instant).isoformat(), last_id])


def _ordered_position(value):
    try:
        instant, last_id = value
        if not isinstance(last_id, str) or not (instant is None or isinstance(instant, str)):
            raise ValueError
        return (None if instant is None else datetime.fromisoformat(instant)), last_id
    except (TypeError, ValueError) as exc:
        raise ValidationFailed("invalid cursor", {"errors": {"cursor": ["not a cursor"]}}) from exc


def within_sites(stmt, site_column, identity, site=None):
    """Narrow a query to `site` (which the caller must be allowed to see), or else to every
    site the caller sees."""
    if site:
        identity.require_site(site)
        return stmt.where(site_column == site)
    visible = identity.visible_sites()
    return stmt if visible is None else stmt.where(site_column.in_(visible))


COPY_FROM = 100


def bulk_insert(session, table, rows):
    """Insert `rows` (dicts with the same keys) into `table` in the session's transaction. On
    PostgreSQL, from `COPY_FROM` rows on, by COPY: psycopg's executemany sends one INSERT per
    row, about 0.1 ms each in Python, which was most of a monthly run's 10,000 events; multi-row
    VALUES is slower still there (psycopg parses each page's long statement anew)."""
    if not rows:
        return
    if len(rows) < COPY_FROM or session.get_bind().dialect.name != "postgresql":
        session.execute(insert(table), rows)
        return
    connection = session.connection()
    names = list(rows[0])
    as_copied = [_copy_value(table.c[name].type, connection.dialect) for name in names]
    with connection.connection.driver_connection.cursor() as cursor, \
            cursor.copy(f'COPY {table.name} ({", ".join(names)}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row([convert(row[name]) for name, convert in zip(names, as_copied)])


def _copy_value(column_type, dialect):
    """How COPY takes a value of `column_type`: JSON as its text, a TypeDecorator's value as it
    binds it, the rest as psycopg adapts it."""
    if isinstance(column_type, TypeDecorator):
        return lambda value: column_type.process_bind_param(value, dialect)
    if isinstance(column_type, JSON):
        return lambda value: None if value is None else json.dumps(value)
    return lambda value: value


def insert_once(session, stmt):
    """Run an INSERT guarded by a unique constraint; False if the row was already there."""
    try:
        with session.begin_nested():
            session.execute(stmt)
        return True
    except IntegrityError:
        return False
