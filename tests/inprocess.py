"""Real Nameko services inside the test process, on the real broker: whole containers
(`Cluster`), a service's Database dependency on its own (`BoundDatabase`: the unit of work,
outbox and relay a worker gets), a queue of the test's own on a service's event exchange
(`EventTap`), and a path to the broker that a test can cut (`BrokerLink`). Needs eventlet's
monkey-patching (tests/conftest.py does it first)."""
import socket
import sys
import time
import uuid
from contextlib import contextmanager
from urllib.parse import urlsplit

import eventlet
from kombu import Connection, Queue
from nameko.cli.run import import_service
from nameko.containers import ServiceContainer, WorkerContext
from nameko.events import get_event_exchange
from nameko.standalone.rpc import ClusterRpcProxy

from services.common.auth import IDENTITY_KEY, Identity
from services.common.db import Database
from tests.flows import SETTLE_SECONDS
from tests.infra import AMQP_SERVER, free_port

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
            received.append((message.delivery_info["routing_key"], message.payload))
            message.ack()


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


def _shut(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already shut down, or never connected
        pass
