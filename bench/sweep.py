"""How the ticketing sweep scales with the number of open tickets, on PostgreSQL.

    .venv/bin/python -m bench.sweep [--sizes 10000,100000] [--due-share 0.01]

For each size: a fresh PostgreSQL database migrated to head, that many open B complaints bulk
inserted through ticketing's storage (every one received on a Friday at 16:00, its route
deadline an hour later), and a real ticketing container (on a RabbitMQ vhost of its own) whose `sweep` entry
point is timed in three passes:

- `steady`: as of Friday 16:30, when only `--due-share` of the tickets (received earlier) have
  a route deadline past due and the rest are within the hour before theirs, so warned of
  (超时预警): work proportional to what is due;
- `all due`: as of Saturday 09:00, every ticket's route deadline has passed: one breach, one
  event and one row written per ticket (the worst case);
- `idle`: the same instant again: nothing left to find (the index answers at once).

Writes bench/results/sweep.json and sweep.md: seconds per pass, time per 10,000 tickets swept,
and growth from the smallest to the largest size (1.0 = linear in tickets processed).
"""
import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import eventlet
eventlet.monkey_patch()  # noqa: E402 — nameko containers in this process, as in `nameko run`

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from nameko.cli.run import import_service  # noqa: E402
from nameko.containers import ServiceContainer  # noqa: E402
from nameko.testing.services import entrypoint_hook  # noqa: E402

from services.common.config import load_config  # noqa: E402
from services.common.db import insert_rows, make_engine, row_of  # noqa: E402
from services.ticketing.domain import SlaPolicy  # noqa: E402
from services.ticketing.storage import Ticket  # noqa: E402  (the domain class, mapped)
from bench.harness import PostgresDatabase, Vhost, free_port, migrated  # noqa: E402

RESULTS_DIR = os.path.join(ROOT, "bench", "results")
SH = ZoneInfo("Asia/Shanghai")
# A Friday far enough ahead that the service's own timer (sweeping at the real now) finds
# nothing of the bench's and only the timed passes do the work.
FRIDAY_1600 = datetime(2027, 11, 19, 16, 0, tzinfo=SH)
STEADY = FRIDAY_1600 + timedelta(minutes=30)
ALL_DUE = FRIDAY_1600 + timedelta(hours=17)
INSERT_CHUNK = 5000


def open_complaints(count, due_share):
    early = int(count * due_share)
    template = Ticket.open_complaint(
        id="x", site="001", serial=1, timezone="Asia/Shanghai", channel="phone",
        description="bench", received_at=FRIDAY_1600, now=FRIDAY_1600,
        first_contact_owner="agent-bench", by_role="agent", policy=SlaPolicy(),
        severity="B", category="GC")
    row = row_of(template)
    rows = []
    for n in range(count):
        received = FRIDAY_1600 - timedelta(hours=2) if n < early else FRIDAY_1600
        route_due = received + timedelta(hours=1)
        rows.append({**row, "id": f"bench{n:010d}", "code": f"001-B-GC-{n + 1:07d}",
                     "received_at": received, "next_due_at": route_due,
                     "sweep_due_at": route_due - timedelta(hours=1),     # its warning
                     "deadlines": {**row["deadlines"], "route": route_due.astimezone(ZoneInfo("UTC")).isoformat()}})
    return rows


def seed(url, rows):
    engine = make_engine(url)
    with engine.begin() as conn:
        for start in range(0, len(rows), INSERT_CHUNK):
            insert_rows(conn, Ticket, rows[start:start + INSERT_CHUNK])
        conn.exec_driver_sql("ANALYZE tickets")
        conn.exec_driver_sql("ANALYZE ticket_sweeps")
    engine.dispose()


def timed_sweep(container, as_of):
    started = time.perf_counter()
    with entrypoint_hook(container, "sweep", timeout=3600) as sweep:
        found = sweep({"as_of": as_of.isoformat()})
    return time.perf_counter() - started, found


def drained(url, timeout=600):
    """Wait until the relay has published every event the last pass wrote, so that the next
    pass is timed with its own relaying only, not the one before's."""
    engine = make_engine(url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                if not conn.exec_driver_sql(
                        "SELECT count(*) FROM outbox WHERE published_at IS NULL").scalar():
                    return
            eventlet.sleep(0.2)
        raise RuntimeError("the outbox did not drain")
    finally:
        engine.dispose()


def measure(size, due_share):
    with Vhost("propdesk-bench") as vhost, PostgresDatabase("propdesk_bench") as database:
        url = migrated("ticketing", database.url)
        t0 = time.perf_counter()
        seed(url, open_complaints(size, due_share))
        seeded = time.perf_counter() - t0
        config = load_config(AMQP_URI=vhost.amqp_uri,
                             DB_URIS={"ticketing": url, "registry": "sqlite://"},
                             WEB_SERVER_ADDRESS=f"127.0.0.1:{free_port()}")
        [service_cls] = import_service("services.ticketing.service")
        container = ServiceContainer(service_cls, config)
        container.start()
        try:
            steady, steady_found = timed_sweep(container, STEADY)
            drained(url)
            all_due, all_found = timed_sweep(container, ALL_DUE)
            drained(url)
            idle, idle_found = timed_sweep(container, ALL_DUE)
        finally:
            container.stop()
    assert all_found["breaches"] + steady_found["breaches"] == size and idle_found["breaches"] == 0
    return {"open_tickets": size, "seed_seconds": round(seeded, 2),
            "steady": {"due": steady_found["breaches"], "warned": steady_found.get("warnings", 0),
                       "seconds": round(steady, 3)},
            "all_due": {"due": all_found["breaches"], "seconds": round(all_due, 3),
                        "seconds_per_10k": round(all_due / all_found["breaches"] * 10000, 3)},
            "idle": {"seconds": round(idle, 4)}}


def write(results, out):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "sweep.json"), "w") as handle:
        json.dump(results, handle, indent=2)
    lines = ["| open tickets | steady pass (due / warned / s) | all due (s) | s per 10,000 swept | idle pass (s) |",
             "|---:|---:|---:|---:|---:|"]
    for r in results["sizes"]:
        lines.append(f"| {r['open_tickets']:,} | {r['steady']['due']:,} / {r['steady'].get('warned', 0):,} / "
                     f"{r['steady']['seconds']} | "
                     f"{r['all_due']['seconds']} | {r['all_due']['seconds_per_10k']} | {r['idle']['seconds']} |")
    lines.append("")
    lines.append(f"growth of the all-due pass, smallest → largest size: "
                 f"{results['growth_all_due']}× time for {results['growth_tickets']}× tickets")
    with open(os.path.join(out, "sweep.md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def _commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--due-share", type=float, default=0.01)
    parser.add_argument("--out", default=RESULTS_DIR)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {"measured_at": datetime.now(ZoneInfo("UTC")).isoformat(), "db": "postgresql",
               "commit": _commit(),
               "sizes": [measure(size, args.due_share) for size in sizes]}
    first, last = results["sizes"][0], results["sizes"][-1]
    results["growth_tickets"] = round(last["open_tickets"] / first["open_tickets"], 1)
    results["growth_all_due"] = round(last["all_due"]["seconds"] / first["all_due"]["seconds"], 2)
    write(results, args.out)


if __name__ == "__main__":
    main()
