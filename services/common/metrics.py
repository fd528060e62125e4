"""Prometheus metrics per service: every entrypoint's latency and errors, plus whatever a
service adds to its registry. Each service serves them at `/metrics` on its WEB_SERVER_ADDRESS."""
import time

from nameko.extensions import DependencyProvider
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from werkzeug.wrappers import Response

_registries = {}

LATENCY_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30)


def registry_for(service):
    """One registry per service name, so that tests running several containers in one process
    (or one container restarted) do not collide in the global registry."""
    if service not in _registries:
        registry = CollectorRegistry()
        _registries[service] = {
            "registry": registry,
            "latency": Histogram(
                "propdesk_entrypoint_duration_seconds", "Worker latency per entrypoint",
                ["service", "entrypoint", "kind"], buckets=LATENCY_BUCKETS, registry=registry),
            "errors": Counter(
                "propdesk_entrypoint_errors", "Workers that ended in an error",
                ["service", "entrypoint", "error"], registry=registry),
        }
    return _registries[service]["registry"]


def metric(service, name, make=None):
    """The metric `name` of `service`'s registry, made once by `make(registry)` on first use."""
    registry = registry_for(service)
    metrics = _registries[service]
    if name not in metrics:
        metrics[name] = make(registry)
    return metrics[name]


class Metrics(DependencyProvider):
    """Times every worker of the service; `self.metrics.expose()` renders the registry."""

    def __init__(self):
        self.started = {}

    def setup(self):
        self.service = self.container.service_name
        self.registry = registry_for(self.service)

    def worker_setup(self, worker_ctx):
        self.started[worker_ctx] = time.perf_counter()

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        started = self.started.pop(worker_ctx, None)
        if started is None:
            return
        entrypoint = worker_ctx.entrypoint
        name, kind = entrypoint.method_name, type(entrypoint).__name__.lower()
        metric(self.service, "latency").labels(self.service, name, kind).observe(
            time.perf_counter() - started)
        if exc_info is not None:
            metric(self.service, "errors").labels(self.service, name, exc_info[0].__name__).inc()

    def get_dependency(self, worker_ctx):
        return self

    def expose(self):
        return Response(generate_latest(self.registry), content_type=CONTENT_TYPE_LATEST)


# The business gauges of SPEC §9, one definition each: (name, help, label names). Services fill
# them through BusinessGauges (services/common/business.py) with a query on a timer.
OPEN_CASES = ("propdesk_open_cases", "Cases not closed yet, by site and kind",
              ("service", "site", "kind"))
ARREARS_UNITS = ("propdesk_arrears_units", "Units in arrears, by site and ladder stage",
                 ("site", "stage"))
MESSAGES = ("propdesk_messages", "Messages by channel and status", ("channel", "status"))


def gauge(service, spec):
    name, documentation, labels = spec
    return metric(service, name, lambda registry: Gauge(name, documentation, list(labels),
                                                        registry=registry))


def breaches_counter(service):
    return metric(service, "sla_breaches", lambda registry: Counter(
        "propdesk_sla_breaches", "Deadlines detected as breached, each once",
        ["service", "site", "kind", "deadline"], registry=registry))
