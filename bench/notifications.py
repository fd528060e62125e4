"""The notifications service's two sweeps on PostgreSQL: the warranty-expiry sweep over 10,000
and 100,000 units, and the delivery sweep draining an SMS backlog through the HTTP provider.

    .venv/bin/python -m bench.notifications [--sizes 10000,100000] [--backlog-sizes 2000,10000]
                                            [--repeats 3]

Each size gets a fresh PostgreSQL database migrated to head and filled in bulk (COPY); the
service is driven as in its tests (services/notifications/tests/support.py `workers`): a fresh
worker per call, made with nameko's worker_factory on that database, as ops_admin.

- Warranty sweep, nothing due: N units whose warranty ends between 33 days and 5 years after
  the as-of day, none within the month the sweep looks at → `sweep({"as_of": ...})`.
- Warranty sweep, 1% due: one unit in a hundred then ends a month after the as-of day (its
  reminder day is the as-of day) → the first sweep (makes the reminders and sends them with the
  store-only provider), then a second sweep the same day (nothing new). Between repeats the
  reminders are deleted and the units made unreminded again.
- Delivery sweep draining a backlog: N pending SMS (next attempt an hour or less before the
  as-of instant) → `deliver(as_of)` called until a call sends nothing, through the `http`
  provider to a local SmsEndpoint (services.notifications.sinks) in this process, and the same
  backlog through the store-only provider as the baseline.

Every figure is the median of `--repeats` runs. Writes bench/results/notifications.md.
"""
import argparse
import os
import signal
import statistics
import sys
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import eventlet
# The service runs monkey-patched, as under `nameko run` and in its tests.
eventlet.monkey_patch()  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import requests  # noqa: E402

from bench.__main__ import git_commit  # noqa: E402
from bench.billing import copy, per_10k, timed  # noqa: E402
from services.common.calendar import shift_months  # noqa: E402
from services.common.db import make_engine  # noqa: E402
from services.notifications.sinks import SmsEndpoint  # noqa: E402
from bench.harness import (  # noqa: E402
    PostgresDatabase, migrated, notifications_workers, write_results,
)

SH = "Asia/Shanghai"
AS_OF = datetime(2027, 3, 15, 10, 0, tzinfo=ZoneInfo(SH))   # 02:00 UTC, the same day
TODAY = AS_OF.date()
REMINDER_DUE = shift_months(TODAY, 1)      # reminder day = a month before = TODAY
FIRST_NOT_DUE = TODAY + timedelta(days=33)  # past the sweep's window (a month and a day)
FIVE_YEARS = 5 * 365
DUE_EVERY = 100                            # 1%
CHEAP_REPEATS = 10                         # for the sweep that takes milliseconds
BARE_POSTS = 500
OPS = {"sub": "ops", "role": "ops_admin", "sites": ["*"]}
SMS_BODY = "【物业】您好，您报修的厨房水管已修好，如有问题请致电物业服务中心。"
STORE_ONLY = {}


def call(engine, method, *args, settings=STORE_ONLY):
    """One RPC as Nameko runs it: a fresh worker, its unit of work closed after."""
    with notifications_workers(engine, AS_OF.astimezone(timezone.utc)) as make:
        return getattr(make(settings=settings, now=AS_OF.astimezone(timezone.utc), identity=OPS),
                       method)(*args)


@contextmanager
def database(service):
    with PostgresDatabase("propdesk_bench") as db:
        url = migrated(service, db.url)
        engine = make_engine(url)
        try:
            yield url, engine
        finally:
            engine.dispose()


def connect(url, **options):
    import psycopg
    return psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), **options)


def sql(url, *statements):
    """Each statement on its own (autocommit: VACUUM needs it); the rows of the last."""
    with connect(url, autocommit=True) as conn:
        for statement in statements:
            cursor = conn.execute(statement)
        return cursor.fetchall() if cursor.description else None


def median_of(repeats, measure):
    return statistics.median(measure() for _ in range(repeats))


# -- warranty sweep --------------------------------------------------------------------------

def seed_warranties(url, units):
    """`units` warranties ending between FIRST_NOT_DUE and five years after TODAY, none due."""
    now = datetime.now(timezone.utc)
    with connect(url) as conn, conn.cursor() as cur:
        copy(cur, "warranties", ["unit", "site", "timezone", "warranty_until", "owner_name",
                                 "owner_phone", "person_id", "updated_at"],
             ((f"{100 + i // 10_000:03d}{i % 10_000:07d}", f"{100 + i // 10_000:03d}", SH,
               FIRST_NOT_DUE + timedelta(days=i * (FIVE_YEARS - 33) // units),
               f"业主{i}", f"138{i:08d}", f"p{i:010d}", now) for i in range(units)))
    sql(url, "VACUUM ANALYZE warranties")


def make_one_in_a_hundred_due(url):
    sql(url, f"UPDATE warranties SET warranty_until = '{REMINDER_DUE}' "
             f"WHERE right(unit, 7)::int % {DUE_EVERY} = 0",
        "VACUUM ANALYZE warranties")


def forget_reminders(url):
    sql(url, "DELETE FROM messages", "DELETE FROM delivery_attempts",
        "UPDATE warranties SET reminded_for = NULL WHERE reminded_for IS NOT NULL",
        "VACUUM ANALYZE")


def timed_sweep(engine, expect):
    seconds, found = timed(lambda: call(engine, "sweep", {"as_of": AS_OF.isoformat()}))
    assert (found["warranty_reminders"], found["sent"]) == (expect, expect), found
    return seconds


def first_and_second_sweep(url, engine, due):
    forget_reminders(url)
    first = timed_sweep(engine, due)
    return first, timed_sweep(engine, 0)


def measure_warranty_sweeps(units, repeats):
    with database("notifications") as (url, engine):
        seeded, _ = timed(lambda: seed_warranties(url, units))
        timed_sweep(engine, 0)   # warm-up: the pool's first connection, the templates
        nothing_due = median_of(CHEAP_REPEATS, lambda: timed_sweep(engine, 0))
        make_one_in_a_hundred_due(url)
        due = units // DUE_EVERY
        runs = [first_and_second_sweep(url, engine, due) for _ in range(repeats)]
        plan = sql(url, "EXPLAIN " + WARRANTY_QUERY)
    result = {"units": units, "due": due, "seed_s": seeded, "nothing_due_s": nothing_due,
              "first_s": statistics.median(r[0] for r in runs),
              "second_s": statistics.median(r[1] for r in runs),
              "plan": " / ".join(line.strip(" ->").split("  (cost")[0] for (line,) in plan
                                 if "Scan" in line or "Cond" in line)}
    print(f"  {units:>7,} units: nothing due {nothing_due * 1000:.1f} ms, first sweep "
          f"{result['first_s']:.2f} s ({due:,} reminders), second {result['second_s'] * 1000:.1f} ms",
          flush=True)
    return result


# The sweep's query, written out for EXPLAIN (services/notifications/service.py _remind_warranties).
WARRANTY_QUERY = (
    "SELECT * FROM warranties WHERE warranty_until BETWEEN "
    f"'{TODAY - timedelta(days=1)}' AND '{shift_months(TODAY, 1) + timedelta(days=1)}' "
    "AND (reminded_for IS NULL OR reminded_for != warranty_until) ORDER BY unit")


# -- delivery sweep ------------------------------------------------------------------------------

def seed_backlog(url, messages):
    """`messages` pending SMS, due over the hour before AS_OF (an outage's backlog)."""
    now = AS_OF.astimezone(timezone.utc)
    with connect(url) as conn, conn.cursor() as cur:
        copy(cur, "messages", ["id", "channel", "recipient", "person_id", "event", "event_id",
                               "template", "body", "status", "attempts", "unit", "site",
                               "timezone", "created_at", "next_attempt_at"],
             ((f"bench{i:019d}", "sms", f"139{i:08d}", f"p{i:010d}", "billing.invoice_paid",
               f"bench-event-{i:010d}", "payment_received", SMS_BODY, "pending", 0,
               f"100{i:07d}", "100", SH, now - timedelta(hours=1),
               now - timedelta(seconds=3600 * (messages - i) / messages)) for i in range(messages)))
    sql(url, "VACUUM ANALYZE messages")


def drain(engine, settings):
    """`deliver` until a call sends nothing: (messages sent, calls made)."""
    sent = calls = 0
    while True:
        counts = call(engine, "deliver", AS_OF.isoformat(), settings=settings)
        calls += 1
        assert counts["failed"] == counts["dead"] == 0, counts
        if not counts["sent"]:
            return sent, calls
        sent += counts["sent"]


def timed_drain(url, engine, messages, settings):
    sql(url, "TRUNCATE messages, delivery_attempts")
    seed_backlog(url, messages)
    seconds, (sent, calls) = timed(lambda: drain(engine, settings))
    assert sent == messages, (sent, messages)
    return seconds, calls


def bare_round_trip(endpoint):
    """Seconds per POST of one SMS straight to the endpoint, as HttpSms sends it (no service)."""
    seconds, _ = timed(lambda: [requests.post(endpoint.url, json={"to": "13900000000", "text": SMS_BODY},
                                              timeout=10) for _ in range(BARE_POSTS)])
    endpoint.received.clear()
    return seconds / BARE_POSTS


def measure_backlog(messages, repeats, delay, at_once):
    """Drain the backlog store-only and over http, sequentially (one send at a time, as the
    sweep sent before its bounded pool: the baseline of the same run) and `at_once` at a time."""
    endpoint = SmsEndpoint(delay=delay).start()
    result = {"messages": messages, "delay_ms": delay * 1000, "at_once": at_once}
    try:
        result["bare_post_s"] = bare_round_trip(endpoint)
        with database("notifications") as (url, engine):
            for name, settings in (("store", STORE_ONLY),
                                   ("http", {"sms_provider": "http", "sms_http_url": endpoint.url})):
                for pool, sends in (("seq", 1), ("pool", at_once)):
                    runs = [timed_drain(url, engine, messages, {**settings, "sends_at_once": sends})
                            for _ in range(repeats)]
                    result[f"{name}_{pool}_s"] = statistics.median(seconds for seconds, _ in runs)
                    result[f"{name}_{pool}_calls"] = runs[0][1]
    finally:
        endpoint.close()
    assert len(endpoint.received) == 2 * messages * repeats, len(endpoint.received)
    print(f"  {messages:>7,} pending SMS: store-only {messages / result['store_pool_s']:.0f}/s "
          f"(sequential {messages / result['store_seq_s']:.0f}/s), http {messages / result['http_pool_s']:.0f}/s "
          f"(sequential {messages / result['http_seq_s']:.0f}/s)", flush=True)
    return result


# -- report --------------------------------------------------------------------------------------

def growth(results, key, size_key):
    small, large = results[0], results[-1]
    return (f"×{large[key] / small[key]:.1f} for ×{large[size_key] / small[size_key]:g} "
            f"{size_key}")


def markdown(sweeps, backlogs, repeats):
    lines = [
        "# Notifications bench: warranty sweep and delivery sweep on PostgreSQL",
        "",
        f"`python -m bench.notifications` — {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. Each figure",
        f"the median of {repeats} runs ({CHEAP_REPEATS} for the sweep with nothing due, after one unmeasured);",
        "a fresh worker per call, as Nameko makes one per RPC (worker_factory, monkey-patched as under",
        "`nameko run`), on a fresh database filled in bulk. Absolute times depend on the machine; read",
        f"the growth. Machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end.",
        f"Commit {git_commit()}.",
    ]
    if sweeps:
        lines += warranty_markdown(sweeps)
    lines += delivery_markdown(backlogs)
    return "\n".join(lines) + "\n"


def warranty_markdown(sweeps):
    lines = [
        "",
        "## Warranty sweep (`sweep` as ops_admin)",
        "",
        "| units | nothing due | per 10k units | 1% due: first sweep (reminders made and sent) "
        "| per 10k units | second sweep, same day | per 10k units |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sweeps:
        lines.append(
            f"| {r['units']:,} | {r['nothing_due_s'] * 1000:.1f} ms | {per_10k(r, 'nothing_due_s') * 1000:.2f} ms "
            f"| {r['first_s']:.2f} s ({r['due']:,}) | {per_10k(r, 'first_s'):.2f} s "
            f"| {r['second_s'] * 1000:.1f} ms | {per_10k(r, 'second_s') * 1000:.2f} ms |")
    if len(sweeps) >= 2:
        lines += ["", f"Growth {sweeps[0]['units']:,} → {sweeps[-1]['units']:,} units:"]
        for key, name in (("nothing_due_s", "nothing due"), ("first_s", "first sweep, 1% due"),
                          ("second_s", "second sweep")):
            lines.append(f"- {name}: {growth(sweeps, key, 'units')}")
    return lines + ["", f"Plan of the sweep's query at {sweeps[-1]['units']:,} units: `{sweeps[-1]['plan']}`"]


def delivery_markdown(backlogs):
    lines = [
        "",
        "## Delivery sweep draining a backlog of pending SMS (`deliver` until it sends nothing)",
        "",
        "Each message has an owner (person id), whose opt-outs are looked up once per claimed batch;",
        "attempts are recorded and committed as their sends end. Baseline, in the same run: the same",
        "drain one send at a time (`sends_at_once` 1, the sweep before its bounded pool). http POSTs",
        "each to a local SmsEndpoint in this process that waits the delay below before answering.",
        "",
        "| pending SMS | sends at once | store-only: messages/s (time, calls) | sequential | ratio "
        "| http, endpoint delay: messages/s (time, calls) | sequential | ratio | a bare POST |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in backlogs:
        n = r["messages"]
        lines.append(
            f"| {n:,} | {r['at_once']} | {n / r['store_pool_s']:.0f} ({r['store_pool_s']:.1f} s, "
            f"{r['store_pool_calls']}) | {n / r['store_seq_s']:.0f} | ×{r['store_seq_s'] / r['store_pool_s']:.2f} "
            f"| {r['delay_ms']:.0f} ms: {n / r['http_pool_s']:.0f} ({r['http_pool_s']:.1f} s, "
            f"{r['http_pool_calls']}) | {n / r['http_seq_s']:.0f} | ×{r['http_seq_s'] / r['http_pool_s']:.2f} "
            f"| {r['bare_post_s'] * 1000:.1f} ms |")
    if len(backlogs) >= 2:
        lines += ["", f"Growth {backlogs[0]['messages']:,} → {backlogs[-1]['messages']:,} messages:"]
        for key, name in (("store_pool_s", "store-only"), ("http_pool_s", "http")):
            lines.append(f"- {name}: {growth(backlogs, key, 'messages')}")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.notifications",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="units in `warranties`")
    parser.add_argument("--backlog-sizes", default="2000,10000", help="pending SMS to drain")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--delay", type=float, default=50.0,
                        help="milliseconds the local SMS endpoint takes to answer")
    parser.add_argument("--sends-at-once", type=int, default=32,
                        help="the delivery sweep's bound on sends in flight")
    args = parser.parse_args(argv)
    # A SIGTERM ends the bench through its `finally`s: databases dropped, endpoint closed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sweeps = [measure_warranty_sweeps(int(n), args.repeats) for n in args.sizes.split(",") if n]
    backlogs = [measure_backlog(int(n), args.repeats, args.delay / 1000, args.sends_at_once)
                for n in args.backlog_sizes.split(",")]
    document = markdown(sweeps, backlogs, args.repeats)
    write_results("notifications.md", document)


if __name__ == "__main__":
    main()
