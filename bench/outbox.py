"""The outbox relay against a bare kombu publish-with-confirms loop, in the same run, on the same
broker, to the same routed durable queue.

    .venv/bin/python -m bench.outbox [--events 100000] [--backends sqlite,postgresql]

For each backend: a fresh registry database (SQLite file or PostgreSQL), migrated, its outbox
filled in bulk with `--events` committed `registry.unit_changed` events; a vhost of its own
with a durable queue bound to `registry.events` (so every message is routed and persisted, as
it is when a service listens). Times:
  - baseline: kombu's Producer with `confirm_publish` (what Nameko's Publisher does), one
    message and one confirm at a time, `--events` messages of the same body;
  - the relay: `OutboxRelay.flush()` until nothing is left (it drains: claims a batch, sends
    it, claims the next while the broker confirms it, marks it published), as the relay's
    thread runs it.
Prints events per second and the ratio; writes bench/results/outbox.md.
"""
import argparse
import os
import sys
import tempfile
import time
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import eventlet  # noqa: E402

eventlet.monkey_patch()

from kombu import Connection, Exchange, Producer, Queue  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from services.common import contracts  # noqa: E402
from services.common.db import OutboxRelay, make_engine  # noqa: E402
from services.registry.storage import Base  # noqa: E402
from bench.harness import PostgresDatabase, Vhost, migrated, sqlite_url, write_results  # noqa: E402

SERVICE = "registry"
CHUNK = 10_000


def body(i):
    return contracts.envelope("registry.unit_changed",
                              {"unit": f"001{i:07d}", "change": "updated"}, site="001",
                              occurred_at=datetime.now(timezone.utc), correlation_id="bench")


def fill_outbox(engine, table, events):
    now = datetime.now(timezone.utc)
    for start in range(0, events, CHUNK):
        rows = [body(i) for i in range(start, min(events, start + CHUNK))]
        with engine.begin() as conn:
            conn.execute(insert(table), [{"event_id": b["id"], "event": b["event"], "body": b,
                                          "created_at": now} for b in rows])


def bind_queue(amqp_uri):
    """A durable queue taking every registry event, so that publishing routes and persists."""
    exchange = Exchange(f"{SERVICE}.events", type="topic", durable=True)
    with Connection(amqp_uri) as conn:
        queue = Queue("bench-outbox", exchange=exchange, routing_key="#", durable=True)
        queue(conn.channel()).declare()
    return exchange, queue


def purge(amqp_uri, queue):
    with Connection(amqp_uri) as conn:
        return queue(conn.channel()).purge()


def baseline(amqp_uri, exchange, events):
    payload = body(0)
    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as conn:
        producer = Producer(conn.channel(), exchange=exchange)
        started = time.perf_counter()
        for _ in range(events):
            producer.publish(payload, routing_key="unit_changed", delivery_mode=2,
                             serializer="json", headers={"nameko.correlation_id": "bench"})
        return time.perf_counter() - started


def relay_run(url, amqp_uri, events):
    engine = make_engine(url)
    table = Base.metadata.tables["outbox"]
    fill_outbox(engine, table, events)
    relay = OutboxRelay(engine, table, {"AMQP_URI": amqp_uri}, SERVICE)
    started = time.perf_counter()
    published = 0
    while True:
        sent = relay.flush()
        published += sent
        if sent == 0:
            break
    elapsed = time.perf_counter() - started
    relay.stop()
    engine.dispose()
    assert published == events, (published, events)
    return elapsed


def measure(backend, events, workdir):
    with Vhost("propdesk-bench") as vhost:
        exchange, queue = bind_queue(vhost.amqp_uri)
        base_s = baseline(vhost.amqp_uri, exchange, events)
        assert purge(vhost.amqp_uri, queue) == events
        if backend == "sqlite":
            relay_s = relay_run(migrated(SERVICE, sqlite_url(os.path.join(workdir, "outbox.db"))),
                                vhost.amqp_uri, events)
        else:
            with PostgresDatabase("propdesk_bench") as database:
                relay_s = relay_run(migrated(SERVICE, database.url), vhost.amqp_uri, events)
        assert purge(vhost.amqp_uri, queue) == events
    return {"backend": backend, "events": events, "baseline_s": base_s, "relay_s": relay_s}


def markdown(results):
    lines = ["# Outbox relay bench", "",
             f"`python -m bench.outbox` — {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. Committed "
             "events in a registry outbox, relayed to a routed durable queue; the baseline is a bare "
             "kombu publish-with-confirms loop (one confirm per message, as Nameko's Publisher) on "
             "the same broker in the same run.", "",
             "| backend | events | baseline | baseline events/s | relay | relay events/s | relay / baseline |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['backend']} | {r['events']:,} | {r['baseline_s']:.1f} s "
                     f"| {r['events'] / r['baseline_s']:,.0f} | {r['relay_s']:.1f} s "
                     f"| {r['events'] / r['relay_s']:,.0f} | {r['baseline_s'] / r['relay_s']:.2f} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        for backend in args.backends.split(","):
            result = measure(backend, args.events, workdir)
            print(f"{backend}: baseline {args.events / result['baseline_s']:,.0f}/s, "
                  f"relay {args.events / result['relay_s']:,.0f}/s", flush=True)
            results.append(result)
    text = markdown(results)
    write_results("outbox.md", text)


if __name__ == "__main__":
    main()
