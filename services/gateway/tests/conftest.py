# The gateway on its own, in this process, on a RabbitMQ vhost of the session's own (the database
# fixtures are the root conftest.py's).
from dataclasses import dataclass

import pytest
import requests
from nameko.containers import ServiceContainer
from sqlalchemy.orm import Session

from services.gateway.service import GatewayService
from services.gateway.tests.support import SECRET
from bench.harness import Vhost, free_port, migrated, sqlite_url


@pytest.fixture
def db_session(migrated_engine):
    """A session on a migrated gateway database, on SQLite and on PostgreSQL."""
    with Session(migrated_engine("gateway")) as session:
        yield session


@pytest.fixture(scope="session")
def amqp_uri():
    """A RabbitMQ virtual host of the test session's own, so that services running elsewhere on
    the broker neither answer nor see these tests' calls."""
    with Vhost("propdesk-gateway-test") as vhost:
        yield vhost.amqp_uri


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
    db_url = migrated("gateway", sqlite_url(tmp_path_factory.mktemp("gateway") / "gateway.db"))
    port = free_port()
    config = {"AMQP_URI": amqp_uri, "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
              "DB_URIS": {"gateway": db_url}, "JWT_SECRET": SECRET, "RPC_TIMEOUT": 2}
    container = ServiceContainer(GatewayService, config)
    container.start()
    yield Running(f"http://127.0.0.1:{port}", config, container, db_url)
    container.stop()
