"""Every HTTP and RPC entrypoint of every service is the shared package's kind: Nameko shares a
web server and an RPC consumer by class, so one plain `@http` would start a second WSGI app
that answers the API's paths with HTML 404s, and one plain `@rpc` would split a service's queue
with a consumer whose replies die with the broker."""
import importlib

import pytest
from nameko.rpc import Rpc
from nameko.web.handlers import HttpRequestHandler

from services.common import SERVICES
from services.common.entrypoints import Http, PatientRpc


def entrypoints_of(service_cls):
    for name in dir(service_cls):
        for entrypoint in getattr(getattr(service_cls, name), "nameko_entrypoints", ()):
            yield name, entrypoint


@pytest.mark.parametrize("service", SERVICES)
def test_every_http_and_rpc_entrypoint_is_the_shared_kind(service):
    module = importlib.import_module(f"services.{service}.service")
    [service_cls] = [cls for cls in vars(module).values()
                     if isinstance(cls, type) and getattr(cls, "name", None) == service]
    found = list(entrypoints_of(service_cls))
    assert found
    for name, entrypoint in found:
        if isinstance(entrypoint, HttpRequestHandler):
            assert isinstance(entrypoint, Http), f"{service}.{name} is a plain @http"
        if isinstance(entrypoint, Rpc):
            assert isinstance(entrypoint, PatientRpc), f"{service}.{name} is a plain @rpc"
