"""Run propdesk on this machine: one `nameko run` process per service (and per replica).

    .venv/bin/python deploy/local/launch.py [--only registry,gateway] [--replicas ticketing=2]
                                            [--logdir var/log] [--config config.yml]

Each process gets WEB_SERVER_ADDRESS=<host>:<port> (its /metrics; the gateway's API). Output is
prefixed with the process name, or written to <logdir>/<name>.log. SIGINT/SIGTERM stop every
process gracefully (a second signal kills them); if one dies on its own, the others are stopped
and the launcher exits non-zero, naming it. Standard library only.
"""
import argparse
import os
import signal
import subprocess
import sys
import threading
import time

# Every service `make run` starts, in start order (the gateway last, so /ready comes up green).
from services.common import SERVICES  # import-light: no Nameko, no eventlet

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

METRICS_PORTS = {"registry": 8101, "ticketing": 8102, "notifications": 8103,
                 "renovation": 8104, "billing": 8105}
# Replica n (from 0) of a service serves /metrics on its port + n * REPLICA_PORT_STEP.
REPLICA_PORT_STEP = 10
# How long nameko may take to finish running workers before it is killed.
STOP_GRACE_SECONDS = 20


def port_of(service, replica):
    if service == "gateway":
        return int(os.environ.get("PROPDESK_GATEWAY_PORT", "8000"))
    return METRICS_PORTS[service] + replica * REPLICA_PORT_STEP


def plan(services, replicas):
    """[(process name, service, port)] for every process to start."""
    processes = []
    for service in services:
        for replica in range(replicas.get(service, 1)):
            name = service if replica == 0 else f"{service}-{replica + 1}"
            processes.append((name, service, port_of(service, replica)))
    return processes


class Supervisor:
    def __init__(self, config, host, logdir):
        self.config, self.host, self.logdir = config, host, logdir
        self.children = {}  # name -> Popen
        self.relays = []
        self.stopping = None  # monotonic time the stop began

    def start(self, name, service, port):
        nameko = os.path.join(os.path.dirname(sys.executable), "nameko")
        command = [nameko, "run", "--config", self.config, f"services.{service}.service"]
        env = dict(os.environ, WEB_SERVER_ADDRESS=f"{self.host}:{port}", PYTHONUNBUFFERED="1")
        # Own session: a terminal's Ctrl-C reaches only us, and each child is stopped exactly once.
        options = dict(cwd=ROOT, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
        if self.logdir:
            with open(os.path.join(self.logdir, f"{name}.log"), "ab") as log:
                child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, **options)
        else:
            child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     **options)
            relay = threading.Thread(target=self._relay, args=(name, child.stdout), daemon=True)
            relay.start()
            self.relays.append(relay)
        self.children[name] = child
        say(f"{name} started (pid {child.pid}) on {self.host}:{port}")

    def _relay(self, name, stream):
        for line in iter(stream.readline, b""):
            sys.stdout.write(f"{name:<15}| {line.decode(errors='replace')}")
            sys.stdout.flush()

    def stop(self, signum=None, _frame=None):
        if self.stopping is None:
            self.stopping = time.monotonic()
            self._signal_all(signal.SIGTERM)
        elif signum is not None:
            say("second signal: killing every service")
            self._signal_all(signal.SIGKILL)

    def _signal_all(self, signum):
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signum)

    def supervise(self):
        """Wait until every child has exited; the exit status of the launcher."""
        failed = []
        while any(child.poll() is None for child in self.children.values()):
            if self.stopping is None:
                failed = [(n, c.returncode) for n, c in self.children.items() if c.poll() is not None]
                if failed:
                    for name, code in failed:
                        say(f"{name} exited unexpectedly with status {code}; stopping the others")
                    self.stop()
            elif time.monotonic() - self.stopping > STOP_GRACE_SECONDS:
                say(f"still running after {STOP_GRACE_SECONDS}s: killing")
                self._signal_all(signal.SIGKILL)
            time.sleep(0.2)
        if self.stopping is None:  # all of them exited before any stop was asked for
            failed = [(n, c.returncode) for n, c in self.children.items()]
            for name, code in failed:
                say(f"{name} exited unexpectedly with status {code}")
        for relay in self.relays:  # the last lines each child wrote
            relay.join(timeout=1)
        return 1 if failed else 0


def say(message):
    print(f"launch: {message}", file=sys.stderr, flush=True)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated services to run (default: all)")
    parser.add_argument("--replicas", action="append", default=[], metavar="SERVICE=N",
                        help="run N processes of SERVICE (repeatable; not the gateway)")
    parser.add_argument("--logdir", help="write <logdir>/<process>.log instead of prefixed output")
    parser.add_argument("--config", default=os.environ.get("PROPDESK_CONFIG", "config.yml"))
    parser.add_argument("--host", default="127.0.0.1", help="address every process binds")
    args = parser.parse_args(argv)

    args.services = args.only.split(",") if args.only else SERVICES
    unknown = [s for s in args.services if s != "gateway" and s not in METRICS_PORTS]
    if unknown:
        parser.error(f"unknown service(s): {', '.join(unknown)}")
    replicas = {}
    for spec in args.replicas:
        service, _, count = spec.partition("=")
        if service not in args.services or not count.isdigit() or int(count) < 1:
            parser.error(f"--replicas {spec}: expected SERVICE=N for a service being run")
        if service == "gateway" and int(count) > 1:
            parser.error("the gateway runs once per port; set PROPDESK_GATEWAY_PORT for another")
        replicas[service] = int(count)
    args.plan = plan(args.services, replicas)
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.logdir:
        os.makedirs(args.logdir, exist_ok=True)
    supervisor = Supervisor(args.config, args.host, args.logdir)
    # Handlers first: children must not inherit an ignored SIGINT from a background shell.
    signal.signal(signal.SIGINT, supervisor.stop)
    signal.signal(signal.SIGTERM, supervisor.stop)
    for name, service, port in args.plan:
        if supervisor.stopping is None:
            supervisor.start(name, service, port)
    status = supervisor.supervise()
    say("stopped" if status == 0 else "stopped after a failure")
    return status


if __name__ == "__main__":
    sys.exit(main())
