import eventlet

eventlet.monkey_patch()

import os  # noqa: E402
import socket  # noqa: E402
import uuid  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import pytest  # noqa: E402
import requests  # noqa: E402
from nameko.containers import ServiceContainer  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from services.common.db import make_engine  # noqa: E402
from services.common.migrate import upgrade  # noqa: E402
from services.gateway.service import GatewayService  # noqa: E402
from services.gateway.tests.support import AMQP_URI, SECRET  # noqa: E402

POSTGRES_ADMIN_URL = os.environ.get("PROPDESK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
RABBIT_MANAGEMENT = os.environ.get("PROPDESK_RABBIT_MANAGEMENT", "http://127.0.0.1:15672")


@pytest.fixture
def sqlite_url(tmp_path):
    url = f"sqlite:///{tmp_path}/gateway.db"
    upgrade("gateway", url)
    return url


@pytest.fixture
def postgres_url():
    import psycopg
    name = f"gateway_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = POSTGRES_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0] + "/" + name
    upgrade("gateway", url)
    yield url
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_session(request):
    """A session on a migrated gateway database, on SQLite and on PostgreSQL."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    engine = make_engine(url)
    with Session(engine) as session:
        yield session
    engine.dispose()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def amqp_uri():
    """A RabbitMQ virtual host of the test session's own (through the management API), so that
    services running elsewhere on the broker neither answer nor see these tests' calls."""
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=2).close()
    except OSError:
        pytest.fail("RabbitMQ is not reachable on 127.0.0.1:5672 (start it: rabbitmq-server -detached)")
    vhost = f"propdesk-gateway-test-{uuid.uuid4().hex[:8]}"
    auth = ("guest", "guest")
    requests.put(f"{RABBIT_MANAGEMENT}/api/vhosts/{vhost}", auth=auth, timeout=10).raise_for_status()
    requests.put(f"{RABBIT_MANAGEMENT}/api/permissions/{vhost}/guest", auth=auth, timeout=10,
                 json={"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()
    yield f"{AMQP_URI.rstrip('/')}/{vhost}"
    requests.delete(f"{RABBIT_MANAGEMENT}/api/vhosts/{vhost}", auth=auth, timeout=10)


@dataclass
class Running:
    base: str
    config: dict
    container: ServiceContainer
    db_url: str

    def url(self, path):
        return self.base + path

    def get(self, path, token=None, **kw):
        return requests.get(self.url(path), headers=_headers(token, kw.pop("headers", None)), timeout=30, **kw)

    def post(self, path, json=None, token=None, key=None, **kw):
        headers = _headers(token, kw.pop("headers", None))
        if key is not None:
            headers["Idempotency-Key"] = key
        return requests.post(self.url(path), json=json, headers=headers, timeout=30, **kw)


def _headers(token, extra):
    headers = dict(extra or {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


@pytest.fixture(scope="session")
def gateway(amqp_uri, tmp_path_factory):
    """One gateway for the session (a service's metrics can be registered once per process)."""
    db_url = f"sqlite:///{tmp_path_factory.mktemp('gateway')}/gateway.db"
    upgrade("gateway", db_url)
    port = free_port()
    config = {"AMQP_URI": amqp_uri, "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
              "DB_URIS": {"gateway": db_url}, "JWT_SECRET": SECRET, "RPC_TIMEOUT": 2}
    container = ServiceContainer(GatewayService, config)
    container.start()
    yield Running(f"http://127.0.0.1:{port}", config, container, db_url)
    container.stop()
