"""Every route of the gateway declares who may call it, and the router answers as declared: for
every route × role × (own site, another site; a resident's own, another's) the caller is
refused before any RPC, or reaches the RPC layer (stubbed here: no broker, no services). The
owning service checks again; that is its own tests' business."""
import re
from collections import defaultdict
from dataclasses import replace
from types import SimpleNamespace
from unittest.mock import MagicMock

import pytest
from nameko.testing.services import worker_factory
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from services.common.roles import RESIDENT, ROLES
from services.gateway import routing
from services.gateway.access import PUBLIC, Scope, site_in
from services.gateway.routing import UndeclaredAccess, route, routes_of
from services.gateway.service import GatewayService
from services.gateway.tests.support import SECRET, token
from services.gateway.web import BODY_METHODS

ROUTES = [r for r in routes_of(GatewayService) if r.documented]
OWN, OTHER = "own", "other"
TARGETS = {   # what a caller of site 001 (a resident: person p1) names
    OWN: {"site": "001", "unit": "0010101001", "person": "p1"},
    OTHER: {"site": "002", "unit": "0020101001", "person": "p2"},
}
# What a route requires besides the values its scope reads. Bodies are not validated here
# (their schemas have tests of their own), so only what a handler itself reads is given.
REQUIRED_QUERY = {"get_person": {"reason": "callback"}, "kpis": {"month": "2026-01"},
                  "registry_kpis": {"month": "2026-01"},
                  "frontdesk_kpis": {"month": "2026-01"},
                  "committee_report": {"month": "2026-01"},
                  "collection_rate": {"period": "2026-01"}}
REQUIRED_BODY = {"set_opt_out": {"channel": "sms"}}


class StubRpc:
    """Stands in for every service: records each call and answers an empty document."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, service):
        return self.service(service)

    def service(self, name, timeout=None):
        return _StubService(name, self.calls)


class _StubService:
    def __init__(self, name, calls):
        self._name, self._calls = name, calls

    def __getattr__(self, method):
        def call(*args):
            self._calls.append((self._name, method))
            return defaultdict(str)
        return call


# The resident p1 lives in the OWN unit: what registry would tell the gateway, without an RPC
# (the lookup is kept by the gateway, so a request still makes one call when it is known).
OWN_UNIT_RESIDENTS = SimpleNamespace(
    identify=lambda identity, rpc: replace(identity, units=(TARGETS[OWN]["unit"],)))


def ask(spec, role, target, monkeypatch, sites=("001",)):
    """(status, RPCs made) for `role` of `sites` calling `spec` about `target`."""
    monkeypatch.setattr(routing, "validate", lambda schema, data: None)
    rpc = StubRpc()
    worker = worker_factory(GatewayService, rpc=rpc, residents=OWN_UNIT_RESIDENTS, api=SimpleNamespace(
        secret=SECRET, config={}, responses=MagicMock()))
    named = TARGETS[target]
    path_values, body = {}, dict(REQUIRED_BODY.get(spec.name, {}))
    query = dict(REQUIRED_QUERY.get(spec.name, {}))
    for name in re.findall(r"<(?:[^:<>]+:)?([^<>]+)>", spec.path):
        path_values[name] = sorted(spec.actions)[0] if name == "action" else "x-1"
    scope = spec.scope
    if scope.kind in ("site", "unit", "person"):
        where = {"path": path_values, "body": body, "query": query}[scope.source]
        where[scope.field] = named[scope.kind]
    elif scope.kind == "filters":
        fields = spec.query._declared_fields
        query.update({name: named[name] for name in ("site", "unit") if name in fields})
    path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: path_values[m.group(1)], spec.path)
    headers = {} if role is None else {"Authorization": "Bearer " + token(
        f"{role}-1", role, list(sites), person_id="p1" if role == RESIDENT else None)}
    builder = EnvironBuilder(method=spec.method, path=path, headers=headers, query_string=query,
                             json=body if spec.method in BODY_METHODS else None)
    response = getattr(worker, spec.name)(Request(builder.get_environ()), **path_values)
    return response.status_code, rpc.calls


def expected(spec, role, target, head_office=False):
    """What the declaration says the gateway answers: "rpc" (it forwards), or a status."""
    if role not in spec.roles:
        return 403
    kind = spec.scope.kind
    # not one of the resident's units, whatever sites the token names (a list's site first)
    filters_unit = kind == "filters" and "unit" in spec.query._declared_fields and head_office
    if role == RESIDENT and target == OTHER and (kind == "unit" or filters_unit):
        return 404
    if target == OWN or kind in ("object", "any") or (head_office and kind != "person"):
        return "rpc"
    if kind == "person":
        return 404 if role == RESIDENT else "rpc"
    if kind == "unit" and role == RESIDENT:
        return 404
    return 403


@pytest.mark.parametrize("spec", ROUTES, ids=lambda r: r.name)
def test_every_route_declares_a_scope_and_roles(spec):
    assert isinstance(spec.scope, Scope)
    assert spec.roles if spec.authenticated else not spec.roles
    assert set(spec.roles) <= set(ROLES)


@pytest.mark.parametrize("spec", [r for r in ROUTES if not r.authenticated], ids=lambda r: r.name)
def test_a_public_route_needs_no_token(spec, monkeypatch):
    status, _ = ask(spec, None, OWN, monkeypatch)
    assert status not in (401, 403)


@pytest.mark.parametrize("spec", [r for r in ROUTES if r.authenticated], ids=lambda r: r.name)
def test_each_role_is_answered_as_the_route_declares(spec, monkeypatch):
    answers = {}
    for role in ROLES:
        for target in (OWN, OTHER):
            for sites in (("001",), ("*",)):
                status, calls = ask(spec, role, target, monkeypatch, sites)
                got = "rpc" if calls else status
                if got == "rpc":
                    assert len(calls) == 1, calls      # one RPC per request, nothing fetched first
                answers[role, target, sites] = (got, expected(spec, role, target, sites == ("*",)))
    wrong = {case: answer for case, answer in answers.items() if answer[0] != answer[1]}
    assert not wrong, f"(got, declared) for {spec.method} {spec.template}: {wrong}"


def test_the_route_table_has_no_undeclared_route_left():
    """A route names the site or unit it is about (in its path, body or query) as its scope."""
    for spec in ROUTES:
        candidates = set(_scoping_names(spec))
        declared = (spec.scope.kind, spec.scope.source, spec.scope.field)
        if not candidates:
            assert spec.scope.kind in ("object", "any", "public"), spec.name
        elif spec.scope.kind == "filters":
            assert any(source == "query" for _, source, _ in candidates), spec.name
        else:
            assert declared in candidates, (spec.name, declared, candidates)


def _scoping_names(spec):
    """(kind, source, field) of every path value, body field or query field naming a site, a
    unit or a person."""
    for name in re.findall(r"<(?:[^:<>]+:)?([^<>]+)>", spec.path):
        if name == "person_id":
            yield "person", "path", name
        elif name == "code":
            yield ("site" if spec.path.startswith(routing.API + "/sites/") else "unit"), "path", name
    for source, schema in (("body", spec.body), ("query", spec.query)):
        fields = schema._declared_fields if schema else {}
        for name in ("site", "unit"):
            if name in fields:
                yield name, source, name
        if "code" in fields and source == "body":
            yield ("site" if spec.path.endswith("/sites") else "unit"), source, "code"


def _declare(**access):
    return route("GET", "/somewhere", summary="", tag="", **access)(lambda self, call: None)


@pytest.mark.parametrize("access, refused", [
    ({}, "declares no scope"),
    ({"roles": ("agent",)}, "declares no scope"),
    ({"scope": site_in("path")}, "declares no roles"),
    ({"scope": site_in("path"), "roles": ("agent", "janitor")}, "unknown roles"),
    ({"scope": PUBLIC, "roles": ("agent",)}, "is public"),
])
def test_a_route_without_its_access_declared_is_refused_when_declared(access, refused):
    with pytest.raises(UndeclaredAccess, match=refused):
        _declare(**access)
