"""CPU and wall time of opening a repair inside ticketing, without the broker or the gateway:
the service's own `create_ticket` on a real database, a fresh worker per call as Nameko makes
one (`bench.harness.service_workers`), and each statement it runs, measured alone the same way.
A change to the hot path shows here within seconds and with far less noise than `make bench`
(which still says what a client sees: this leaves out the RPC, the gateway and the broker).

    .venv/bin/python -m bench.opening [--db postgres|sqlite|both] [--calls 1000] [--rounds 3]

Each part is timed `--rounds` times over `--calls` calls after a warm-up; the table gives the
best round and the median (CPU is this process's user + system time; wall includes waiting for
the database, its WAL flushes among it). Only the calls and the end of each worker's unit of
work are timed, not the making of the worker. Writes bench/results/opening.md.
"""
import eventlet
eventlet.monkey_patch()  # noqa: E402 — as the services run: psycopg waits through the hub

import argparse  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from sqlalchemy.orm import Session  # noqa: E402

from services.common.auth import Identity  # noqa: E402
from services.common.db import make_engine, new_id  # noqa: E402
from services.ticketing import domain, storage  # noqa: E402
from services.ticketing.service import TicketingService  # noqa: E402
from bench.__main__ import git_commit  # noqa: E402
from bench.harness import (  # noqa: E402
    PostgresDatabase, migrated, repair_payload, service_workers, sqlite_url, write_results,
)

UNIT = "0010101001"
AGENT = Identity(sub="agent-bench", role="agent", sites=("001",)).to_context()
OWNER = {"name": "李伟", "phone": "13800000000", "email": None, "person_id": "p-bench"}


def _cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed(step, calls, rounds, warmup=50):
    """[(cpu µs, wall µs) per call] of each round of `calls` calls of `step(i)`, which returns
    the callable to time (so that what it makes first is not counted)."""
    for i in range(warmup):
        step(i)()
    results = []
    for r in range(rounds):
        cpu = wall = 0.0
        for i in range(calls):
            timed = step(warmup + r * calls + i)
            c0, w0 = _cpu(), time.perf_counter()
            timed()
            cpu, wall = cpu + _cpu() - c0, wall + time.perf_counter() - w0
        results.append((cpu / calls * 1e6, wall / calls * 1e6))
    return results


def measure(url, calls, rounds):
    engine = make_engine(migrated("ticketing", url))
    with Session(engine) as session:
        storage.copy_unit(session, UNIT, "001", "Asia/Shanghai", OWNER,
                          datetime(2026, 1, 1, tzinfo=timezone.utc))
        session.commit()
    now = datetime.now(timezone.utc)
    parts = {}
    # the dependencies opening a known unit's repair does not use, as plain stand-ins: mocks
    # would make more garbage per worker than the call does, and its collection would be timed
    unused = dict(rpc=None, business=None, config={}, metrics=None, working_calendar=None)
    with service_workers(TicketingService, storage.Base, engine, now, **unused) as make:
        def ended(worker, call):
            def timed():
                try:
                    call()
                finally:
                    make.done(worker)
            return timed

        def opening(i):
            worker = make(identity=AGENT)
            return ended(worker, lambda: worker.create_ticket(
                repair_payload(UNIT, f"bench repair {i}")))

        def unit_statement(run):
            def step(i):
                worker = make(identity=AGENT)

                def call():
                    run(worker.uow)
                    worker.uow.commit()
                return ended(worker, call)
            return step

        def ticket(i, mark="B"):
            return domain.Ticket.open_repair(
                id=new_id(), code=f"001-R-{mark}{i:08d}", site="001", timezone="Asia/Shanghai",
                channel="phone", description="bench", received_at=now, now=now,
                first_contact_owner="agent-bench", by_role="agent", policy=domain.SlaPolicy(),
                unit=UNIT, reporter=OWNER)

        def written(i):
            worker, made = make(identity=AGENT), ticket(i)

            def call():
                worker.uow.insert(made)
                worker.uow.commit()
            return ended(worker, call)

        parts["create_ticket (all of it)"] = _timed(opening, calls, rounds)
        parts["the unit's copy and limits"] = _timed(unit_statement(
            lambda uow: storage.opening(uow.autocommit, "001", UNIT)), calls, rounds)
        parts["the number"] = _timed(unit_statement(
            lambda uow: storage.next_serial(uow.autocommit, "001", "B")), calls, rounds)
        parts["building the repair (domain)"] = _timed(lambda i: lambda: ticket(i), calls, rounds)
        parts["the ticket's INSERT"] = _timed(written, calls, rounds)

        def statements(i):
            worker, made = make(identity=AGENT), ticket(i, mark="T")

            def call():
                storage.opening(worker.uow.autocommit, "001", UNIT)
                storage.next_serial(worker.uow.autocommit, "001", "B")
                worker.uow.insert(made)
                worker.uow.commit()
            return ended(worker, call)
        parts["those three statements in one unit"] = _timed(statements, calls, rounds)
    engine.dispose()
    return parts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("postgres", "sqlite", "both"), default="both")
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    lines = ["# Opening a repair inside ticketing (no broker, no gateway)", "",
             f"{datetime.now(timezone.utc).isoformat(timespec='seconds')} · commit {git_commit()} · "
             f"{args.rounds} rounds of {args.calls} calls per row, µs per call, "
             f"best round / median round · load {os.getloadavg()[0]:.2f}", "",
             "| database | part | CPU best | CPU median | wall best | wall median |",
             "|---|---|---:|---:|---:|---:|"]
    for db in (("postgres", "sqlite") if args.db == "both" else (args.db,)):
        if db == "postgres":
            with PostgresDatabase("propdesk_bench_opening") as database:
                parts = measure(database.url, args.calls, args.rounds)
        else:
            with tempfile.TemporaryDirectory() as folder:
                parts = measure(sqlite_url(os.path.join(folder, "ticketing.db")), args.calls,
                                args.rounds)
        for name, rounds in parts.items():
            cpus, walls = [c for c, _ in rounds], [w for _, w in rounds]
            lines.append(f"| {db} | {name} | {min(cpus):.0f} | {statistics.median(cpus):.0f} | "
                         f"{min(walls):.0f} | {statistics.median(walls):.0f} |")
    write_results("opening.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
