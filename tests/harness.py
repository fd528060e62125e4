"""The whole system as real OS processes, the way `make run` starts it: one `nameko run` per
service with config.yml, configured through the environment. End-to-end tests and the bench
drive it over HTTP; `stop` sends SIGTERM (a graceful shutdown), `kill` SIGKILL (a crash).

    with Vhost() as vhost, System(workdir, vhost.amqp_uri) as system:
        system.wait_ready()
        system.client("hq", ["*"]).post("/sites", {"code": "001", "name": "Garden Court"})
"""
import os
import signal
import subprocess
import sys
import time
from collections import deque

import requests

from services.common import SERVICES  # start order: the gateway last
from tests.infra import free_port, migrated, sqlite_url

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
                 rpc_timeout=None, outbox_poll_seconds=None, services=SERVICES, env=None):
        self.workdir, self.amqp_uri, self.secret = workdir, amqp_uri, secret
        self.services = tuple(services)
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
        return self

    def start_service(self, service):
        """(Re)start one service's process; its log continues in <workdir>/<service>.log."""
        if self.running(service):
            raise RuntimeError(f"{service} is already running")
        nameko = os.path.join(os.path.dirname(sys.executable), "nameko")
        env = dict(self.env, WEB_SERVER_ADDRESS=f"127.0.0.1:{self.ports[service]}")
        with open(self.log_path(service), "ab") as log:
            self.processes[service] = subprocess.Popen(
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
            if exited:
                raise RuntimeError(f"{', '.join(exited)} exited while starting\n{self.log_tails()}")
            try:
                response = requests.get(self.url + "/ready", timeout=5)
                if response.status_code == 200:
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
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in self.processes.values():
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

    def put(self, path, body=None):
        return self.session.put(self.base + path, json=body, timeout=HTTP_TIMEOUT)
