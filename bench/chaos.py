"""Fault injection: repair flows through the gateway while processes are killed with SIGKILL at
random moments and the broker goes away, counting what a client or an auditor would notice.

    .venv/bin/python -m bench.chaos [--flows 1000] [--clients 8] [--kill-every 4]
                                    [--outages 2] [--db sqlite|postgres]

The whole system runs as processes (bench.harness.System) on a vhost of its own, reaching
RabbitMQ through a BrokerLink: a broker "restart" cuts that link for 5-30 s (connections drop,
new ones are refused), as stop_app/start_app would, without stopping the RabbitMQ others share.
A supervisor here restarts a killed process after a back-off, as the launcher or Kubernetes
would; no one restarts anything by hand. Each client takes its flows from open to completed,
every POST with its own Idempotency-Key, retrying 503s, in-flight 409s and dropped connections
with the same key. Afterwards every POST is sent once more with its key and compared with its
first answer. Counts printed (target 0 each, except flows and kills):

    flows, kills, outages, client-visible failures, tickets created twice for one key,
    retries answered differently, callback messages lost, callback messages duplicated,
    events left unpublished
"""
import eventlet
eventlet.monkey_patch()  # noqa: E402 — the BrokerLink and the clients are green threads

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import sqlite3  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import Counter  # noqa: E402
from contextlib import ExitStack  # noqa: E402

import requests  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.harness import (  # noqa: E402
    AGENT, CALLBACK_EVENT, REPAIR_TO_COMPLETION, SERVICES, SUB_OF_ROLE, BrokerLink,
    PostgresDatabase, System, Vhost, repair_payload, site_payload, unit_payload,
)

SITE = "001"
SECRET = "propdesk-chaos-secret-0123456789abcdef"
RETRYABLE = {502, 503, 504}
GIVE_UP_SECONDS = 180
BAD = ("client-visible failures", "tickets created twice for one key",
       "retries answered differently", "callback messages lost", "callback messages duplicated",
       "events left unpublished")


class Client:
    """One caller's requests with retries on the same key; every first answer kept."""

    def __init__(self, system, role, sub, stats, answers):
        self.system, self.stats, self.answers = system, stats, answers
        self.headers = system.headers(role, [SITE], sub=sub)

    def post(self, path, body):
        key = uuid.uuid4().hex
        deadline = time.monotonic() + GIVE_UP_SECONDS
        while time.monotonic() < deadline:
            try:
                response = requests.post(self.system.url + "/api/v1" + path, json=body,
                                         headers={**self.headers, "Idempotency-Key": key},
                                         timeout=30)
            except requests.RequestException:
                self.stats["retries"] += 1
                time.sleep(1)
                continue
            in_flight = response.status_code == 409 and "in-flight" in response.text
            if response.status_code in RETRYABLE or in_flight:
                self.stats["retries"] += 1
                time.sleep(0.5 if in_flight else 1)
                continue
            self.answers.append((self.headers, path, body, key, response.status_code,
                                 response.json()))
            return response
        return None


def flow(system, unit, n, stats, answers):
    desk = Client(system, "agent", AGENT, stats, answers)
    description = f"chaos repair {n} {uuid.uuid4().hex[:6]}"
    opened = desk.post("/tickets", repair_payload(unit, description))
    if opened is None or opened.status_code != 201:
        stats["client-visible failures"] += 1
        return None
    ticket_id = opened.json()["id"]
    for action, payload, role in REPAIR_TO_COMPLETION:
        step = Client(system, role, SUB_OF_ROLE.get(role, role), stats, answers).post(
            f"/tickets/{ticket_id}/{action}", payload)
        if step is None or step.status_code != 200:
            stats["client-visible failures"] += 1
            return None
    stats["flows"] += 1
    return ticket_id, description


def supervise(system, stats, stop):
    """Restart whatever died, with a short back-off, as the launcher does."""
    while not stop.ready():
        for service in system.services:
            if not system.running(service):
                eventlet.sleep(1)
                system.start_service(service)
                stats["restarts"] += 1
        eventlet.sleep(0.5)


def kill_at_random(system, stats, stop, every):
    while not stop.ready():
        eventlet.sleep(random.uniform(0.5 * every, 1.5 * every))
        service = random.choice(system.services)
        if system.running(service):
            system.kill(service)
            stats["kills"] += 1
            stats[f"kills of {service}"] += 1


def cut_broker(link, stats, stop, outages, spacing):
    for _ in range(outages):
        eventlet.sleep(spacing)
        if stop.ready():
            return
        seconds = random.uniform(5, 30)
        link.cut()
        stats["outages"] += 1
        stats["outage seconds"] += round(seconds)
        eventlet.sleep(seconds)
        link.restore()


def audit(system, done, answers, stats):
    hq = system.headers("hq", ["*"], sub="chaos-hq")
    tickets, cursor = [], None
    while True:
        params = {"limit": 200, "site": SITE, **({"cursor": cursor} if cursor else {})}
        page = requests.get(system.url + "/api/v1/tickets", params=params, headers=hq, timeout=30).json()
        tickets += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    by_description = Counter(t["description"] for t in tickets)
    stats["tickets created twice for one key"] = sum(n - 1 for n in by_description.values() if n > 1)
    supervisor = system.headers("supervisor", [SITE], sub="chaos-supervisor")
    time.sleep(10)   # the outbox relays and notifications settle
    for ticket_id, _ in done:
        messages = requests.get(system.url + "/api/v1/messages", params={"ticket_id": ticket_id},
                                headers=supervisor, timeout=30).json()["items"]
        channels = Counter(m["channel"] for m in messages if m["event"] == CALLBACK_EVENT)
        for channel in ("staff", "sms"):
            if channels[channel] == 0:
                stats["callback messages lost"] += 1
            stats["callback messages duplicated"] += max(0, channels[channel] - 1)
    for headers, path, body, key, status, first in answers:
        again = requests.post(system.url + "/api/v1" + path, json=body,
                              headers={**headers, "Idempotency-Key": key}, timeout=30)
        if again.status_code != status or again.json() != first:
            stats["retries answered differently"] += 1
    stats["events left unpublished"] = unpublished(system)


def unpublished(system):
    total = 0
    for service in system.services:
        url = system.db_urls[service]
        if url.startswith("sqlite"):
            with sqlite3.connect(url.split("///", 1)[1]) as conn:
                total += conn.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetchone()[0]
        else:
            from sqlalchemy import create_engine, text
            engine = create_engine(url)
            with engine.connect() as conn:
                total += conn.execute(text("SELECT count(*) FROM outbox WHERE published_at IS NULL")).scalar()
            engine.dispose()
    return total


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flows", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--units", type=int, default=20)
    parser.add_argument("--kill-every", type=float, default=4.0, help="mean seconds between kills")
    parser.add_argument("--outages", type=int, default=2)
    parser.add_argument("--outage-spacing", type=float, default=60.0)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    random.seed(args.seed)
    stats, answers = Counter(), []
    for counted in (*BAD, "flows", "kills", "outages", "retries"):
        stats[counted] = 0
    link = BrokerLink().restore()
    with ExitStack() as stack:
        workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="propdesk-chaos-"))
        vhost = stack.enter_context(Vhost("propdesk-chaos"))
        db_urls = None
        if args.db == "postgres":
            db_urls = {s: stack.enter_context(PostgresDatabase(f"chaos_{s}")).url for s in SERVICES}
        system = stack.enter_context(System(workdir, vhost.amqp_uri_at(link.server), db_urls=db_urls,
                                            secret=SECRET, rpc_timeout=5, outbox_poll_seconds=1))
        system.wait_ready(90)
        hq = system.headers("hq", ["*"], sub="chaos-hq")
        requests.post(system.url + "/api/v1/sites", json=site_payload(SITE), headers=hq, timeout=30)
        units = [f"{SITE}01{n // 100 + 1:02d}{n % 100 + 1:03d}" for n in range(args.units)]
        for n, unit in enumerate(units):
            requests.post(system.url + "/api/v1/units", json=unit_payload(unit, f"138{n:08d}"),
                          headers=hq, timeout=30)
        stop = eventlet.event.Event()
        chaos = [eventlet.spawn(supervise, system, stats, stop),
                 eventlet.spawn(kill_at_random, system, stats, stop, args.kill_every),
                 eventlet.spawn(cut_broker, link, stats, stop, args.outages, args.outage_spacing)]
        started = time.monotonic()
        pool = eventlet.GreenPool(args.clients)
        done = [r for r in pool.imap(lambda n: flow(system, units[n % len(units)], n, stats, answers),
                                     range(args.flows)) if r]
        stop.send(True)
        for thread in chaos:
            thread.kill()
        if link.listener is None:   # stopped in the middle of an outage
            link.restore()
        stats["seconds driving"] = round(time.monotonic() - started)
        system.revive()
        audit(system, done, answers, stats)
    link.cut()
    report = {"db": args.db, **dict(sorted(stats.items()))}
    print(json.dumps(report, indent=2))
    return 1 if any(report[k] for k in BAD) else 0


if __name__ == "__main__":
    sys.exit(main())
