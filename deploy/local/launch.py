"""Run propdesk on this machine: one `nameko run` process per service (and per replica).

    .venv/bin/python deploy/local/launch.py [--only registry,gateway] [--replicas ticketing=2]
                                            [--logdir var/log] [--config config.yml]

Each process gets WEB_SERVER_ADDRESS=<host>:<port> (its /metrics; the gateway's API). Output is
prefixed with the process name, or written to <logdir>/<name>.log. SIGINT/SIGTERM stop every
process gracefully (a second signal kills them). A process that dies on its own (a crash, a
kill -9, a broker outage it could not ride out) is started again after a back-off that doubles
from 1 s to 30 s and resets once it has stayed up a minute, as Kubernetes restarts a pod; the
others keep running. Standard library only.
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
                 "renovation": 8104, "billing": 8105, "frontdesk": 8106}
# Replica n (from 0) of a service serves /metrics on its port + n * REPLICA_PORT_STEP.
REPLICA_PORT_STEP = 10
# How long nameko may take to finish running workers before it is killed.
STOP_GRACE_SECONDS = 20
# A crashed process waits this long before its restart, doubled after each crash in a row.
RESTART_BACKOFF_SECONDS = (1, 30)
# Up this long, a process counts as healthy again: its next crash waits the shortest back-off.
HEALTHY_AFTER_SECONDS = 60


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
    def __init__(self, config, host, logdir, env=None):
        self.config, self.host, self.logdir = config, host, logdir
        self.env = os.environ if env is None else env  # what every child is started with
        self.children = {}  # name -> Popen
        self.specs = {}     # name -> (service, port), to start it again
        self.started_at = {}
        self.crashes = {}   # name -> crashes in a row
        self.restart_at = {}  # name -> monotonic time a crashed process is started again
        self.relays = []
        self.stopping = None  # monotonic time the stop began

    def start(self, name, service, port):
        self.specs[name] = (service, port)
        self.started_at[name] = time.monotonic()
        nameko = os.path.join(os.path.dirname(sys.executable), "nameko")
        command = [nameko, "run", "--config", self.config, f"services.{service}.service"]
        env = dict(self.env, WEB_SERVER_ADDRESS=f"{self.host}:{port}", PYTHONUNBUFFERED="1")
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
        """Restart what crashes until a stop is asked for, then wait until every child has
        exited; the exit status of the launcher."""
        while self.stopping is None:
            self._restart_crashed(time.monotonic())
            time.sleep(0.2)
        while any(child.poll() is None for child in self.children.values()):
            if time.monotonic() - self.stopping > STOP_GRACE_SECONDS:
                say(f"still running after {STOP_GRACE_SECONDS}s: killing")
                self._signal_all(signal.SIGKILL)
            time.sleep(0.2)
        for relay in self.relays:  # the last lines each child wrote
            relay.join(timeout=1)
        return 0

    def _restart_crashed(self, now):
        for name, child in list(self.children.items()):
            if child.poll() is None:
                if now - self.started_at[name] >= HEALTHY_AFTER_SECONDS:
                    self.crashes.pop(name, None)
                continue
            if name not in self.restart_at:
                crashes = self.crashes[name] = self.crashes.get(name, 0) + 1
                first, cap = RESTART_BACKOFF_SECONDS
                delay = min(cap, first * 2 ** (crashes - 1))
                self.restart_at[name] = now + delay
                say(f"{name} exited unexpectedly with status {child.returncode}; "
                    f"restarting in {delay} s (crash {crashes} in a row)")
            elif now >= self.restart_at[name]:
                del self.restart_at[name]
                self.start(name, *self.specs[name])


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
    say("stopped")
    return status


if __name__ == "__main__":
    sys.exit(main())
