"""Throughput and latency of opening a repair through the gateway, against a baseline measured
in the same run: a bare Nameko echo through the same gateway to the same service.

    .venv/bin/python -m bench [--db sqlite|postgres] [--requests 300] [--warmup 20]
                              [--concurrency 1,16] [--echo-service ticketing]

Starts the whole system as `make run` does (bench.harness.System: one `nameko run` per service,
on a RabbitMQ vhost of its own, SQLite files by default or fresh PostgreSQL databases), creates
a site and a unit, then for each concurrency level runs client threads, each with its own
requests.Session, that first warm up and then send a fixed share of the requests. Prints a
table and writes bench/results/latest.json and latest.md. Exits 1 if any request failed.
Absolute figures depend on the machine; compare the ratios.
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
    SERVICES, PostgresDatabase, repair_payload, site_payload, System, unit_payload, Vhost,
)

RESULTS_DIR = os.path.join(ROOT, "bench", "results")
SITE, UNIT = "001", "0010101001"
ERROR_SAMPLES = 5


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite",
                        help="SQLite files (as `make run`) or fresh PostgreSQL databases")
    parser.add_argument("--requests", type=int, default=300, help="measured requests per level")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured requests per level")
    parser.add_argument("--concurrency", default="1,16", help="comma-separated client threads")
    parser.add_argument("--echo-service", default="ticketing",
                        help="whose echo is the baseline (default: the service that opens repairs)")
    parser.add_argument("--out", default=RESULTS_DIR, help="where latest.json and latest.md go")
    args = parser.parse_args(argv)
    try:
        args.levels = [int(level) for level in args.concurrency.split(",")]
    except ValueError:
        parser.error("--concurrency: comma-separated integers, e.g. 1,16")
    if any(level < 1 for level in args.levels) or args.requests < 1 or args.warmup < 0:
        parser.error("--concurrency levels and --requests must be positive, --warmup not negative")
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
    return summarise(latencies, failures, wall)


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


def run(args):
    with ExitStack() as stack:
        vhost = stack.enter_context(Vhost("propdesk-bench"))
        workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="propdesk-bench-"))
        db_urls = {}
        if args.db == "postgres":
            db_urls = {service: stack.enter_context(PostgresDatabase(f"propdesk_bench_{service}")).url
                       for service in SERVICES}
        system = System(workdir, vhost.amqp_uri, db_urls=db_urls)
        stack.callback(system.shutdown)
        say(f"starting the system ({args.db}) ...")
        system.start().wait_ready()
        head_office = system.client("hq", ["*"], sub="bench-hq")
        for path, body in (("/sites", site_payload(SITE)), ("/units", unit_payload(UNIT, "13812345678"))):
            response = head_office.post(path, body)
            if response.status_code != 201:
                raise SystemExit(f"bench setup: POST {path} answered {response.status_code} {response.text}")

        results = {}
        for level in args.levels:
            for name, (headers, path, body) in operations(system, args.echo_service).items():
                say(f"{name} at concurrency {level}: {args.requests} requests ...")
                results[f"{name}@{level}"] = {"operation": name, "concurrency": level, **measure(
                    system.url + "/api/v1" + path, headers, body, args.requests, args.warmup, level)}
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
            "db": args.db, "requests_per_level": args.requests, "warmup_per_level": args.warmup,
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
        f"Python {meta['python']} · {meta['requests_per_level']} requests per row after "
        f"{meta['warmup_per_level']} warm-up · baseline: `{meta['echo_service']}.echo` via "
        "POST /api/v1/admin/echo", "",
        "| operation | clients | req/s | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in document["results"]:
        lines.append(f"| {row['operation']} | {row['concurrency']} | {row['throughput_rps']} | "
                     f"{row['p50_ms']} | {row['p99_ms']} | {row['errors']} |")
    lines += ["", "Repair relative to echo (same run, same gateway, same service):", "",
              "| clients | throughput ratio | p50 ratio | p99 ratio |", "|---:|---:|---:|---:|"]
    for level, r in document["ratios_repair_to_echo"].items():
        lines.append(f"| {level} | {r['throughput']} | {r['p50']} | {r['p99']} |")
    return "\n".join(lines) + "\n"


def git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write(out, document):
    os.makedirs(out, exist_ok=True)
    for name, text in (("latest.json", json.dumps(document, indent=2) + "\n"),
                       ("latest.md", markdown(document))):
        temporary = os.path.join(out, name + ".tmp")
        with open(temporary, "w") as handle:
            handle.write(text)
        os.replace(temporary, os.path.join(out, name))


def say(message):
    print(f"bench: {message}", file=sys.stderr, flush=True)


def main(argv=None):
    args = parse_args(argv)
    document = report(args, run(args))
    write(args.out, document)
    print(markdown(document))
    say(f"written to {os.path.join(args.out, 'latest.json')} and latest.md")
    errors = sum(row["errors"] for row in document["results"])
    if errors:
        say(f"{errors} requests failed (samples in latest.json): the figures are not comparable")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
