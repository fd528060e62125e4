import eventlet; eventlet.monkey_patch()  # noqa: E702,I001 — before anything imports socket or threading

# Fixtures of the cross-service tests (the database fixtures every folder shares are in the root
# conftest.py). pytest runs with `-p no:nameko`: nothing here depends on nameko's pytest plugin.
# Every test gets its own RabbitMQ vhost and its own databases.
import shutil  # noqa: E402

import pytest  # noqa: E402

from services.common.config import load_config  # noqa: E402
from services.common.migrate import MIGRATED  # noqa: E402
from bench.harness import BrokerLink, System, Vhost, free_port, migrated, sqlite_url  # noqa: E402
from tests.inprocess import Cluster, EventTap  # noqa: E402

JWT_SECRET = "propdesk-test-secret-0123456789abcdef"  # HS256 wants 32 bytes or more
RPC_TIMEOUT = 3
OUTBOX_POLL_SECONDS = 0.5


@pytest.fixture
def vhost():
    with Vhost() as made:
        yield made


@pytest.fixture
def amqp_uri(vhost):
    return vhost.amqp_uri


class SqliteTemplates:
    """Each service's schema migrated once per test session, copied for every test."""

    def __init__(self, directory):
        self.directory = directory
        self.made = {}

    def copy(self, service, target_dir):
        if service not in self.made:
            self.made[service] = migrated(service, sqlite_url(self.directory / f"{service}.db"))
        target = target_dir / f"{service}.db"
        shutil.copyfile(self.directory / f"{service}.db", target)
        return sqlite_url(target)


@pytest.fixture(scope="session")
def sqlite_templates(tmp_path_factory):
    return SqliteTemplates(tmp_path_factory.mktemp("schemas"))


@pytest.fixture
def service_config(amqp_uri, tmp_path, sqlite_templates):
    """config.yml as every service loads it, on this test's vhost, with a migrated SQLite
    database per service in tmp_path, short timeouts and a fast outbox poll."""
    databases = tmp_path / "databases"
    databases.mkdir()
    return load_config(
        AMQP_URI=amqp_uri,
        DB_URIS={service: sqlite_templates.copy(service, databases) for service in MIGRATED},
        RPC_TIMEOUT=RPC_TIMEOUT,
        OUTBOX_POLL_SECONDS=OUTBOX_POLL_SECONDS,
        JWT_SECRET=JWT_SECRET,
        WEB_SERVER_ADDRESS=f"127.0.0.1:{free_port()}",
    )


@pytest.fixture
def cluster(service_config):
    """Services run in this process (tests.inprocess.Cluster): start, stop, restart, RPC
    proxies with a caller's identity. Everything still running stops at teardown."""
    running = Cluster(service_config)
    yield running
    running.shutdown()


@pytest.fixture
def run_services(cluster):
    """`run_services('registry', 'ticketing')` starts those services; answers the Cluster."""
    return cluster.start



@pytest.fixture
def event_tap(amqp_uri):
    """`event_tap('registry')`: a queue of the test's own on registry's event exchange."""
    return lambda service, routing_key="#": EventTap(amqp_uri, service, routing_key)


@pytest.fixture
def broker_link():
    """A path to the broker the test can cut and restore (tests.inprocess.BrokerLink)."""
    link = BrokerLink().restore()
    yield link
    link.cut()


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    """The whole system as OS processes (bench.harness.System) on a vhost of its own, shared by
    a module's tests; each test leaves it running (see `revive`)."""
    with Vhost("propdesk-e2e") as vhost:
        running = System(str(tmp_path_factory.mktemp("system")), vhost.amqp_uri,
                         secret=JWT_SECRET, rpc_timeout=RPC_TIMEOUT,
                         outbox_poll_seconds=OUTBOX_POLL_SECONDS)
        try:
            running.start().wait_ready()
            yield running
        finally:
            running.shutdown()
