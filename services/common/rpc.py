"""RPC with a deadline. A plain RpcProxy to a stopped service whose queue still exists waits
forever, and the request would run whenever the service comes back, long after the client gave
up. Here every request is published with a per-message TTL equal to the deadline (RabbitMQ drops
it unread once the deadline passes) and the reply is awaited no longer than that; a service
that is down, unknown or too slow becomes ServiceUnavailable (503)."""
import eventlet
from amqp.exceptions import AMQPError
from kombu.exceptions import KombuError
from nameko.exceptions import MethodNotFound, UnknownService
from nameko.extensions import DependencyProvider
from nameko.rpc import MethodProxy, ReplyListener

from services.common.errors import ServiceUnavailable

DEFAULT_TIMEOUT = 10.0
BROKER_ERRORS = (OSError, KombuError, AMQPError)


class TimedReplyListener(ReplyListener):
    def forget(self, correlation_id):
        """Stop waiting for a reply; one that still arrives is acknowledged and dropped."""
        self._reply_events.pop(correlation_id, None)


class TimedRpc(DependencyProvider):
    """`self.rpc.registry.get_site(code)`, or `self.rpc.service(name, timeout=2).ping()`.
    The deadline is RPC_TIMEOUT seconds from config."""

    reply_listener = TimedReplyListener()

    def setup(self):
        self.timeout = float(self.container.config.get("RPC_TIMEOUT", DEFAULT_TIMEOUT))

    def get_dependency(self, worker_ctx):
        return Cluster(worker_ctx, self.reply_listener, self.timeout)


class Cluster:
    def __init__(self, worker_ctx, reply_listener, timeout):
        self._worker_ctx = worker_ctx
        self._reply_listener = reply_listener
        self.timeout = timeout

    def service(self, name, timeout=None):
        return ServiceProxy(self._worker_ctx, name, self._reply_listener, timeout or self.timeout)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return self.service(name)


class ServiceProxy:
    def __init__(self, worker_ctx, service_name, reply_listener, timeout):
        self._args = (worker_ctx, service_name, reply_listener, timeout)

    def __getattr__(self, method_name):
        if method_name.startswith("_"):
            raise AttributeError(method_name)
        worker_ctx, service_name, reply_listener, timeout = self._args
        return TimedMethodProxy(worker_ctx, service_name, method_name, reply_listener, timeout)


class _Tracking:
    """Stands in for the reply listener inside nameko's MethodProxy, to learn the correlation
    id of the request it publishes (nameko keeps it to itself)."""

    def __init__(self, listener):
        self.listener = listener
        self.correlation_ids = []

    @property
    def routing_key(self):
        return self.listener.routing_key

    def get_reply_event(self, correlation_id):
        self.correlation_ids.append(correlation_id)
        return self.listener.get_reply_event(correlation_id)


class TimedMethodProxy(MethodProxy):
    def __init__(self, worker_ctx, service_name, method_name, reply_listener, timeout):
        self.timeout = timeout
        self.tracking = _Tracking(reply_listener)
        super().__init__(worker_ctx, service_name, method_name, self.tracking, expiration=timeout)

    def __call__(self, *args, **kwargs):
        deadline = eventlet.Timeout(self.timeout)
        try:
            return self._call_before(deadline, args, kwargs)
        except BaseException:
            # nameko registers the reply before publishing and never drops it on failure.
            for correlation_id in self.tracking.correlation_ids:
                self.tracking.listener.forget(correlation_id)
            raise
        finally:
            deadline.cancel()

    def _call_before(self, deadline, args, kwargs):
        try:
            try:
                reply = self.call_async(*args, **kwargs)
            except UnknownService as exc:
                raise self._unavailable("is not running") from exc
            except BROKER_ERRORS as exc:
                raise ServiceUnavailable(f"the message broker is unreachable: {exc}",
                                         {"service": "broker"}) from exc
            return reply.result()
        except eventlet.Timeout as exc:
            if exc is not deadline:
                raise
            raise self._unavailable(f"did not answer within {self.timeout:g} s") from None
        except MethodNotFound as exc:
            raise self._unavailable(f"does not offer {self.method_name} (an older version?)") from exc

    def _unavailable(self, what):
        return ServiceUnavailable(f"{self.service_name} {what}", {"service": self.service_name})
