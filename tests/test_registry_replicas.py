"""Two registry processes sharing one database (SQLite and PostgreSQL), their sweeps run at the
same moment many times over: every approved change that affects fees is applied on its day
exactly once, and announced (registry.unit_changed) exactly once."""
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import eventlet
import pytest

from services.common.config import load_config
from tests.flows import SITE, eventually, site_payload, unit_payload
from bench.harness import System
from tests.test_renovation_replicas import rpc

pytestmark = [pytest.mark.integration]

CHANGES = 12
SWEEPS = 8
AGENT = {"sub": "agent-ann", "role": "agent", "sites": [SITE]}
MANAGER = {"sub": "mgr-li", "role": "manager", "sites": [SITE]}
OPS = {"sub": "ops", "role": "ops_admin", "sites": ["*"]}


@pytest.fixture
def two_registry_processes(tmp_path, vhost, db_url):
    db_urls = {"registry": db_url}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = System(str(tmp_path / "a"), vhost.amqp_uri, db_urls=db_urls, services=("registry",))
    second = System(str(tmp_path / "b"), vhost.amqp_uri, db_urls=db_urls, services=("registry",))
    try:
        first.start()
        second.start()
        yield load_config(AMQP_URI=vhost.amqp_uri)
    finally:
        second.shutdown()
        first.shutdown()


def ping(config):
    try:
        with rpc(config, OPS, timeout=2) as proxy:
            return proxy.registry.ping()
    except Exception:   # not up yet: any failure to answer means the same
        return None


def approved_changes(config, units, change_of):
    """Registry up, the site made, each of `units` made and a change request asked for it
    (`change_of(code, unit)`: its body, from the unit made), all approved by the manager."""
    eventually(lambda: ping(config), timeout=60, what="registry up")
    with rpc(config, MANAGER) as proxy:
        proxy.registry.create_site(site_payload(SITE))
    with rpc(config, AGENT) as proxy:
        requests = [proxy.registry.create_change_request(change_of(
            code, proxy.registry.create_unit(unit_payload(code, "13900000001"))))["id"]
            for code in units]
    with rpc(config, MANAGER) as proxy:
        for request_id in requests:
            proxy.registry.decide_change_request(request_id, "approve", {})


def swept_at_once(config, as_of, counted):
    """SWEEPS sweeps at `as_of` at the same moment, spread over both processes: each one's
    `counted` figure."""
    def sweep(_):
        with rpc(config, OPS) as proxy:
            return proxy.registry.sweep({"as_of": as_of})[counted]

    return list(eventlet.GreenPool(SWEEPS).imap(sweep, range(SWEEPS)))


def test_sweeps_of_two_processes_at_once_apply_each_change_once(two_registry_processes, event_tap):
    config = two_registry_processes
    tomorrow = date.today() + timedelta(days=2)
    units = [f"{SITE}10101{n:02d}" for n in range(CHANGES)]
    approved_changes(config, units, lambda code, _unit: {
        "unit": code, "kind": "unit", "changes": {"area_m2": "95.00"},
        "reason": "实测面积更正", "effective_on": tomorrow.isoformat()})
    tap = event_tap("registry", "unit_changed")

    applied = swept_at_once(config, f"{tomorrow.isoformat()}T09:00:00+08:00", "applied")

    assert sum(applied) == CHANGES
    changed = tap.collect(expected=CHANGES)
    assert sorted(body["data"]["unit"] for _, body in changed) == units
    with rpc(config, AGENT) as proxy:
        assert {proxy.registry.get_unit(code)["area_m2"] for code in units} == {"95.00"}
        assert [len(proxy.registry.unit_history(code)["items"]) for code in units] == [1] * CHANGES


def test_sweeps_of_two_processes_at_once_alert_each_contact_breach_once(two_registry_processes, event_tap):
    """Committee members flagged today, not contacted next month: each breach of that month is
    claimed by one sweep of one process, and alerted (registry.sla_breached) exactly once."""
    config = two_registry_processes
    units = [f"{SITE}10201{n:02d}" for n in range(CHANGES)]
    approved_changes(config, units, lambda code, unit: {
        "unit": code, "kind": "person", "target_id": unit["people"][0]["id"],
        "changes": {"committee_member": True}, "reason": "业委会委员"})
    tap = event_tap("registry", "sla_breached")
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()   # the site's day
    first = date(today.year + today.month // 12, today.month % 12 + 1, 1)      # next month
    after = date(first.year + first.month // 12, first.month % 12 + 1, 1)      # its end

    found = swept_at_once(config, f"{after.isoformat()}T09:00:00+08:00", "contact_breaches")

    assert sum(found) == CHANGES
    alerted = tap.collect(expected=CHANGES)
    assert sorted(body["data"]["unit"] for _, body in alerted) == units
    assert {body["data"]["code"].split()[-1] for _, body in alerted} == {first.strftime("%Y-%m")}
