"""What an ops engineer watches the business by (SPEC §9), scraped from each service's /metrics
while a complaint is taken in, breached by the sweep, and bills go unpaid — the whole system
running as processes, its gauges recomputed every second; and the front desk's procedures
still open."""
import re
from datetime import datetime, timedelta, timezone

import pytest
import requests

from tests.conftest import JWT_SECRET, OUTBOX_POLL_SECONDS, RPC_TIMEOUT
from tests.flows import eventually, site_payload, unit_payload
from bench.harness import System, Vhost

pytestmark = pytest.mark.e2e

SITE, UNIT = "001", "0010101001"


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    with Vhost("propdesk-metrics") as vhost:
        system = System(str(tmp_path_factory.mktemp("system")), vhost.amqp_uri, secret=JWT_SECRET,
                        rpc_timeout=RPC_TIMEOUT, outbox_poll_seconds=OUTBOX_POLL_SECONDS,
                        env={"PROPDESK_BUSINESS_METRICS_SECONDS": "1"})
        try:
            system.start().wait_ready()
            yield system
        finally:
            system.shutdown()


def sample(system, process, name, **labels):
    """The value of metric `name` with these labels on `process`'s /metrics (None if absent)."""
    text = requests.get(f"http://127.0.0.1:{system.ports[process]}/metrics", timeout=5).text
    for line in text.splitlines():
        match = re.match(rf"^{name}{{(.*)}} (\S+)$", line)
        if match and all(f'{key}="{value}"' in match.group(1) for key, value in labels.items()):
            return float(match.group(2))
    return None


def test_a_breached_complaint_and_unpaid_bills_show_on_the_business_metrics(running):
    hq = running.client("hq", ["*"], sub="hq-zhao")
    agent = running.client("agent", [SITE], sub="agent-li")
    assert hq.post("/sites", site_payload(SITE)).status_code == 201
    assert hq.post("/units", unit_payload(UNIT, "13812345678")).status_code == 201
    assert agent.post("/tickets", {
        "kind": "complaint", "site": SITE, "unit": UNIT, "channel": "email", "severity": "B",
        "category": "GC", "description": "楼道照明坏了一周",
        "received_at": "2026-11-20T16:00:00+08:00"}).status_code == 201

    assert eventually(lambda: sample(running, "ticketing", "propdesk_open_cases",
                                     site=SITE, kind="complaint"),
                      what="one open complaint") == 1
    # received Friday 16:00: at Saturday 09:00 only its route deadline (Friday 17:00) has passed
    swept = hq.post("/admin/sweeps/ticketing", {"as_of": "2026-11-21T09:00:00+08:00"})
    assert swept.status_code == 200 and swept.json()["breaches"] == 1
    assert sample(running, "ticketing", "propdesk_sla_breaches_total", service="ticketing",
                  site=SITE, kind="complaint", deadline="route") == 1
    hq.post("/admin/sweeps/ticketing", {"as_of": "2026-11-21T09:00:00+08:00"})   # nothing new
    assert sample(running, "ticketing", "propdesk_sla_breaches_total", service="ticketing",
                  site=SITE, kind="complaint", deadline="route") == 1

    # the breach alerts became staff messages: counted by channel and status
    assert eventually(lambda: sample(running, "notifications", "propdesk_messages",
                                     channel="staff", status="sent"),
                      done=lambda value: value and value >= 1, what="staff alerts counted")

    # a bill long overdue puts the unit on the ladder
    assert hq.post("/invoices", {"unit": UNIT, "period": "2025-01", "due_date": "2025-01-15",
                                 "items": [{"fee": "management", "amount": "221.25"}]}).status_code == 201
    assert eventually(lambda: sample(running, "billing", "propdesk_arrears_units", site=SITE),
                      done=lambda value: value == 1, what="one unit in arrears")
    assert sample(running, "ticketing", "propdesk_outbox_oldest_age_seconds", service="ticketing") == 0


def test_the_front_desks_open_procedures_and_breaches_show_on_its_metrics(running):
    """A move-in waiting 20 minutes (breached once), a defect found, a release pass awaiting
    the owner: frontdesk's gauges count them by site and kind until they are done."""
    site, unit = "007", "0071010101"
    hq = running.client("hq", ["*"], sub="hq-zhao")
    desk = running.client("agent", [site], sub="agent-li")
    assert hq.post("/sites", site_payload(site)).status_code == 201
    assert desk.post("/units", unit_payload(unit, "13812345007")).status_code == 201
    owner = desk.get(f"/units/{unit}").json()["people"][0]["id"]
    now = datetime.now(timezone.utc)
    move_in = desk.post("/move-ins", {"unit": unit, "person_id": owner,
                                      "arrived_at": (now - timedelta(minutes=20)).isoformat()}).json()
    asked = desk.post("/release-passes", {
        "unit": unit, "requested_by": {"name": "搬家公司", "phone": "13700000000"},
        "items": [{"description": "沙发", "quantity": 1}],
        "move_on": now.astimezone(timezone(timedelta(hours=8))).date().isoformat()})
    assert asked.status_code == 201, asked.text

    def open_of(kind):
        return sample(running, "frontdesk", "propdesk_open_cases", service="frontdesk",
                      site=site, kind=kind)
    assert eventually(lambda: (open_of("move_in"), open_of("release_pass")),
                      done=lambda v: v == (1, 1), what="a waiting move-in and a pass") == (1, 1)

    swept = hq.post("/admin/sweeps/frontdesk", {"as_of": now.isoformat()})
    assert [(b["kind"], b["deadline"]) for b in swept.json()["breaches"]] == [("move_in", "start")]
    hq.post("/admin/sweeps/frontdesk", {"as_of": now.isoformat()})       # nothing new
    assert sample(running, "frontdesk", "propdesk_sla_breaches_total", service="frontdesk",
                  site=site, kind="move_in", deadline="start") == 1

    # started, inspected with a defect, completed: the move-in drops out, the defect counts
    mid = move_in["id"]
    for action, body in (("start", {}), ("documents", {
            "checked": ["id_card", "move_in_notice", "purchase_contract", "payment_receipt"],
            "signed": ["service_agreement", "management_rules"]}), ("inspection", {
            "meter_readings": {"water": "1", "electricity": "2", "gas": "3"},
            "defects": [{"location": "厨房", "description": "水龙头漏水"}]}), ("complete", {
            "keys": ["大门"], "assistant": {"name": "王芳", "phone": "13900001111"}})):
        assert desk.post(f"/move-ins/{mid}/{action}", body).status_code == 200, action
    assert eventually(lambda: (open_of("move_in"), open_of("defect")),
                      done=lambda v: v == (None, 1), what="the move-in done, its defect open") == (None, 1)
