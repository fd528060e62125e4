"""Throughput and latency of opening a repair through the gateway, against a baseline measured
in the same run: a bare Nameko echo through the same gateway to the same service.

    .venv/bin/python -m bench [--db sqlite|postgres] [--requests 300] [--warmup 20]
                              [--rounds 3] [--concurrency 1,16] [--echo-service ticketing]
                              [--replicas ticketing=2]

Starts the whole system as `make run` does (bench.harness.System: one `nameko run` per service,
on a RabbitMQ vhost of its own, SQLite files by default or fresh PostgreSQL databases), creates
a site and a unit, then for each concurrency level runs client threads, each with its own
requests.Session, that first warm up and then send a fixed share of the requests. Echo and
repair take turns, `--rounds` times per level, and each one's rounds are pooled: on a shared
machine a burst of other work then weighs on both rather than on whichever ran during it.
Prints a table, with the CPU each process spent per request, and writes
bench/results/latest.json and latest.md. Exits 1 if any request failed. Absolute figures
depend on the machine; compare the ratios.

With `--replicas service=n[,...]` the same measurements run four times, back to back on fresh
systems: one process per service, then n processes of each service named (the gateway runs
once), twice, then one process each again (A-B-B-A, so a changing load weighs on both sides);
the table says what the extra replicas add: throughput with them / without, each side the mean
of its two runs. Written to bench/results/replicas.json and replicas.md instead.
"""
import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from datetime import datetime, timezone

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.harness import (  # noqa: E402
    SERVICES, CpuMeter, PostgresDatabase, repair_payload, site_payload, System, unit_payload, Vhost,
)

RESULTS_DIR = os.path.join(ROOT, "bench", "results")
SITE, UNIT = "001", "0010101001"
ERROR_SAMPLES = 5
SETTLE_SECONDS = 1.0


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite",
                        help="SQLite files (as `make run`) or fresh PostgreSQL databases")
    parser.add_argument("--requests", type=int, default=300, help="measured requests per round")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured requests per round")
    parser.add_argument("--rounds", type=int, default=3,
                        help="echo and repair alternate this many times per level, pooled")
    parser.add_argument("--concurrency", default="1,16", help="comma-separated client threads")
    parser.add_argument("--echo-service", default="ticketing",
                        help="whose echo is the baseline (default: the service that opens repairs)")
    parser.add_argument("--out", default=RESULTS_DIR, help="where latest.json and latest.md go")
    parser.add_argument("--replicas", default="",
                        help="e.g. ticketing=2: measure with one of each, then with these replicas")
    args = parser.parse_args(argv)
    try:
        args.replica_counts = {name: int(count) for name, count in (
            item.split("=", 1) for item in args.replicas.split(",") if item)}
    except ValueError:
        parser.error("--replicas: service=count[,...], e.g. ticketing=2")
    unknown = set(args.replica_counts) - (set(SERVICES) - {"gateway"})
    if unknown or any(count < 1 for count in args.replica_counts.values()):
        parser.error(f"--replicas: counts of at least 1 of services other than the gateway "
                     f"({', '.join(sorted(unknown)) or 'a count below 1'})")
    try:
        args.levels = [int(level) for level in args.concurrency.split(",")]
    except ValueError:
        parser.error("--concurrency: comma-separated integers, e.g. 1,16")
    if any(level < 1 for level in args.levels) or args.requests < 1 or args.warmup < 0 \
            or args.rounds < 1:
        parser.error("--concurrency levels, --requests and --rounds must be positive, "
                     "--warmup not negative")
    return args


def operations(system, echo_service):
    """name -> (headers, path, body of the i-th request)."""
    ops = system.headers("ops_admin", ["*"], sub="bench-ops")
    desk = system.headers("agent", [SITE], sub="bench-agent")
    return {
        "echo": (ops, "/admin/echo", lambda i: {"service": echo_service, "payload": {"n": i}}),
        "repair": (desk, "/tickets", lambda i: repair_payload(UNIT, f"bench repair {i}")),
    }


def measure(url, headers, body, total, warmup, concurrency):
    """Send `total` POSTs from `concurrency` threads (after `warmup`, spread over them)."""
    shares = [total // concurrency + (n < total % concurrency) for n in range(concurrency)]
    warm = [warmup // concurrency + (n < warmup % concurrency) for n in range(concurrency)]
    latencies, failures = [], []
    lock = threading.Lock()
    start = threading.Barrier(concurrency + 1)

    def client(thread, count, warm_count):
        with requests.Session() as session:
            session.headers.update(headers)
            for i in range(warm_count):
                session.post(url, json=body(f"warm-{thread}-{i}"), timeout=30)
            start.wait()
            for i in range(count):
                began = time.perf_counter()
                try:
                    response = session.post(url, json=body(f"{thread}-{i}"), timeout=30)
                    failed = None if response.status_code < 300 else (
                        response.status_code, response.text[:200])
                except Exception as exc:  # a failed request is counted, not fatal to the run
                    failed = ("exception", repr(exc)[:200])
                elapsed = time.perf_counter() - began
                with lock:
                    if failed:
                        failures.append(failed)
                    else:
                        latencies.append(elapsed)

    threads = [threading.Thread(target=client, args=(n, shares[n], warm[n]), daemon=True)
               for n in range(concurrency)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    return latencies, failures, wall


def summarise(latencies, failures, wall):
    ordered = sorted(latencies)
    return {
        "requests": len(latencies) + len(failures),
        "errors": len(failures),
        "error_samples": [list(f) for f in failures[:ERROR_SAMPLES]],
        "seconds": round(wall, 3),
        "throughput_rps": round(len(latencies) / wall, 1) if wall else None,
        "p50_ms": percentile_ms(ordered, 50),
        "p99_ms": percentile_ms(ordered, 99),
    }


def percentile_ms(ordered, p):
    """Nearest-rank percentile of sorted seconds, in milliseconds."""
    if not ordered:
        return None
    return round(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] * 1000, 2)


def ratio(numerator, denominator):
    return round(numerator / denominator, 2) if numerator and denominator else None


def run(args, replicas=None):
    with ExitStack() as stack:
        vhost = stack.enter_context(Vhost("propdesk-bench"))
        workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="propdesk-bench-"))
        databases = {}
        if args.db == "postgres":
            databases = {service: stack.enter_context(PostgresDatabase(f"propdesk_bench_{service}"))
                         for service in SERVICES}
        system = System(workdir, vhost.amqp_uri, replicas=replicas,
                        db_urls={service: database.url for service, database in databases.items()})
        meter = CpuMeter(system, [database.name for database in databases.values()])
        stack.callback(system.shutdown)
        say(f"starting the system ({args.db}, replicas {replicas or 'one each'}) ...")
        system.start().wait_ready()
        head_office = system.client("hq", ["*"], sub="bench-hq")
        for path, body in (("/sites", site_payload(SITE)), ("/units", unit_payload(UNIT, "13812345678"))):
            response = head_office.post(path, body)
            if response.status_code != 201:
                raise SystemExit(f"bench setup: POST {path} answered {response.status_code} {response.text}")

        results = {}
        for level in args.levels:
            pooled = {}
            for round_ in range(1, args.rounds + 1):
                for name, (headers, path, body) in operations(system, args.echo_service).items():
                    say(f"{name} at concurrency {level}, round {round_} of {args.rounds}: "
                        f"{args.requests} requests ...")
                    before = meter.taken()
                    latencies, failures, wall = measure(system.url + "/api/v1" + path, headers,
                                                        body, args.requests, args.warmup, level)
                    time.sleep(SETTLE_SECONDS)  # what the requests set off (events, relay) counts too
                    spent = CpuMeter.spent(before, meter.taken())
                    into = pooled.setdefault(name, {"latencies": [], "failures": [], "wall": 0.0,
                                                    "rounds_rps": [], "cpu": {}})
                    into["latencies"] += latencies
                    into["failures"] += failures
                    into["wall"] += wall
                    into["rounds_rps"].append(round(len(latencies) / wall, 1) if wall else None)
                    for group, seconds in spent.items():
                        into["cpu"][group] = into["cpu"].get(group, 0.0) + seconds
            for name, into in pooled.items():
                results[f"{name}@{level}"] = {
                    "operation": name, "concurrency": level,
                    **summarise(into["latencies"], into["failures"], into["wall"]),
                    "rounds_rps": into["rounds_rps"],
                    "cpu_ms_per_request": CpuMeter.per_request_ms(
                        into["cpu"], args.rounds * (args.requests + args.warmup))}
    return results


def report(args, results):
    ratios = {}
    for level in args.levels:
        echo, repair = results[f"echo@{level}"], results[f"repair@{level}"]
        ratios[str(level)] = {
            "throughput": ratio(repair["throughput_rps"], echo["throughput_rps"]),
            "p50": ratio(repair["p50_ms"], echo["p50_ms"]),
            "p99": ratio(repair["p99_ms"], echo["p99_ms"]),
        }
    return {
        "meta": {
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "db": args.db, "requests_per_round": args.requests, "warmup_per_round": args.warmup,
            "rounds": args.rounds,
            "concurrency": args.levels, "echo_service": args.echo_service,
            "commit": git_commit(), "python": platform.python_version(),
            "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        },
        "results": list(results.values()),
        "ratios_repair_to_echo": ratios,
    }


def markdown(document):
    meta = document["meta"]
    lines = [
        "# propdesk bench: opening a repair vs. a bare echo through the gateway", "",
        f"{meta['finished_at']} · commit {meta['commit']} · {meta['db']} · {meta['machine']} · "
        f"Python {meta['python']} · {meta['rounds']} rounds of {meta['requests_per_round']} "
        f"requests per row, each after {meta['warmup_per_round']} warm-up, echo and repair "
        f"taking turns · baseline: `{meta['echo_service']}.echo` via POST /api/v1/admin/echo", "",
        "| operation | clients | req/s | each round's req/s | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in document["results"]:
        lines.append(f"| {row['operation']} | {row['concurrency']} | {row['throughput_rps']} | "
                     f"{' / '.join(map(str, row.get('rounds_rps', [])))} | "
                     f"{row['p50_ms']} | {row['p99_ms']} | {row['errors']} |")
    lines += ["", "Repair relative to echo (same run, same gateway, same service):", "",
              "| clients | throughput ratio | p50 ratio | p99 ratio |", "|---:|---:|---:|---:|"]
    for level, r in document["ratios_repair_to_echo"].items():
        lines.append(f"| {level} | {r['throughput']} | {r['p50']} | {r['p99']} |")
    lines += cpu_table(document["results"])
    return "\n".join(lines) + "\n"


def cpu_table(results):
    """CPU milliseconds per request of each process group, one column per row of the bench:
    on a machine whose cores are all busy, throughput is what these add up to."""
    rows = [row for row in results if row.get("cpu_ms_per_request")]
    if not rows:
        return []
    groups = sorted({name for row in rows for name in row["cpu_ms_per_request"]},
                    key=lambda name: -max(row["cpu_ms_per_request"].get(name, 0) for row in rows))
    lines = ["", "CPU per request, ms (user + system, warm-up included, and what the requests set off "
             f"in the {SETTLE_SECONDS:g} s after; `broker` is the whole RabbitMQ node, shared with "
             "anything else on it; `client` is this bench's own threads):", "",
             "| process | " + " | ".join(f"{row['operation']}@{row['concurrency']}" for row in rows) + " |",
             "|---|" + "---:|" * len(rows)]
    for name in groups:
        lines.append(f"| {name} | " + " | ".join(
            str(row["cpu_ms_per_request"].get(name, 0.0)) for row in rows) + " |")
    lines.append("| **total** | " + " | ".join(
        str(round(sum(row["cpu_ms_per_request"].values()), 2)) for row in rows) + " |")
    return lines


def git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write(out, name, document, text):
    os.makedirs(out, exist_ok=True)
    for filename, content in ((f"{name}.json", json.dumps(document, indent=2) + "\n"),
                              (f"{name}.md", text)):
        temporary = os.path.join(out, filename + ".tmp")
        with open(temporary, "w") as handle:
            handle.write(content)
        os.replace(temporary, os.path.join(out, filename))


def say(message):
    print(f"bench: {message}", file=sys.stderr, flush=True)


def combined(runs):
    """Rows of several runs of the same configuration: mean throughput and percentiles."""
    rows = []
    for same in zip(*(run["results"] for run in runs)):
        row = dict(same[0])
        for field in ("throughput_rps", "p50_ms", "p99_ms"):
            values = [r[field] for r in same if r[field] is not None]
            row[field] = round(sum(values) / len(values), 2) if values else None
        row["errors"] = sum(r["errors"] for r in same)
        row["runs"] = [r["throughput_rps"] for r in same]
        rows.append(row)
    return {"meta": runs[0]["meta"], "results": rows, "ratios_repair_to_echo": {}}


def replicas_report(args, singles, scaleds):
    """The runs in A-B-B-A order (so a load that rises or falls during the bench weighs on both
    sides alike) and what the replicas add, per operation and level."""
    single, scaled = combined(singles), combined(scaleds)
    gains = {f"{row['operation']}@{row['concurrency']}": ratio(
                 scaled["results"][index]["throughput_rps"], row["throughput_rps"])
             for index, row in enumerate(single["results"])}
    return {"meta": {**scaleds[-1]["meta"], "replicas": args.replica_counts,
                     "order": "one each, replicas, replicas, one each"},
            "one_each": single, "with_replicas": scaled, "throughput_gain": gains,
            "runs": {"one_each": singles, "with_replicas": scaleds}}


def replicas_markdown(document):
    counts = ", ".join(f"{name}={count}" for name, count in document["meta"]["replicas"].items())
    lines = [f"# propdesk bench with replicas ({counts}) against one process each", "",
             f"{document['meta']['finished_at']} · commit {document['meta']['commit']} · "
             f"{document['meta']['db']} · {document['meta']['machine']}", "",
             "Four fresh systems measured back to back in one run, in the order one process "
             "each, with the replicas, with the replicas, one process each; each side is the "
             "mean of its two runs (their throughputs in brackets). The gain is the throughput "
             "with the replicas divided by the throughput with one process each.", "",
             "| operation | clients | one each req/s | with replicas req/s | gain | "
             "p99 ms one each | p99 ms with replicas |", "|---|---:|---:|---:|---:|---:|---:|"]
    for single, scaled in zip(document["one_each"]["results"], document["with_replicas"]["results"]):
        key = f"{single['operation']}@{single['concurrency']}"
        lines.append(f"| {single['operation']} | {single['concurrency']} | "
                     f"{single['throughput_rps']} ({' / '.join(map(str, single['runs']))}) | "
                     f"{scaled['throughput_rps']} ({' / '.join(map(str, scaled['runs']))}) | "
                     f"{document['throughput_gain'][key]} | {single['p99_ms']} | {scaled['p99_ms']} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    if args.replica_counts:
        runs = [report(args, run(args, replicas)) for replicas in
                (None, args.replica_counts, args.replica_counts, None)]
        singles, scaleds = [runs[0], runs[3]], [runs[1], runs[2]]
        document, name = replicas_report(args, singles, scaleds), "replicas"
        text = replicas_markdown(document)
        results = [row for one in runs for row in one["results"]]
    else:
        document, name = report(args, run(args)), "latest"
        text, results = markdown(document), document["results"]
    write(args.out, name, document, text)
    print(text)
    say(f"written to {os.path.join(args.out, name + '.json')} and {name}.md")
    errors = sum(row["errors"] for row in results)
    if errors:
        say(f"{errors} requests failed (samples in latest.json): the figures are not comparable")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
