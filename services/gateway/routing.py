"""The gateway's routing and request pipeline. A handler is declared once with `@route`, which
both registers it as a Nameko `@http` entrypoint and records what the OpenAPI document says
about it; the pipeline around every handler does the rest:

    correlation id → bearer token (401) → the route's roles (403) → a resident's own units
    (services/gateway/residents.py) → identity onto every RPC →
    body read (413) → Idempotency-Key claim / replay → JSON (400) and schema (422) → query
    (422) → the route's scope (403, or 404 to a resident) → the handler → JSON answer, or a
    problem document for any error.

Handlers only forward: every permission a route needs is declared on it.

A service using it has `api = Api()`, `caller = Caller()`, `rpc = TimedRpc()`,
`residents = ResidentUnits()` and `uow = Database(Base)` with the gateway's storage Base.
"""
import logging
import re
from dataclasses import dataclass, field
from datetime import timedelta
from functools import wraps

from nameko.extensions import DependencyProvider
from nameko.web.handlers import HttpRequestHandler
from prometheus_client import Counter
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import MethodNotAllowed as NoSuchMethod, NotFound as NoSuchPath
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Response

from services.common.clock import utcnow
from services.common.entrypoints import http
from services.common.roles import ROLES
from services.common.errors import NotFound
from services.common.metrics import metric
from services.gateway import idempotency, tokens
from services.gateway.access import PUBLIC, Scope
from services.gateway.openapi import build as build_openapi
from services.gateway.web import (
    BODY_METHODS, CORRELATION_HEADER, MethodNotAllowed, as_problem, correlation_id_of, json_response,
    load_query, parse_json, problem_response, read_body, validate,
)

log = logging.getLogger(__name__)

API = "/api/v1"
FALLBACK_METHODS = "GET,POST,PUT,PATCH,DELETE,OPTIONS"


@dataclass(frozen=True)
class Route:
    method: str
    path: str                       # werkzeug rule, absolute
    name: str                       # the handler, also the OpenAPI operationId
    summary: str
    tag: str
    scope: Scope
    roles: tuple = ()               # who may call it at all; the service may narrow per action
    body: type | None = None        # schema of the JSON body, from the owning service
    actions: dict = field(default_factory=dict)  # or one schema per value of <action>
    query: type | None = None       # schema of the query string
    response: type | None = None    # schema of the answer
    many: bool = False              # the answer is a page {items: [response], next_cursor}
    status: int = 200
    documented: bool = True
    # other content types the answer comes in besides JSON ({"text/html": "description"}),
    # e.g. a printable page; documented as strings
    media: dict = field(default_factory=dict)

    @property
    def authenticated(self):
        return self.scope.authenticated

    @property
    def template(self):
        """The path in OpenAPI's form: /tickets/{ticket_id}."""
        return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", self.path)


class UndeclaredAccess(TypeError):
    """A route that does not say who may call it is refused when it is declared."""


def route(method, path, *, summary, tag, scope=None, roles=(), root=False, **options):
    """Declare a gateway endpoint: `path` is under /api/v1 unless `root`; `scope` (see
    access.py) and `roles` say who may call it, and the pipeline enforces both. The handler is
    `(self, call, **path_values)` and returns a JSON-able answer (or a werkzeug Response)."""
    def decorate(handler):
        _require_declared_access(handler.__name__, scope, roles)
        spec = Route(method=method, path=path if root else API + path, name=handler.__name__,
                     summary=summary, tag=tag, scope=scope, roles=tuple(dict.fromkeys(roles)),
                     **options)

        @wraps(handler)
        def endpoint(self, request, **path_values):
            return serve(self, request, spec, handler, path_values)

        endpoint.route = spec
        return http(method, spec.path)(endpoint)
    return decorate


def _require_declared_access(name, scope, roles):
    if not isinstance(scope, Scope):
        raise UndeclaredAccess(f"route {name} declares no scope")
    if scope.authenticated and not roles:
        raise UndeclaredAccess(f"route {name} declares no roles")
    if not scope.authenticated and roles:
        raise UndeclaredAccess(f"route {name} is public: roles would not be checked")
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise UndeclaredAccess(f"route {name} names unknown roles {sorted(unknown)}")


def fallback(handler):
    """Every path no route claims (werkzeug tries static rules first), so that unknown paths
    and wrong methods are answered as problems too."""
    spec = Route(method=FALLBACK_METHODS, path="/<path:path>", name=handler.__name__,
                 summary="", tag="", scope=PUBLIC, documented=False)

    @wraps(handler)
    def endpoint(self, request, path=""):
        return serve(self, request, spec, handler, {"path": path})

    endpoint.route = spec
    http(FALLBACK_METHODS, "/")(endpoint)
    return http(FALLBACK_METHODS, spec.path, catch_all=True)(endpoint)


def routes_of(service_cls):
    members = (getattr(service_cls, name) for name in dir(service_cls))
    return [member.route for member in members if isinstance(getattr(member, "route", None), Route)]


@dataclass
class Call:
    """What a handler gets: who calls, and the body and query, already checked."""
    request: object
    identity: object = None
    payload: dict = field(default_factory=dict)
    query: dict = field(default_factory=dict)


class Api(DependencyProvider):
    """The route table (for OpenAPI and for telling 404 from 405), built once at setup, and
    the settings the pipeline needs."""

    def setup(self):
        self.config = config = self.container.config
        self.secret = str(config["JWT_SECRET"])
        rpc_timeout = float(config.get("RPC_TIMEOUT", 10))
        # A claim still in flight after this long belongs to a gateway that died mid-request
        # (a request makes one call, bounded by RPC_TIMEOUT; the rest is generous margin).
        self.lease = timedelta(seconds=3 * rpc_timeout + 30)
        self.retention = timedelta(hours=float(config.get("IDEMPOTENCY_RETENTION_HOURS", 24)))
        self.routes = routes_of(self.container.service_cls)
        self.openapi = build_openapi([r for r in self.routes if r.documented])
        self.url_map = Map([
            Rule(entrypoint.url, methods=entrypoint.method.split(","))
            for entrypoint in self.container.entrypoints
            if isinstance(entrypoint, HttpRequestHandler)
            and entrypoint.method != FALLBACK_METHODS
        ])
        self.responses = _responses_counter(self.container.service_name)

    def get_dependency(self, worker_ctx):
        return self

    def no_route(self, path, method):
        """The problem for a request no route took: 405 if the path exists, else 404."""
        try:
            self.url_map.bind("gateway").match("/" + path.lstrip("/"), method)
        except NoSuchMethod as exc:
            allowed = sorted(exc.valid_methods or ())
            return MethodNotAllowed(f"{method} is not allowed here; use {', '.join(allowed)}",
                                    {"allowed_methods": allowed})
        except NoSuchPath:
            pass
        return NotFound(f"no such resource: /{path.lstrip('/')}")


def _responses_counter(service):
    return metric(service, "http_responses", lambda registry: Counter(
        "propdesk_http_responses", "Gateway answers by route and status",
        ["route", "status"], registry=registry))


def serve(service, request, route, handler, path_values):
    correlation_id = correlation_id_of(request)
    try:
        response = _authenticated(service, request, route, handler, path_values, correlation_id)
    except Exception as exc:  # every failure is answered as a problem, never as a traceback
        response = _problem(exc, request, correlation_id)
    response.headers[CORRELATION_HEADER] = correlation_id
    service.api.responses.labels(route.name, str(response.status_code)).inc()
    return response


def _authenticated(service, request, route, handler, path_values, correlation_id):
    api = service.api
    identity = None
    if route.authenticated:
        identity = tokens.identity_from_header(request.headers.get("Authorization"), api.secret)
        identity.require_role(f"{route.method} {route.template}", *route.roles)
        service.caller.act_as(identity, correlation_id=correlation_id)
        if identity.is_resident:
            identity = service.residents.identify(identity, service.rpc)
            service.caller.act_as(identity, correlation_id=correlation_id)
    raw = read_body(request) if request.method in BODY_METHODS else b""
    key = request.headers.get(idempotency.HEADER)
    if identity is None or request.method != "POST" or key is None:
        return _answer(service, request, route, handler, path_values, identity, raw)

    session = service.uow.session
    caller, what, digest = identity.sub, f"POST {request.path}", idempotency.fingerprint(raw)
    stored = idempotency.claim(session, caller, key, what, digest, utcnow(), api.lease,
                               api.retention)
    if stored is not None:
        replay = Response(stored.body, status=stored.status, content_type=stored.content_type)
        replay.headers[idempotency.REPLAYED_HEADER] = "true"
        return replay
    service.caller.carry_idempotency(key, idempotency.request_digest(what, digest))
    try:
        response = _answer(service, request, route, handler, path_values, identity, raw)
    except Exception as exc:
        response = _problem(exc, request, correlation_id)
    try:
        if response.status_code < 500:
            idempotency.complete(session, caller, key, response.status_code,
                                 response.content_type, response.get_data(as_text=True), utcnow())
        else:
            idempotency.release(session, caller, key)
    except SQLAlchemyError:
        # The request is done: its answer is worth more to the client than the replay record.
        # The claim stays in flight (409 to a duplicate) until its lease runs out.
        session.rollback()
        log.exception("could not record the answer for %s %s", caller, key,
                      extra={"correlation_id": correlation_id})
    return response


def _answer(service, request, route, handler, path_values, identity, raw):
    call = Call(request=request, identity=identity)
    if route.query is not None:
        call.query = load_query(route.query, request.args)
    if request.method in BODY_METHODS:
        call.payload = parse_json(raw, request.mimetype)
        schema = route.body
        if route.actions:
            action = path_values["action"]
            if action not in route.actions:
                raise NotFound(f"no action {action}", {"allowed_actions": sorted(route.actions)})
            schema = route.actions[action]
        if schema is not None:
            validate(schema, call.payload)
    route.scope.check(identity, call, path_values)
    result = handler(service, call, **path_values)
    if isinstance(result, Response):
        return result
    return json_response(result, route.status)


def _problem(exc, request, correlation_id):
    problem = as_problem(exc)
    context = {"correlation_id": correlation_id, "status": problem.status}
    if problem is not exc:
        log.error("%s %s failed", request.method, request.path, exc_info=exc, extra=context)
    elif problem.status >= 500:
        log.warning("%s %s: %s", request.method, request.path, problem.detail, extra=context)
    return problem_response(problem, request.path, correlation_id)
