"""Two renovation processes sharing one database (SQLite and PostgreSQL), their sweeps run at
the same moment many times over: every missed review is breached and alerted exactly once."""
import time
from datetime import datetime, timedelta, timezone

import eventlet
import pytest
from nameko.standalone.rpc import ClusterRpcProxy

from services.common.auth import IDENTITY_KEY
from services.common.config import load_config
from tests.flows import SITE, site_payload, unit_payload
from bench.harness import System
from tests.test_renovation_flow import AGENT, MANAGER, OPS, UNIT, application

pytestmark = [pytest.mark.integration]

LATE_APPLICATIONS = 30
SWEEPS = 8


@pytest.fixture
def two_renovation_processes(tmp_path, vhost, db_url):
    """registry and renovation as OS processes, and a second renovation process on the same
    broker vhost and the same renovation database."""
    db_urls = {"renovation": db_url}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = System(str(tmp_path / "a"), vhost.amqp_uri, db_urls=db_urls,
                   services=("registry", "renovation"))
    second = System(str(tmp_path / "b"), vhost.amqp_uri, db_urls=db_urls, services=("renovation",))
    try:
        first.start()
        second.start()
        config = load_config(AMQP_URI=vhost.amqp_uri)
        yield config
    finally:
        second.shutdown()
        first.shutdown()


def rpc(config, caller, timeout=30):
    return ClusterRpcProxy(config, context_data={IDENTITY_KEY: caller}, timeout=timeout)


def until_up(config, deadline=60):
    end = time.monotonic() + deadline
    while True:
        try:
            with ClusterRpcProxy(config, timeout=2) as proxy:
                proxy.registry.ping()
                proxy.renovation.ping()
                return
        except Exception:
            if time.monotonic() > end:
                raise
            time.sleep(0.5)


def test_sweeps_of_two_processes_at_once_breach_each_review_once(two_renovation_processes, event_tap):
    config = two_renovation_processes
    until_up(config)
    with rpc(config, MANAGER) as proxy:
        proxy.registry.create_site(site_payload(SITE))
    with rpc(config, AGENT) as proxy:
        proxy.registry.create_unit(unit_payload(UNIT, "13900000001"))
        long_ago = (datetime.now(timezone.utc) - timedelta(days=10)).isoformat()
        late = {proxy.renovation.create_renovation(application(submitted_at=long_ago))["id"]
                for _ in range(LATE_APPLICATIONS)}
    tap = event_tap("renovation", "sla_breached")
    as_of = datetime.now(timezone.utc).isoformat()

    def sweep(_):
        with rpc(config, OPS) as proxy:
            return proxy.renovation.sweep({"as_of": as_of})

    reports = list(eventlet.GreenPool(SWEEPS).imap(sweep, range(SWEEPS)))

    swept = [b["renovation_id"] for report in reports for b in report["breaches"]]
    assert sorted(swept) == sorted(late)
    with rpc(config, AGENT) as proxy:
        page = proxy.renovation.list_renovations({"site": SITE}, None, 200)["items"]
    assert {r["id"]: [b["deadline"] for b in r["breaches"]] for r in page} == {
        rid: ["review"] for rid in late}
    alerts = tap.collect(expected=LATE_APPLICATIONS)
    assert sorted(body["data"]["subject_id"] for _, body in alerts) == sorted(late)
