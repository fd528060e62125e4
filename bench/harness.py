"""What the bench and the tests both run against — the bench's own harness, which the tests
import (never the other way round):

- the servers, each run with its own: a RabbitMQ virtual host (made through the management API),
  databases (SQLite files, or fresh PostgreSQL databases) migrated with each service's own
  Alembic history, free local ports, and a TCP link to the broker that can be cut (`BrokerLink`);
- the whole system as real OS processes, the way `make run` starts it (`System`): one
  `nameko run` per service with config.yml, configured through the environment, driven over
  HTTP (`ApiClient`); `stop` sends SIGTERM (a graceful shutdown), `kill` SIGKILL (a crash):

      with Vhost() as vhost, System(workdir, vhost.amqp_uri) as system:
          system.wait_ready()
          system.client("hq", ["*"]).post("/sites", {"code": "001", "name": "Garden Court"})

- the data a site, a unit and a repair need, and the steps that take a repair to completion;
- `write_results`, how every bench leaves its figures in bench/results/.

Standard library, requests and psycopg only at import time (eventlet only once a BrokerLink is
used), so that a bench can use it without eventlet's monkey-patching."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from contextlib import contextmanager
from types import SimpleNamespace
from urllib.parse import quote, urlsplit

import requests

from services.common import SERVICES  # start order: the gateway last

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_DIR = os.path.join(ROOT, "bench", "results")

RABBIT_MANAGEMENT = os.environ.get("PROPDESK_RABBIT_MANAGEMENT", "http://127.0.0.1:15672")
RABBIT_AUTH = ("guest", "guest")
# The broker without a vhost; each Vhost appends its own.
AMQP_SERVER = os.environ.get("PROPDESK_TEST_AMQP", "pyamqp://guest:guest@127.0.0.1:5672")
POSTGRES_ADMIN_URL = os.environ.get(
    "PROPDESK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
FULL_ACCESS = {"configure": ".*", "write": ".*", "read": ".*"}
MANAGEMENT_TIMEOUT = 10


class Vhost:
    """A RabbitMQ virtual host of one's own, so that nothing else on the broker answers or sees
    what runs in it."""

    def __init__(self, prefix="propdesk-test"):
        self.name = f"{prefix}-{uuid.uuid4().hex[:10]}"

    @property
    def amqp_uri(self):
        return self.amqp_uri_at(AMQP_SERVER)

    def amqp_uri_at(self, server):
        """This vhost on the broker reached at `server` (pyamqp://user:password@host:port)."""
        return f"{server.rstrip('/')}/{quote(self.name, safe='')}"

    def create(self):
        self._call("PUT", f"vhosts/{quote(self.name, safe='')}")
        self.grant()
        return self

    def grant(self):
        self._call("PUT", f"permissions/{quote(self.name, safe='')}/{RABBIT_AUTH[0]}",
                   json=FULL_ACCESS)

    def delete(self):
        self._call("DELETE", f"vhosts/{quote(self.name, safe='')}", missing_ok=True)

    def _call(self, method, path, json=None, missing_ok=False):
        try:
            response = requests.request(method, f"{RABBIT_MANAGEMENT}/api/{path}", json=json,
                                        auth=RABBIT_AUTH, timeout=MANAGEMENT_TIMEOUT)
        except requests.ConnectionError as exc:
            raise RuntimeError(
                f"the RabbitMQ management API does not answer on {RABBIT_MANAGEMENT} "
                "(run `make broker`, or `rabbitmq-plugins enable rabbitmq_management`)") from exc
        if not (missing_ok and response.status_code == 404):
            response.raise_for_status()

    def __enter__(self):
        return self.create()

    def __exit__(self, *exc_info):
        self.delete()


class PostgresDatabase:
    """An empty PostgreSQL database made for one test (or bench run) and dropped afterwards,
    created over a plain autocommit connection (CREATE DATABASE cannot run in a transaction)."""

    def __init__(self, prefix="propdesk_test"):
        self.name = f"{prefix}_{uuid.uuid4().hex[:10]}"

    @property
    def url(self):
        """The SQLAlchemy URL of this database (psycopg 3 driver)."""
        admin = urlsplit(POSTGRES_ADMIN_URL)
        return admin._replace(scheme="postgresql+psycopg", path=f"/{self.name}").geturl()

    def create(self):
        self._admin(f'CREATE DATABASE "{self.name}"')
        return self

    def drop(self):
        # FORCE: a service process killed by a test may have left its connections behind.
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    @staticmethod
    def _admin(statement):
        import psycopg
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=10) as conn:
            conn.execute(statement)

    def __enter__(self):
        return self.create()

    def __exit__(self, *exc_info):
        self.drop()


def migrated(service, url):
    """`url` with `service`'s schema upgraded to its newest migration."""
    from services.common.migrate import upgrade
    upgrade(service, url)
    return url


def sqlite_url(path):
    return f"sqlite:///{path}"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class CpuMeter:
    """CPU seconds (user + system, from /proc) of named groups of processes: each service of a
    System, the PostgreSQL backends serving its databases, the RabbitMQ node (shared with
    whatever else runs on it) and this process (the bench's clients). `taken()` before and
    after a measurement gives what each group spent on it; Linux only ({} elsewhere)."""

    TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def __init__(self, system, database_names=()):
        self.system, self.database_names = system, tuple(database_names)

    def taken(self):
        if not os.path.isdir("/proc/self"):
            return {}
        groups = {name: [process.pid] for name, process in self.system.processes.items()}
        for process in self.system.extra_processes:   # replicas count with their service
            name = os.path.basename(process.args[-1]).split(".")[1]
            groups[name].append(process.pid)
        groups.update(postgres=[], broker=[], client=[os.getpid()])
        for pid in filter(str.isdigit, os.listdir("/proc")):
            command = self._command(pid)
            if command.startswith("postgres:") and any(
                    name in command for name in self.database_names):
                groups["postgres"].append(int(pid))
            elif "beam.smp" in command and "rabbit" in command:
                groups["broker"].append(int(pid))
        return {name: sum(map(self._seconds, pids)) for name, pids in groups.items()}

    @staticmethod
    def _command(pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                return handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return ""

    @classmethod
    def _seconds(cls, pid):
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:   # it ended meanwhile
            return 0.0
        return (int(fields[11]) + int(fields[12])) / cls.TICK

    @staticmethod
    def spent(before, after):
        """{group: CPU seconds} between two `taken()`; a backend that ended in between is lost
        (never below 0)."""
        return {name: max(0.0, after.get(name, 0.0) - before.get(name, 0.0)) for name in after}

    @staticmethod
    def per_request_ms(spent, requests):
        """{group: milliseconds per request} of `spent` seconds, largest first."""
        return dict(sorted(((name, round(seconds * 1000 / requests, 2))
                            for name, seconds in spent.items()), key=lambda item: -item[1]))


CONFIG = os.path.join(ROOT, "config.yml")
READY_TIMEOUT = 60
STOP_TIMEOUT = 20
LOG_TAIL_LINES = 40
HTTP_TIMEOUT = 30
DEFAULT_SECRET = "propdesk-e2e-secret-0123456789abcdef"  # HS256 wants 32 bytes or more


class System:
    """Every service of propdesk as its own process, on the broker at `amqp_uri` (give each
    System a vhost of its own) and on databases in `workdir` (SQLite files, migrated first),
    or on `db_urls` {service: url} when given (migrated as well). RPC timeout and outbox poll
    are config.yml's unless given; `env` sets any other variable config.yml reads."""

    def __init__(self, workdir, amqp_uri, *, db_urls=None, secret=DEFAULT_SECRET,
                 rpc_timeout=None, outbox_poll_seconds=None, services=SERVICES, env=None,
                 replicas=None):
        self.workdir, self.amqp_uri, self.secret = workdir, amqp_uri, secret
        self.services = tuple(services)
        # {service: n}: n - 1 more processes of it besides the one this System manages by name
        # (started and stopped with the rest; `kill`/`revive` act on the first only).
        self.replicas = {service: n for service, n in (replicas or {}).items() if n > 1}
        if "gateway" in self.replicas or not set(self.replicas) <= set(self.services):
            raise ValueError(f"replicas of {sorted(self.replicas)}: only of services started, "
                             "not of the gateway (it runs once per port)")
        self.extra_processes, self.extra_ports = [], []
        self.db_urls = dict(db_urls or {})
        for service in self.services:
            self.db_urls.setdefault(service, sqlite_url(os.path.join(workdir, f"{service}.db")))
        self.ports = {service: free_port() for service in self.services}
        self.env = dict(
            os.environ,
            PROPDESK_AMQP_URI=amqp_uri,
            PROPDESK_JWT_SECRET=secret,
            PYTHONUNBUFFERED="1",
            **{f"{service.upper()}_DB_URL": url for service, url in self.db_urls.items()},
            **(env or {}),
        )
        for variable, value in (("PROPDESK_RPC_TIMEOUT", rpc_timeout),
                                ("PROPDESK_OUTBOX_POLL_SECONDS", outbox_poll_seconds)):
            if value is not None:
                self.env[variable] = str(value)
        self.processes = {}

    @property
    def url(self):
        """The gateway, e.g. http://127.0.0.1:41234 (the API is under /api/v1)."""
        return f"http://127.0.0.1:{self.ports['gateway']}"

    def start(self):
        for service in self.services:
            migrated(service, self.db_urls[service])
        for service in self.services:
            self.start_service(service)
        for service, count in self.replicas.items():
            for replica in range(1, count):
                port = free_port()
                self.extra_processes.append(self._spawn(
                    service, port, os.path.join(self.workdir, f"{service}-{replica}.log")))
                self.extra_ports.append(port)
        return self

    def start_service(self, service):
        """(Re)start one service's process; its log continues in <workdir>/<service>.log."""
        if self.running(service):
            raise RuntimeError(f"{service} is already running")
        self.processes[service] = self._spawn(service, self.ports[service], self.log_path(service))

    def _spawn(self, service, port, log_path):
        nameko = os.path.join(os.path.dirname(sys.executable), "nameko")
        env = dict(self.env, WEB_SERVER_ADDRESS=f"127.0.0.1:{port}")
        with open(log_path, "ab") as log:
            return subprocess.Popen(
                [nameko, "run", "--config", CONFIG, f"services.{service}.service"],
                cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)

    def running(self, service):
        process = self.processes.get(service)
        return process is not None and process.poll() is None

    def stop(self, service, timeout=STOP_TIMEOUT):
        """SIGTERM: nameko finishes the workers in flight and leaves; its exit status."""
        return self._end(service, signal.SIGTERM, timeout)

    def kill(self, service):
        """SIGKILL: the process dies on the spot, as in a crash or an OOM kill."""
        return self._end(service, signal.SIGKILL, STOP_TIMEOUT)

    def _end(self, service, signum, timeout):
        process = self.processes[service]
        if process.poll() is None:
            process.send_signal(signum)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:  # stuck in its shutdown: no better than a crash
            process.kill()
            return process.wait(STOP_TIMEOUT)

    def wait_ready(self, timeout=READY_TIMEOUT):
        """Until the gateway's /ready answers 200 (every service and the broker answer)."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            exited = [s for s, p in self.processes.items() if p.poll() is not None]
            exited += [f"a replica (pid {p.pid})" for p in self.extra_processes if p.poll() is not None]
            if exited:
                raise RuntimeError(f"{', '.join(exited)} exited while starting\n{self.log_tails()}")
            try:
                response = requests.get(self.url + "/ready", timeout=5)
                if response.status_code == 200 and all(
                        requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).ok
                        for port in self.extra_ports):
                    return self
                last = f"{response.status_code} {response.text[:500]}"
            except requests.RequestException as exc:
                last = repr(exc)
            time.sleep(0.25)
        raise RuntimeError(f"not ready after {timeout} s; last /ready: {last}\n{self.log_tails()}")

    def revive(self):
        """Start whatever was stopped or killed, and wait until ready."""
        for service in self.services:
            if not self.running(service):
                self.start_service(service)
        return self.wait_ready()

    def token(self, role, sites=("001",), sub=None, person_id=None):
        from services.gateway.tokens import mint
        return mint(sub or f"{role}-1", role, list(sites), person_id=person_id, secret=self.secret)

    def headers(self, role, sites=("001",), sub=None, person_id=None):
        return {"Authorization": f"Bearer {self.token(role, sites, sub, person_id)}"}

    def client(self, role=None, sites=("001",), sub=None, person_id=None):
        """The API as that caller sees it; no role: a caller without a token."""
        return ApiClient(self.url, {} if role is None else self.headers(role, sites, sub, person_id))

    def log_path(self, service):
        return os.path.join(self.workdir, f"{service}.log")

    def log_tails(self, lines=LOG_TAIL_LINES):
        tails = []
        for service in self.services:
            try:
                with open(self.log_path(service), errors="replace") as log:
                    tail = "".join(deque(log, maxlen=lines))
            except FileNotFoundError:
                tail = "(no log)\n"
            tails.append(f"---- {service} ({self.log_path(service)})\n{tail}")
        return "".join(tails)

    def shutdown(self):
        """SIGTERM to every process still running, SIGKILL to those that linger."""
        for service in reversed(self.services):
            if self.running(service):
                self.processes[service].send_signal(signal.SIGTERM)
        for process in self.extra_processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in [*self.processes.values(), *self.extra_processes]:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.shutdown()


class ApiClient:
    """The gateway's /api/v1 for one caller, over one kept-alive connection."""

    def __init__(self, base_url, headers):
        self.base = base_url + "/api/v1"
        self.session = requests.Session()
        self.session.headers.update(headers)

    def post(self, path, body=None, key=None):
        headers = {"Idempotency-Key": key} if key else {}
        return self.session.post(self.base + path, json=body, headers=headers, timeout=HTTP_TIMEOUT)

    def put(self, path, body=None):
        return self.session.put(self.base + path, json=body, timeout=HTTP_TIMEOUT)

    def get(self, path, **params):
        return self.session.get(self.base + path, params=params, timeout=HTTP_TIMEOUT)


class BrokerLink:
    """A TCP path to RabbitMQ for the code under test. `cut()` drops every connection made
    through it and refuses new ones, as a broker restart or a network failure would; `restore()`
    lets connections through again. The broker itself, shared with others, is left alone."""

    def __init__(self, server=AMQP_SERVER):
        broker = urlsplit(server)
        self.target = (broker.hostname, broker.port or 5672)
        self.port = free_port()
        credentials = broker.netloc.rpartition("@")[0]
        address = f"127.0.0.1:{self.port}"
        # The broker as reached through the link: pyamqp://user:password@127.0.0.1:<port>
        self.server = broker._replace(
            netloc=f"{credentials}@{address}" if credentials else address).geturl()
        self.listener = self.acceptor = None
        self.sockets = set()

    def restore(self):
        import eventlet  # the code under test runs monkey-patched; importing this module need not
        self.listener = eventlet.listen(("127.0.0.1", self.port))
        self.acceptor = eventlet.spawn(self._accept, self.listener)
        return self

    def cut(self):
        if self.acceptor is not None:
            self.acceptor.kill()
            self.listener.close()
            self.acceptor = self.listener = None
        for sock in list(self.sockets):
            _shut(sock)

    def _accept(self, listener):
        import eventlet
        while True:
            client, _ = listener.accept()
            try:
                upstream = eventlet.connect(self.target)
            except OSError:
                client.close()
                continue
            self.sockets |= {client, upstream}
            eventlet.spawn(self._pipe, client, upstream)
            eventlet.spawn(self._pipe, upstream, client)

    def _pipe(self, source, sink):
        """Copies one direction; each socket is read by one pipe, which closes it at the end.
        Shutting both down wakes the pipe of the other direction."""
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _shut(source)
            _shut(sink)
            self.sockets.discard(source)
            source.close()


class RabbitNode:
    """A RabbitMQ node of one's own on this machine (its own name, ports, data and logs in
    `workdir`, no plugins), so that a bench may restart a broker for real — `restart()` is
    `rabbitmqctl stop_app`, a pause, `start_app` — without touching the RabbitMQ others share.
    Needs the local rabbitmq-server; run as root, the scripts switch to the rabbitmq user.
    Its default vhost "/" is the bench's alone: `amqp_uri` is the broker and the vhost."""

    def __init__(self, workdir=None, name=None):
        # its own folder, which the rabbitmq user can reach (a TemporaryDirectory is 0700)
        self.workdir = workdir or tempfile.mkdtemp(prefix="propdesk-rabbit-")
        self.name = name or f"propdesk-{uuid.uuid4().hex[:8]}@localhost"
        self.port, self.dist_port = free_port(), free_port()
        self.amqp_uri = f"pyamqp://guest:guest@127.0.0.1:{self.port}"
        self.env = dict(os.environ, RABBITMQ_NODENAME=self.name,
                        RABBITMQ_NODE_PORT=str(self.port), RABBITMQ_DIST_PORT=str(self.dist_port),
                        RABBITMQ_MNESIA_BASE=os.path.join(self.workdir, "mnesia"),
                        RABBITMQ_LOG_BASE=os.path.join(self.workdir, "log"),
                        RABBITMQ_CONFIG_FILE=os.path.join(self.workdir, "rabbitmq.conf"),
                        RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(self.workdir, "enabled_plugins"),
                        RABBITMQ_CONF_ENV_FILE=os.path.join(self.workdir, "rabbitmq-env.conf"))

    def ctl(self, *args, timeout=120):
        return subprocess.run(["rabbitmqctl", "-n", self.name, *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout, check=True)

    def start(self):
        for folder in ("mnesia", "log"):
            os.makedirs(os.path.join(self.workdir, folder), exist_ok=True)
        with open(self.env["RABBITMQ_CONFIG_FILE"], "w") as conf:
            conf.write(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        with open(self.env["RABBITMQ_ENABLED_PLUGINS_FILE"], "w") as plugins:
            plugins.write("[].\n")
        with open(self.env["RABBITMQ_CONF_ENV_FILE"], "w") as conf:
            conf.write("ERL_EPMD_ADDRESS=127.0.0.1\n")
        if os.geteuid() == 0:  # the node runs as the rabbitmq user, who must write here
            subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", self.workdir], check=True)
            os.chmod(self.workdir, 0o755)
        subprocess.run(["rabbitmq-server", "-detached"], env=self.env, check=True, timeout=60)
        try:
            self.await_startup()
        except BaseException:
            self.stop()
            raise
        return self

    def await_startup(self, timeout=120):
        """Until the node runs its app (at first the node is not even registered yet)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.ctl("await_startup", timeout=timeout)
                return
            except subprocess.CalledProcessError as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"RabbitMQ node {self.name} did not start: {exc.stderr}")
                time.sleep(1)

    def stop_app(self):
        self.ctl("stop_app")

    def start_app(self):
        self.ctl("start_app")
        self.await_startup()

    def stop(self):
        try:
            self.ctl("stop", timeout=60)
        except (subprocess.SubprocessError, OSError):
            pass
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


def _shut(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already shut down, or never connected
        pass


# -- the data of a flow -------------------------------------------------------------------

SITE = "001"
OTHER_SITE = "002"
AGENT = "agent-ann"          # the desk agent who opens tickets: their first-contact owner
TECHNICIAN = "tech1"
CALLBACK_EVENT = "ticketing.callback_due"
# (action, payload, role of whoever takes the step), from a new repair to a completed one.
REPAIR_TO_COMPLETION = (
    ("dispatch", {"assignee": TECHNICIAN}, "agent"),
    ("arrive", {}, "technician"),
    ("complete", {"result": "fixed"}, "technician"),
)
SUB_OF_ROLE = {"agent": AGENT, "technician": TECHNICIAN}


def site_payload(code, name=None):
    return {"code": code, "name": name or f"Garden Court {code}", "timezone": "Asia/Shanghai"}


def unit_payload(code, phone, owner="Li Wei", id_number="110101199001011234", area="89.50"):
    return {"code": code, "usage": "residential", "area_m2": area,
            "owner": {"name": owner, "phone": phone, "id_number": id_number}}


def repair_payload(unit, description):
    return {"kind": "repair", "site": unit[:3], "unit": unit, "channel": "phone",
            "description": description}


@contextmanager
def service_workers(service_cls, base, engine, default_now, **dependencies):
    """`make(now=default_now, identity=None, **more)`: a fresh worker of `service_cls` per call
    on `engine`, as Nameko makes one per message or RPC, with no broker: its real unit of work
    (`base`'s outbox, never relayed), the caller `identity`, the clock at `now`, and
    `dependencies` (updated by `more`; Nameko's `worker_factory` mocks any other). Every unit
    of work is closed after, or when `make.done(worker)` says the worker has ended. Nameko is
    imported only here."""
    from nameko.testing.services import worker_factory
    from services.common.auth import IDENTITY_KEY, CallContext
    from services.common.db import UnitOfWork

    tables = base.metadata.tables
    database = SimpleNamespace(engine=engine, outbox=tables["outbox"],
                               processed=tables["processed_events"],
                               answers=tables["idempotent_commands"],
                               relay=SimpleNamespace(kick=lambda: None),
                               service=service_cls.name)
    units = {}

    def make(now=default_now, identity=None, **more):
        worker_ctx = SimpleNamespace(data={IDENTITY_KEY: identity} if identity else {},
                                     entrypoint=None)
        unit = UnitOfWork(database, worker_ctx)
        worker = worker_factory(service_cls, uow=unit, caller=CallContext(worker_ctx),
                                clock=lambda: now, **{**dependencies, **more})
        units[id(worker)] = unit
        return worker

    def done(worker):
        """Close `worker`'s unit of work now (as Nameko does when a worker ends), not at the end."""
        units.pop(id(worker)).close(failed=False)

    make.done = done
    try:
        yield make
    finally:
        for unit in units.values():
            unit.close(failed=False)


@contextmanager
def notifications_workers(engine, default_now):
    """`make(settings=None, now=default_now, identity=None, delivery=None)`: a notifications
    worker (`service_workers`) whose delivery is built from `settings`."""
    from services.notifications.providers import delivery_from
    from services.notifications.service import NotificationsService
    from services.notifications.storage import Base

    with service_workers(NotificationsService, Base, engine, default_now) as workers:
        def make(settings=None, now=default_now, identity=None, delivery=None):
            return workers(now=now, identity=identity,
                           delivery=delivery or delivery_from(settings or {}))
        yield make


def write_results(name, text):
    """`text` as bench/results/<name>, and on standard output: where every bench leaves its
    figures, with the commit they were measured on in the text."""
    path = os.path.join(RESULTS_DIR, name)
    with open(path, "w") as out:
        out.write(text)
    print(text)
    print(f"written to {os.path.relpath(path, ROOT)}")
    return path
