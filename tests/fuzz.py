"""Schemathesis against the live gateway: every operation of /api/v1/openapi.json called with
generated requests (valid and not) under a head-office token, each answer checked for a 5xx,
an undocumented status or content type, and a body that breaks its documented schema.

    python -m tests.fuzz                      the whole system started for the run (a vhost and
                                              SQLite databases of its own), 10 minutes of fuzzing
    python -m tests.fuzz --url URL --secret S an already running gateway (make up)
    python -m tests.fuzz --max-time 60 --seed 7 --max-examples 5
    python -m tests.fuzz -- --include-path /api/v1/tickets   (anything after -- goes to schemathesis)

Exit status 0 means no failure. `make fuzz` runs the first form; `make test` runs a short,
seeded one (tests/test_fuzz.py)."""
import argparse
import os
import subprocess
import sys
import tempfile

CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance")
BUDGET_SECONDS = 600
ROLE, SITES, SUB = "hq", ["*"], "fuzz-hq"


def schemathesis_command(url, token, *, max_time=None, seed=None, max_examples=None,
                         workers=1, report_dir=None, extra=()):
    command = [os.path.join(os.path.dirname(sys.executable), "schemathesis"), "run",
               f"{url}/api/v1/openapi.json", "--url", url,
               "--checks", ",".join(CHECKS), "-H", f"Authorization: Bearer {token}",
               "--workers", str(workers), "--request-timeout", "30",
               "--suppress-health-check", "all", "--warnings", "off"]
    if max_time:
        command += ["--max-time", str(max_time)]
    if seed is not None:
        command += ["--seed", str(seed), "--generation-deterministic"]
    if max_examples:
        command += ["--max-examples", str(max_examples)]
    if report_dir:
        command += ["--report", "junit", "--report-dir", report_dir]
    return command + list(extra)


def run(url, secret, **options):
    """Run schemathesis against the gateway at `url`; its exit status."""
    from services.gateway.tokens import mint
    token = mint(SUB, ROLE, SITES, secret=secret)
    return subprocess.call(schemathesis_command(url, token, **options))


def run_on_own_system(**options):
    from bench.harness import System
    from bench.harness import Vhost
    secret = "propdesk-fuzz-secret-0123456789abcdef"
    with tempfile.TemporaryDirectory(prefix="propdesk-fuzz-") as workdir, \
            Vhost("propdesk-fuzz") as vhost, \
            System(workdir, vhost.amqp_uri, secret=secret, rpc_timeout=5) as system:
        system.wait_ready()
        status = run(system.url, secret, **options)
        if status:
            print(system.log_tails(), file=sys.stderr)
        return status


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running gateway, e.g. http://127.0.0.1:8000")
    parser.add_argument("--secret", default=os.environ.get("PROPDESK_JWT_SECRET"))
    parser.add_argument("--max-time", type=int, default=BUDGET_SECONDS)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--max-examples", type=int)
    parser.add_argument("--workers", type=int, default=2)
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:len(argv) - len(extra) - bool(extra)] if extra else argv)
    options = dict(max_time=args.max_time, seed=args.seed, max_examples=args.max_examples,
                   workers=args.workers, extra=extra)
    if args.url:
        return run(args.url.rstrip("/"), args.secret, **options)
    return run_on_own_system(**options)


if __name__ == "__main__":
    import eventlet
    eventlet.monkey_patch()
    sys.exit(main())
