"""The monthly billing run and the arrears sweep on PostgreSQL, at 10,000 and 100,000 units with a
year of invoice history each, through the real billing service over RPC.

    .venv/bin/python -m bench.billing [--sizes 10000,100000]

For each size: a fresh PostgreSQL database, migrated, seeded in bulk (COPY) with sites of 10,000
units, a fee schedule each, and twelve monthly invoices per unit (2025-11 … 2026-10); one unit in
twenty is in arrears from a month spread over that year, one in fifty is a major customer. Then
billing runs as its own process (`nameko run`, bench.harness.System) on a vhost of its own, and
over RPC the bench times:
  - the monthly run of 2026-11 for every site (one INSERT … SELECT per site, and a
    `billing.invoice_issued` per invoice written to the outbox by one more INSERT … SELECT,
    the payloads built by PostgreSQL, the contract checked once per shape);
  - until billing's outbox relay has published those events (the bills), before the sweeps
    start, so that the sweeps are not timed while the relay is still publishing;
  - the first sweep at 2026-11-20, which finds the units in arrears in one aggregate query and
    takes their ladder steps (a transaction per 500 units: their steps in one INSERT … SELECT
    from json_to_recordset, their lawsuits in one insert, their events in one outbox write);
  - the same sweep again, with nothing left to do: the set-based query alone.
Prints the time per 10,000 units and the growth 10k → 100k; writes bench/results/billing.md.
"""
import argparse
import signal
import os
import sys
import tempfile
import time
from datetime import date, datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from nameko.standalone.rpc import ClusterRpcProxy  # noqa: E402

from bench.harness import PostgresDatabase, System, Vhost, migrated, write_results  # noqa: E402

UNITS_PER_SITE = 10_000
PERIODS = [f"{2025 + (10 + m) // 12}-{(10 + m) % 12 + 1:02d}" for m in range(12)]  # 2025-11 … 2026-10
RUN_PERIOD, AS_OF = "2026-11", "2026-11-20T09:00:00+08:00"
RATE_FEN = 250   # 2.50 CNY per m² per month
SCHEDULE_BODY = ('{"management_per_m2": {"residential": "2.50"}, "parking_per_month": "150.00", '
                 '"renovation_management": "0.00", "renovation_deposit": "0.00", '
                 '"debris_removal": "0.00", "repair_call_out": "0.00", '
                 '"late_fee_daily_rate": "0.0003", "due_day": 15}')


def sites_for(units):
    return [f"{100 + k:03d}" for k in range(max(1, units // UNITS_PER_SITE))]


def copy(cursor, table, columns, rows):
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as target:
        for row in rows:
            target.write_row(row)


def seed(url, units, history=True, emails=False):
    """Units, schedules and (with `history`) a year of invoices, in bulk; owners with an email
    address as well as a phone number with `emails`."""
    import psycopg
    now = datetime.now(timezone.utc)
    sites = sites_for(units)
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn, conn.cursor() as cur:
        copy(cur, "fee_schedules", ["id", "site", "body", "created_by", "created_at"],
             ((f"bench{site}", site, SCHEDULE_BODY, "bench", now) for site in sites))

        def unit_rows():
            for site in sites:
                for i in range(UNITS_PER_SITE):
                    yield (f"{site}{i:07d}", site, "residential", 5000 + (i * 37) % 10000,
                           i % 50 == 0, True, f"Owner {i}", f"138{i:08d}",
                           f"owner{site}{i:07d}@example.com" if emails else None, now)
        copy(cur, "units", ["code", "site", "usage", "area_centi_m2", "major_customer", "active",
                            "owner_name", "owner_phone", "owner_email", "updated_at"], unit_rows())

        def invoice_rows():
            for site in sites:
                for i in range(UNITS_PER_SITE):
                    code = f"{site}{i:07d}"
                    total = ((5000 + (i * 37) % 10000) * RATE_FEN + 50) // 100
                    unpaid_from = (i // 20) % 12 if i % 20 == 0 else 12
                    for m, period in enumerate(PERIODS):
                        settled = m < unpaid_from
                        yield (f"M{period}-{code}", code, site, period, date.fromisoformat(f"{period}-15"),
                               "monthly", total, total if settled else 0, 0, settled, "{}", now,
                               now if settled else None)
        if history:
            copy(cur, "invoices", ["id", "unit", "site", "period", "due_date", "kind", "total_fen",
                                   "paid_fen", "deposit_fen", "settled", "reference", "created_at",
                                   "settled_at"], invoice_rows())
        conn.commit()
        cur.execute("ANALYZE")
    return sites


def timed(call):
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def measure(units, workdir):
    with Vhost("propdesk-bench") as vhost, PostgresDatabase("propdesk_bench") as database:
        url = migrated("billing", database.url)
        seeded_in, sites = timed(lambda: seed(url, units))
        print(f"  {units:>7} units: seeded {units * len(PERIODS):,} invoices in {seeded_in:.1f} s", flush=True)
        os.makedirs(os.path.join(workdir, str(units)), exist_ok=True)
        system = System(os.path.join(workdir, str(units)), vhost.amqp_uri,
                        db_urls={"billing": url}, services=("billing",))
        system.start()
        try:
            config = {"AMQP_URI": vhost.amqp_uri}
            with ClusterRpcProxy(config, timeout=1800) as rpc:
                _wait_for(rpc)
                run_s, runs = timed(lambda: [rpc.billing.run_billing({"site": s, "period": RUN_PERIOD})
                                             for s in sites])
                relay_s, events = timed(lambda: _wait_for_relay(url))
                sweep_s, swept = timed(lambda: rpc.billing.sweep({"as_of": AS_OF}))
                idle_s, idle = timed(lambda: rpc.billing.sweep({"as_of": AS_OF}))
        finally:
            system.shutdown()
    return {"units": units, "sites": len(sites), "invoices_seeded": units * len(PERIODS),
            "run_s": run_s, "created": sum(r["created"] for r in runs),
            "relay_s": relay_s, "events": events,
            "sweep_s": sweep_s, "arrears_units": swept["units"], "steps": swept["steps"],
            "idle_sweep_s": idle_s, "idle_steps": idle["steps"]}


def _wait_for(rpc, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return rpc.billing.ping()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _wait_for_relay(url, timeout=1800):
    """Until billing's outbox holds nothing unpublished; how many events it published."""
    import psycopg
    deadline = time.monotonic() + timeout
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        while conn.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetchone()[0]:
            if time.monotonic() > deadline:
                raise TimeoutError("billing's outbox relay did not drain")
            time.sleep(0.05)
        return conn.execute("SELECT count(*) FROM outbox").fetchone()[0]


def per_10k(result, key):
    return result[key] / result["units"] * 10_000


def markdown(results):
    lines = [
        "# Billing bench: monthly run and arrears sweep on PostgreSQL",
        "",
        f"`python -m bench.billing` — {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. Twelve months of",
        "invoices per unit seeded in bulk; 1 unit in 20 in arrears (from a month spread over the year),",
        "1 in 50 a major customer. Timed over RPC against the billing service running as its own",
        "process. Absolute times depend on the machine; read the growth. The run writes a",
        "`billing.invoice_issued` per invoice (each validated against its contract) to the outbox;",
        "the relay column is how long billing's outbox relay then took to publish them all.",
        f"Machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end (other",
        "work on the machine inflates the larger size most, as it runs longest).",
        "",
        "| units | invoices seeded | monthly run | per 10k units | its events relayed after it | per 10k units | first sweep (units stepped / steps) | per 10k units | sweep with nothing due | per 10k units |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['units']:,} | {r['invoices_seeded']:,} | {r['run_s']:.2f} s ({r['created']:,} invoices) "
            f"| {per_10k(r, 'run_s'):.2f} s | {r['relay_s']:.2f} s ({r['events']:,} events) "
            f"| {per_10k(r, 'relay_s'):.2f} s | {r['sweep_s']:.2f} s ({r['arrears_units']:,} / {r['steps']:,}) "
            f"| {per_10k(r, 'sweep_s'):.2f} s | {r['idle_sweep_s']:.2f} s | {per_10k(r, 'idle_sweep_s'):.3f} s |")
    if len(results) >= 2:
        small, large = results[0], results[-1]
        factor = large["units"] / small["units"]
        lines += ["", f"Growth {small['units']:,} → {large['units']:,} units (×{factor:g}):"]
        for key, name in (("run_s", "monthly run"), ("relay_s", "its events relayed"),
                          ("sweep_s", "first sweep"),
                          ("idle_sweep_s", "sweep with nothing due")):
            lines.append(f"- {name}: ×{large[key] / small[key]:.1f}")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    # A SIGTERM ends the bench through its `finally`s: billing stopped, database and vhost dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    results = []
    with tempfile.TemporaryDirectory(prefix="propdesk-bench-billing-") as workdir:
        for units in sizes:
            results.append(measure(units, workdir))
            print(f"  {units:>7} units: run {results[-1]['run_s']:.2f} s, relayed "
                  f"{results[-1]['relay_s']:.2f} s, sweep "
                  f"{results[-1]['sweep_s']:.2f} s, idle sweep {results[-1]['idle_sweep_s']:.2f} s", flush=True)
    document = markdown(results)
    write_results("billing.md", document)


if __name__ == "__main__":
    main()
