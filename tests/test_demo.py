"""The demo data (`make run DEMO=1`, `make demo`) loads through the gateway into a running system,
and loading it again adds nothing."""
import os
import subprocess
import sys

import pytest

from tests.conftest import JWT_SECRET
from bench.harness import ROOT

pytestmark = pytest.mark.e2e


def load_demo(system):
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "deploy", "local", "demo.py"), "--url", system.url],
        env=dict(os.environ, PROPDESK_JWT_SECRET=JWT_SECRET), capture_output=True, text=True,
        timeout=120)


def test_the_demo_loads_once_however_often_it_is_run(system):
    first = load_demo(system)
    assert first.returncode == 0, first.stderr
    assert "demo data loaded" in first.stdout
    desk = system.client("agent", ["001"], sub="agent-li")
    tickets = desk.get("/tickets", site="001").json()["items"]
    assert sorted((t["kind"], t["status"]) for t in tickets) == [("complaint", "received"), ("repair", "on_site")]
    assert len(desk.get("/units", site="001").json()["items"]) == 4

    again = load_demo(system)
    assert again.returncode == 0, again.stderr
    assert len(desk.get("/tickets", site="001").json()["items"]) == 2
