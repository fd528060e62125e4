"""What every propdesk Nameko service exposes besides its own entrypoints: `ping` and `echo`
over RPC (readiness checks and the bench baseline) and `/metrics` over HTTP; and the entrypoint
decorators the services write theirs with (`command`, `handles`).

Every process (each service and the gateway) imports this module before it makes or answers an
RPC, so it is where the shared errors are registered to cross RPC as themselves."""
import functools
import logging

from marshmallow import ValidationError
import eventlet
from nameko.events import BROADCAST, EventHandler, event_handler
from nameko.exceptions import ContainerBeingKilled
from nameko.exceptions import deserialize_to_instance
from nameko.extensions import DependencyProvider
from nameko.amqp.publish import Publisher
from nameko.constants import (
    AMQP_SSL_CONFIG_KEY, AMQP_URI_CONFIG_KEY, DEFAULT_SERIALIZER, DEFAULT_TRANSPORT_OPTIONS,
    LOGIN_METHOD_CONFIG_KEY, NON_PERSISTENT, SERIALIZER_CONFIG_KEY,
)
from nameko.messaging import QueueConsumer
from nameko.rpc import Responder, Rpc, RpcConsumer, get_rpc_exchange
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WebServer, WsgiApp
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.wrappers import Request

from services.common import calendar_sync
from services.common.auth import Caller
from services.common.clock import utcnow
from services.common.contracts import load_event
from services.common.errors import CROSSING_RPC, EXPECTED, ValidationFailed
from services.common.metrics import Metrics

log = logging.getLogger(__name__)

for _error in CROSSING_RPC:
    deserialize_to_instance(_error)

# How long a reply waits for the broker: about two minutes (0.5 s, 1.5 s, … then every 5 s).
# Nameko's own policy gives up after 3 tries, and a reply it cannot publish kills the container,
# so a routine broker restart (stop_app, start_app) took a service down with it.
OUTAGE_RETRY_POLICY = {"max_retries": 30, "interval_start": 0.5, "interval_step": 1,
                       "interval_max": 5}


class PatientPublisher(Publisher):
    # both: the connection is (re)opened under the transport options, before the publish's
    # own retries, and its failure there is not one that the publish would retry
    retry_policy = OUTAGE_RETRY_POLICY
    transport_options = {**DEFAULT_TRANSPORT_OPTIONS, **OUTAGE_RETRY_POLICY}


class ReplyPublisher(PatientPublisher):
    """A reply goes to its caller's exclusive, non-durable reply queue: a publisher confirm
    would prove only that the broker took it, not that the caller gets it (a broker restart
    loses the queue, confirmed or not), and it cost a broker round trip on every RPC. A reply
    that never arrives is the caller's timeout (503), and a command retried with its
    Idempotency-Key replays the recorded answer. Transient for the same reason."""
    use_confirms = False
    delivery_mode = NON_PERSISTENT


class PatientResponder(Responder):
    publisher_cls = ReplyPublisher


class PatientRpcConsumer(RpcConsumer):
    """Nameko's RpcConsumer, its replies published with OUTAGE_RETRY_POLICY. (A reply for a
    request whose connection died on the way is still sent, then dropped by the broker if its
    caller's reply queue went; the request itself comes back and a command with an
    Idempotency-Key replays its answer.)"""

    def handle_result(self, message, result, exc_info):
        config = self.container.config
        responder = PatientResponder(
            config[AMQP_URI_CONFIG_KEY], get_rpc_exchange(config),
            config.get(SERIALIZER_CONFIG_KEY, DEFAULT_SERIALIZER), message,
            ssl=config.get(AMQP_SSL_CONFIG_KEY), login_method=config.get(LOGIN_METHOD_CONFIG_KEY))
        result, exc_info = responder.send_response(result, exc_info)
        self.queue_consumer.ack_message(message)
        return result, exc_info


class PatientRpc(Rpc):
    """`@rpc` whose replies ride out a broker outage. Every RPC entrypoint of a service must be
    one: the consumer is shared by class, and two would split the service's queue between them."""
    rpc_consumer = PatientRpcConsumer()


rpc = PatientRpc.decorator


class _CatchAllApp(WsgiApp):
    """Nameko's WSGI app, except that a request no rule takes goes to the `catch_all` entrypoint
    when there is one (the gateway's problem-answering fallback), not to werkzeug's HTML 404:
    even a catch-all `<path:…>` rule matches no path with a newline in it."""

    def __call__(self, environ, start_response):
        request = Request(environ, shallow=True)
        try:
            provider, values = self.url_map.bind_to_environ(environ).match()
        except (NotFound, MethodNotAllowed) as exc:
            provider = self.server.catch_all
            if provider is None:
                return exc(environ, start_response)
            values = {"path": request.path}
        request.path_values = values
        return provider.handle_request(request)(environ, start_response)


class CatchAllWebServer(WebServer):
    def get_wsgi_app(self):
        return _CatchAllApp(self)

    @property
    def catch_all(self):
        return next((p for p in self._providers if p.catch_all), None)


class Http(HttpRequestHandler):
    """`@http(method, url)`; `catch_all=True` for the entrypoint that answers what no rule
    matches. Every HTTP entrypoint of a process must be one: the server is shared by class."""
    server = CatchAllWebServer()

    def __init__(self, method, url, catch_all=False, **kwargs):
        self.catch_all = catch_all
        super().__init__(method, url, **kwargs)


http = Http.decorator


class Clock(DependencyProvider):
    """`self.clock()` is the current UTC instant. Tests replace it (worker_factory /
    replace_dependencies) to run SLA and ladder rules at an exact moment."""

    def get_dependency(self, worker_ctx):
        return utcnow


def command(method=None, *, replays=True, **kwargs):
    """`@rpc` for entrypoints that raise ProblemErrors as answers, not as faults: they are
    sent back to the caller as themselves and not logged with a traceback.

    Called with a client's Idempotency-Key (the gateway carries it), a command of a service
    with a `uow` runs once per key and replays its first answer (`UnitOfWork.once`). The
    sweeps say `replays=False`: they commit batch by batch, and running one again at the same
    `as_of` finds nothing left to do anyway."""
    def decorate(method):
        if replays:
            method = _once(method)
        return rpc(expected_exceptions=EXPECTED, **kwargs)(method)
    return decorate(method) if method else decorate


def _once(method):
    @functools.wraps(method)
    def entrypoint(self, *args, **kwargs):
        uow = getattr(self, "uow", None)
        if uow is None:
            return method(self, *args, **kwargs)
        return uow.once(lambda: method(self, *args, **kwargs))
    return entrypoint


def load(schema, payload, **kwargs):
    """Validate `payload` with a marshmallow schema; a ValidationFailed naming every bad field."""
    try:
        return schema.load(payload or {}, **kwargs)
    except ValidationError as exc:
        raise ValidationFailed.from_messages(exc.messages) from exc


def handles(source, event, *, handler=None, when=None, every_replica=False, batch=None):
    """`@event_handler(source, event)` for a service with a `uow`, calling the method as
    `method(self, data, envelope)` with the event's payload loaded by its versioned contract,
    once per event id.

    An event that breaks its contract is logged and dropped: no redelivery can mend it, and
    requeued it would come back for ever. Any other error requeues the event, so that a
    database hiccup loses nothing. The event id is claimed (`uow.first_time`, keyed
    `<service>.<event>` or `handler`) in the method's unit of work, so the claim commits with
    the method's effect or not at all; a method that commits nothing leaves the event unclaimed.
    `when(data)` false: an event this service has no business with, not claimed.

    `every_replica`: the method changes what each process holds in memory (the calendar), not
    the database: every replica gets the event (a broadcast queue of its own, gone with the
    process, which loads what it missed at start instead), nothing is claimed, and the method
    must be idempotent.

    `batch=n`: the method is `method(self, envelopes)`, called with up to n of these events at
    once (`BatchEventHandler`: one worker for what the broker delivered together), their ids
    claimed in one statement (`uow.first_times`) and only the first-time ones passed on. Each
    event is acked only after the commit of its batch, so a crash redelivers it and the claim
    keeps it once; a batch that fails is run again an event at a time in the same worker, so
    that only the event that fails on its own is requeued."""
    name = f"{source}.{event}"

    def decorate(method):
        if batch:
            return _batched(name, method, handler, when, event, source, batch)

        @functools.wraps(method)
        def entrypoint(self, body):
            envelope = _contracted(name, body)
            if envelope is None or (when is not None and not when(envelope["data"])):
                return None
            if not every_replica and not self.uow.first_time(
                    envelope["id"], handler or f"{self.name}.{event}"):
                return None
            return method(self, envelope["data"], envelope)
        if every_replica:
            return event_handler(source, event, handler_type=BROADCAST, reliable_delivery=False,
                                 requeue_on_error=True)(entrypoint)
        return event_handler(source, event, requeue_on_error=True)(entrypoint)
    return decorate


def _batched(name, method, handler, when, event, source, batch):
    @functools.wraps(method)
    def entrypoint(self, bodies):
        """The positions in `bodies` (a list, or one body when called directly) that failed and
        go back to the queue."""
        bodies = bodies if isinstance(bodies, list) else [bodies]
        key = handler or f"{self.name}.{event}"
        envelopes = [_contracted(name, body) for body in bodies]
        kept = [(i, e) for i, e in enumerate(envelopes)
                if e is not None and (when is None or when(e["data"]))]
        try:
            _run_batch(self, method, key, [e for _, e in kept])
            return []
        except Exception:
            self.uow.session.rollback()
            if len(kept) <= 1:
                raise
        failed = []
        for i, envelope in kept:
            try:
                _run_batch(self, method, key, [envelope])
            except Exception:
                log.exception("a %s event failed in its batch and alone; requeued", name,
                              extra={"event": name, "event_id": envelope["id"]})
                self.uow.session.rollback()
                failed.append(i)
        return failed
    return BatchEventHandler.decorator(source, event, batch=batch, requeue_on_error=True)(entrypoint)


def _run_batch(service, method, key, envelopes):
    if not envelopes:
        return
    fresh = service.uow.first_times([envelope["id"] for envelope in envelopes], key)
    envelopes = [envelope for envelope in envelopes if envelope["id"] in fresh
                 and not fresh.discard(envelope["id"])]     # an id twice in a batch: once
    if envelopes:
        method(service, envelopes)


class BatchQueueConsumer(QueueConsumer):
    """The queue consumer of batch handlers: its own channel, whose prefetch is two batches of
    its largest handler's (one being made while the next arrives), not the process's
    max_workers (each batch is one worker)."""

    @property
    def prefetch_count(self):
        return 2 * max([provider.batch for provider in self._providers] or [1])


class BatchEventHandler(EventHandler):
    """`@event_handler` whose worker gets a list of bodies: what arrived together, up to
    `batch`, after waiting at most LINGER_SECONDS for more; each message acked (or requeued,
    the positions the worker returns, or all when it fails) when that worker ends."""
    queue_consumer = BatchQueueConsumer()
    LINGER_SECONDS = 0.01

    def __init__(self, *args, batch=100, **kwargs):
        self.batch = batch
        self._pending, self._flusher = [], None
        super().__init__(*args, **kwargs)

    def handle_message(self, body, message):
        self._pending.append((body, message))
        if len(self._pending) >= self.batch:
            self._flush()
        elif self._flusher is None:
            self._flusher = self.container.spawn_managed_thread(self._linger)

    def _linger(self):
        eventlet.sleep(self.LINGER_SECONDS)
        self._flusher = None
        self._flush()

    def _flush(self):
        batch, self._pending = self._pending[:self.batch], self._pending[self.batch:]
        if not batch:
            return
        messages = [message for _, message in batch]
        context_data = self.unpack_message_headers(messages[0])
        try:
            self.container.spawn_worker(
                self, ([body for body, _ in batch],), {}, context_data=context_data,
                handle_result=functools.partial(self.handle_batch_result, messages))
        except ContainerBeingKilled:
            for message in messages:
                self.queue_consumer.requeue_message(message)

    def handle_batch_result(self, messages, worker_ctx, result=None, exc_info=None):
        failed = set(range(len(messages))) if exc_info is not None else set(result or ())
        for i, message in enumerate(messages):
            if i in failed:
                self.queue_consumer.requeue_message(message)
            else:
                self.queue_consumer.ack_message(message)
        return result, exc_info


def _contracted(name, body):
    try:
        return load_event(body)
    except ValidationFailed as exc:
        event_id = body.get("id") if isinstance(body, dict) else None
        log.error("dropped a %s event that breaks its contract: %s", name, exc,
                  extra={"event": name, "event_id": event_id, **exc.extra})
        return None


class ServiceBase:
    """Every service's own dependencies come on top of these: `self.caller` (identity and
    correlation id), `self.clock()` (now, replaceable in tests), its metrics, and the working-day
    calendar's entered years (loaded at start, kept current by the event below)."""
    metrics = Metrics()
    caller = Caller()
    clock = Clock()
    working_calendar = calendar_sync.CalendarSync()

    @handles("notifications", "calendar_entered", every_replica=True)
    def on_calendar_entered(self, data, envelope):
        calendar_sync.apply(data)

    @rpc
    def ping(self):
        return {"service": self.name, "ok": True}

    @rpc
    def echo(self, payload=None):
        return payload

    @http("GET", "/metrics")
    def serve_metrics(self, request):
        return self.metrics.expose()
