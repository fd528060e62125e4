"""What every propdesk Nameko service exposes besides its own entrypoints: `ping` and `echo`
over RPC (readiness checks and the bench baseline) and `/metrics` over HTTP.

Every process (each service and the gateway) imports this module before it makes or answers an
RPC, so it is where the shared errors are registered to cross RPC as themselves."""
from marshmallow import ValidationError
from nameko.exceptions import deserialize_to_instance
from nameko.extensions import DependencyProvider
from nameko.rpc import rpc
from nameko.web.handlers import http

from services.common.auth import Caller
from services.common.clock import utcnow
from services.common.errors import CROSSING_RPC, EXPECTED, ValidationFailed
from services.common.metrics import Metrics

for _error in CROSSING_RPC:
    deserialize_to_instance(_error)


class Clock(DependencyProvider):
    """`self.clock()` is the current UTC instant. Tests replace it (worker_factory /
    replace_dependencies) to run SLA and ladder rules at an exact moment."""

    def get_dependency(self, worker_ctx):
        return utcnow


class ServiceBase:
    """Every service's own dependencies come on top of these: `self.caller` (identity and
    correlation id), `self.clock()` (now, replaceable in tests) and its metrics."""
    metrics = Metrics()
    caller = Caller()
    clock = Clock()

    @rpc
    def ping(self):
        return {"service": self.name, "ok": True}

    @rpc
    def echo(self, payload=None):
        return payload

    @http("GET", "/metrics")
    def serve_metrics(self, request):
        return self.metrics.expose()


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
