"""An operator's busiest day on PostgreSQL, end to end: the monthly billing run → its events
relayed → the bills made by notifications → delivered (store-only), at 10,000 and 100,000 units.

    .venv/bin/python -m bench.billing_day [--sizes 10000,100000]

For each size: fresh PostgreSQL databases for billing and notifications, billing's seeded in
bulk (units with an owner's phone and email, a fee schedule per site of 10,000 units, no invoice
history), both services running as their own processes (`nameko run`, bench.harness.System) on
a vhost of their own. Then, timed from the first RPC:
  - run: `run_billing` for every site (the invoices, and a `billing.invoice_issued` each, written);
  - relayed: until billing's outbox has published every event;
  - made: until notifications has made the bill's SMS and email of every invoice;
  - delivered: `deliver` until no message is pending (store-only providers; the service's own
    15 s timer delivers too).
Each stage ends when its own work is done; the stages overlap (notifications makes bills while
the relay is still publishing), so each one's time is counted from the end of the one before.
At the end, the resident set size of each service process (/proc/<pid>/status VmRSS).
Writes bench/results/billing_day.md.
"""
import argparse
import os
import signal
import sys
import tempfile
import time
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import psycopg  # noqa: E402
from nameko.standalone.rpc import ClusterRpcProxy  # noqa: E402

from bench.__main__ import git_commit  # noqa: E402
from bench.billing import RUN_PERIOD, per_10k, seed  # noqa: E402
from bench.harness import PostgresDatabase, System, Vhost, migrated, write_results  # noqa: E402

SERVICES = ("billing", "notifications")
STAGES = ("run", "relayed", "made", "delivered")
CHANNELS_PER_BILL = 2          # the bill goes by SMS and by email (000)
TIMEOUT = 3600


def measure(units, workdir):
    with Vhost("propdesk-bench-day") as vhost, \
            PostgresDatabase("propdesk_bench_day_billing") as billing_db, \
            PostgresDatabase("propdesk_bench_day_notifications") as notifications_db:
        urls = {"billing": migrated("billing", billing_db.url),
                "notifications": migrated("notifications", notifications_db.url)}
        sites = seed(urls["billing"], units, history=False, emails=True)
        print(f"  {units:>7,} units seeded in {len(sites)} sites", flush=True)
        os.makedirs(os.path.join(workdir, str(units)), exist_ok=True)
        system = System(os.path.join(workdir, str(units)), vhost.amqp_uri, db_urls=urls,
                        services=SERVICES)
        system.start()
        try:
            with ClusterRpcProxy({"AMQP_URI": vhost.amqp_uri}, timeout=TIMEOUT) as rpc, \
                    connect(urls["billing"]) as billing, \
                    connect(urls["notifications"]) as notifications:
                wait_for(lambda: all(getattr(rpc, s).ping() for s in SERVICES))
                ends, started = {}, time.perf_counter()
                invoices = sum(rpc.billing.run_billing({"site": site, "period": RUN_PERIOD})["created"]
                               for site in sites)
                ends["run"] = time.perf_counter()
                wait_for(lambda: not count(billing, "SELECT count(*) FROM outbox WHERE published_at IS NULL"))
                ends["relayed"] = time.perf_counter()
                bills = invoices * CHANNELS_PER_BILL
                wait_for(lambda: count(notifications, "SELECT count(*) FROM messages "
                                       "WHERE event = 'billing.invoice_issued'") >= bills)
                ends["made"] = time.perf_counter()
                wait_for(lambda: rpc.notifications.deliver() is not None and not count(
                    notifications, "SELECT count(*) FROM messages WHERE status = 'pending'"), pause=0)
                ends["delivered"] = time.perf_counter()
                sent = count(notifications, "SELECT count(*) FROM messages WHERE status = 'sent'")
            rss = {service: rss_mb(system.processes[service].pid) for service in SERVICES}
        finally:
            system.shutdown()
    previous, stages = started, {}
    for stage in STAGES:
        stages[stage] = ends[stage] - previous
        previous = ends[stage]
    return {"units": units, "invoices": invoices, "messages": bills, "sent": sent,
            **{f"{stage}_s": seconds for stage, seconds in stages.items()},
            "total_s": ends["delivered"] - started, "rss_mb": rss}


def connect(url):
    return psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True)


def count(conn, query):
    return conn.execute(query).fetchone()[0]


def wait_for(done, pause=0.05, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if done():
                return
        except Exception:          # a service still starting
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise TimeoutError("the stage did not finish")
        time.sleep(pause or 0.001)


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None


def markdown(results):
    lines = [
        "# Billing day bench: monthly run → relayed → bills made → delivered, on PostgreSQL", "",
        f"`python -m bench.billing_day` — {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, commit "
        f"{git_commit()}. billing and notifications each as its own process; each stage timed from "
        "the end of the one before (they overlap: bills are made while the relay still publishes), "
        "delivery store-only. Absolute times depend on the machine (2 CPUs shared with other "
        f"work; load average {os.getloadavg()[0]:.1f} at the end); read the growth.", "",
        "| units | invoices | monthly run | relayed | bills made (messages) | delivered (sent) "
        "| end to end | per 10k units | RSS billing | RSS notifications |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['units']:,} | {r['invoices']:,} | {r['run_s']:.1f} s | {r['relayed_s']:.1f} s "
            f"| {r['made_s']:.1f} s ({r['messages']:,}) | {r['delivered_s']:.1f} s ({r['sent']:,}) "
            f"| {r['total_s']:.1f} s | {per_10k(r, 'total_s'):.1f} s "
            f"| {r['rss_mb']['billing']:.0f} MB | {r['rss_mb']['notifications']:.0f} MB |")
    if len(results) >= 2:
        small, large = results[0], results[-1]
        lines += ["", f"Growth {small['units']:,} → {large['units']:,} units "
                      f"(×{large['units'] / small['units']:g}):"]
        for key in [f"{stage}_s" for stage in STAGES] + ["total_s"]:
            lines.append(f"- {key[:-2]}: ×{large[key] / small[key]:.1f}")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.billing_day",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    args = parser.parse_args(argv)
    # A SIGTERM ends the bench through its `finally`s: services stopped, databases dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    results = []
    with tempfile.TemporaryDirectory(prefix="propdesk-bench-day-") as workdir:
        for units in (int(size) for size in args.sizes.split(",")):
            results.append(measure(units, workdir))
            r = results[-1]
            print(f"  {units:>7,} units: " + ", ".join(f"{s} {r[f'{s}_s']:.1f} s" for s in STAGES)
                  + f"; RSS {r['rss_mb']}", flush=True)
    document = markdown(results)
    write_results("billing_day.md", document)


if __name__ == "__main__":
    main()
