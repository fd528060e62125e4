"""The servers the tests and the bench run against, each test with its own: a RabbitMQ virtual
host (made through the management API), databases (SQLite files, or fresh PostgreSQL databases)
migrated with each service's own Alembic history, and free local ports.

Standard library, requests and psycopg only at import time, so that the bench can use it without
eventlet's monkey-patching."""
import os
import socket
import uuid
from urllib.parse import quote, urlsplit

import requests

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
