"""Real Nameko services inside the test process, on the real broker: whole containers
(`Cluster`), a service's Database dependency on its own (`BoundDatabase`: the unit of work,
outbox and relay a worker gets), a queue of the test's own on a service's event exchange
(`EventTap`), and a path to the broker that a test can cut (`BrokerLink`). Needs eventlet's
monkey-patching (tests/conftest.py does it first)."""
import sys
import time
import uuid
from contextlib import contextmanager

import eventlet
from kombu import Connection, Queue
from nameko.cli.run import import_service
from nameko.containers import ServiceContainer, WorkerContext
from nameko.events import get_event_exchange
from nameko.standalone.rpc import ClusterRpcProxy

from services.common.auth import IDENTITY_KEY, Identity
from services.common.db import Database
from tests.flows import SETTLE_SECONDS
from bench.harness import free_port

STOP_TIMEOUT = 15
RPC_TIMEOUT = 10


def identity(role, sites=("001",), sub=None, person_id=None):
    """Nameko context data `identity` as the gateway sends it for such a caller."""
    return Identity(sub=sub or f"{role}-1", role=role, sites=tuple(sites),
                    person_id=person_id).to_context()


class Cluster:
    """Services started as ServiceContainers, each with its own copy of `config` and its own
    web port, like one `nameko run` process each."""

    def __init__(self, config):
        self.config = config
        self.containers = {}

    def start(self, *services):
        for service in services:
            [service_cls] = import_service(f"services.{service}.service")
            container = ServiceContainer(
                service_cls, dict(self.config, WEB_SERVER_ADDRESS=f"127.0.0.1:{free_port()}"))
            self.containers[service] = container
            container.start()
        return self

    def stop(self, service):
        """A graceful stop (workers in flight finish), or a kill if it does not come."""
        container = self.containers.pop(service)
        stopped = False
        with eventlet.Timeout(STOP_TIMEOUT, False):
            container.stop()
            stopped = True
        if not stopped:
            container.kill()

    def shutdown(self):
        """Stops every service at once (each stop takes nameko a second or two)."""
        pool = eventlet.GreenPool()
        for service in list(self.containers):
            pool.spawn(self.stop, service)
        pool.waitall()

    def rpc(self, caller=None, timeout=RPC_TIMEOUT):
        """`with cluster.rpc(identity('agent')) as rpc: rpc.registry.get_site('001')`;
        no caller is an in-cluster ops call."""
        context = {IDENTITY_KEY: caller} if caller else None
        return ClusterRpcProxy(self.config, context_data=context, timeout=timeout)


class _ContainerStandIn:
    """What the Database dependency and a WorkerContext read from their container."""

    def __init__(self, service, config):
        self.service_name, self.config = service, config


class BoundDatabase:
    """A service's `Database` dependency bound to a stand-in container: the very unit of work,
    outbox and relay its workers get, without the rest of the service. The relay publishes only
    once `start_relay()` is called."""

    def __init__(self, service, base, config):
        self._container = _ContainerStandIn(service, config)
        self.provider = Database(base).bind(self._container, "uow")
        self.provider.setup()
        self.engine = self.provider.engine
        self.outbox = self.provider.outbox
        self.started = False

    def start_relay(self):
        self.provider.start()
        self.started = True

    @contextmanager
    def unit(self, context_data=None):
        """A worker's unit of work: rolled back if the block raises, closed at its end, as a
        worker's is. The block commits with `uow.commit()`."""
        worker = WorkerContext(self._container, service=None, entrypoint=None,
                               data=dict(context_data or {}))
        uow = self.provider.get_dependency(worker)
        try:
            yield uow
        except BaseException:
            self.provider.worker_result(worker, exc_info=sys.exc_info())
            raise
        self.provider.worker_result(worker)

    def outbox_rows(self):
        with self.engine.connect() as conn:
            return conn.execute(self.outbox.select().order_by(self.outbox.c.id)).all()

    def close(self):
        if self.started:
            self.provider.stop()
        else:
            self.engine.dispose()


class EventTap:
    """A queue of the test's own bound to `<service>.events`, declared at once, so that it keeps
    everything the service publishes from then on."""

    def __init__(self, amqp_uri, service, routing_key="#"):
        self.amqp_uri = amqp_uri
        self.queue = Queue(f"test-tap-{service}-{uuid.uuid4().hex[:8]}",
                           exchange=get_event_exchange(service, {}), routing_key=routing_key,
                           durable=False, auto_delete=False)
        with Connection(amqp_uri) as connection:
            self.queue(connection.default_channel).declare()

    def collect(self, expected, timeout=15.0, quiet=SETTLE_SECONDS):
        """[(routing_key, body)] once `expected` messages arrived (or `timeout` passed) and then
        nothing more for `quiet` seconds, so that a duplicate would be among them."""
        return [(message.delivery_info["routing_key"], message.payload)
                for message in self.messages(expected, timeout, quiet)]

    def messages(self, expected, timeout=15.0, quiet=SETTLE_SECONDS):
        """`collect`, each message as kombu received it (properties, headers, raw body)."""
        received = []
        with Connection(self.amqp_uri) as connection:
            inbox = connection.SimpleQueue(self.queue)
            try:
                self._receive(inbox, received, lambda: len(received) >= expected, timeout)
                self._receive(inbox, received, lambda: False, quiet)
            finally:
                inbox.close()
        return received

    @staticmethod
    def _receive(inbox, received, enough, seconds):
        deadline = time.monotonic() + seconds
        while not enough() and time.monotonic() < deadline:
            try:
                message = inbox.get(block=True, timeout=min(0.5, max(0.01, deadline - time.monotonic())))
            except inbox.Empty:
                continue
            received.append(message)
            message.ack()
