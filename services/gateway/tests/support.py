"""Helpers the gateway tests share (fixtures are in conftest.py)."""
import os

from services.gateway.tokens import mint

SECRET = "gateway-tests-secret-0123456789abcdef"
AMQP_URI = os.environ.get("PROPDESK_AMQP_URI", "pyamqp://guest:guest@127.0.0.1:5672/")


def token(sub="alice", role="agent", sites=("001",), person_id=None, secret=SECRET, **kw):
    return mint(sub, role, list(sites), person_id=person_id, secret=secret, **kw)
