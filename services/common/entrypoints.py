"""What every propdesk Nameko service exposes besides its own entrypoints: `ping` and `echo`
over RPC (readiness checks and the bench baseline) and `/metrics` over HTTP; and the entrypoint
decorators the services write theirs with (`command`, `handles`).

Every process (each service and the gateway) imports this module before it makes or answers an
RPC, so it is where the shared errors are registered to cross RPC as themselves."""
import functools
import logging

from marshmallow import ValidationError
from nameko.events import BROADCAST, event_handler
from nameko.exceptions import deserialize_to_instance
from nameko.extensions import DependencyProvider
from nameko.rpc import rpc
from nameko.web.handlers import http

from services.common import calendar_sync
from services.common.auth import Caller
from services.common.clock import utcnow
from services.common.contracts import load_event
from services.common.errors import CROSSING_RPC, EXPECTED, ValidationFailed
from services.common.metrics import Metrics

log = logging.getLogger(__name__)

for _error in CROSSING_RPC:
    deserialize_to_instance(_error)


class Clock(DependencyProvider):
    """`self.clock()` is the current UTC instant. Tests replace it (worker_factory /
    replace_dependencies) to run SLA and ladder rules at an exact moment."""

    def get_dependency(self, worker_ctx):
        return utcnow


def command(method=None, **kwargs):
    """`@rpc` for entrypoints that raise ProblemErrors as answers, not as faults: they are
    sent back to the caller as themselves and not logged with a traceback."""
    decorator = rpc(expected_exceptions=EXPECTED, **kwargs)
    return decorator(method) if method else decorator


def load(schema, payload, **kwargs):
    """Validate `payload` with a marshmallow schema; a ValidationFailed naming every bad field."""
    try:
        return schema.load(payload or {}, **kwargs)
    except ValidationError as exc:
        raise ValidationFailed.from_messages(exc.messages) from exc


def handles(source, event, *, handler=None, when=None, every_replica=False):
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
    must be idempotent."""
    name = f"{source}.{event}"

    def decorate(method):
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
