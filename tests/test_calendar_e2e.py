"""The README's calendar and greetings walk-through, every service a real process on the real
broker: 2027 is counted Monday to Friday and says so (GET, and the gauge of every service),
head office enters it through the gateway, every process applies it (the gauge turns), a
process restarted afterwards loads it at start; then the Spring Festival's first day is replayed
with `as_of`: one greeting per owner, none on the replay.

The 2027 arrangement is TEST DATA shaped like 2026's, not the State Council's."""
import re

import pytest
import requests

from services.common import BACKEND_SERVICES
from tests.flows import eventually, ok, site_payload, unit_payload

pytestmark = pytest.mark.e2e

SITE = "005"
CALENDAR_2027 = {
    "holidays": [{"name": "spring_festival", "first_day": "2027-02-05",
                  "days": [f"2027-02-{d:02d}" for d in range(5, 14)]}],
    "workdays": ["2027-01-31", "2027-02-20"],
}


def known_2027(system, service):
    """propdesk_calendar_year_known for 2027 as `service`'s /metrics shows it: (source, value)."""
    text = requests.get(f"http://127.0.0.1:{system.ports[service]}/metrics", timeout=5).text
    found = re.search(r'propdesk_calendar_year_known\{source="(\w+)",year="2027"\} (\S+)', text)
    return found and (found[1], float(found[2]))


def test_2027_is_flagged_then_entered_and_every_service_uses_it(system):
    hq = system.client("hq", ["*"], sub="hq-wu")
    manager = system.client("manager", [SITE], sub="mgr-zhao")
    assert ok(hq.get("/calendar/2027"))["source"] == "weekdays_only"
    assert ok(hq.get("/calendar/2026"))["source"] == "library"
    for service in BACKEND_SERVICES:
        assert known_2027(system, service) == ("weekdays_only", 0.0), service

    assert manager.put("/calendar/2027", CALENDAR_2027).status_code == 403
    wrong = hq.put("/calendar/2027", {**CALENDAR_2027, "workdays": ["2027-02-09"]})
    assert wrong.status_code == 422
    assert "both a workday and a day of spring_festival" in wrong.json()["errors"]["workdays"][0]
    entered = ok(hq.put("/calendar/2027", CALENDAR_2027))
    assert (entered["source"], entered["version"]) == ("entered", 1)
    assert ok(hq.get("/calendar/2027"))["holidays"] == CALENDAR_2027["holidays"]
    for service in BACKEND_SERVICES:
        eventually(lambda: known_2027(system, service), lambda seen: seen == ("entered", 1.0),
                   what=f"{service} applying 2027")

    system.stop("renovation")
    system.start_service("renovation")
    system.wait_ready()
    eventually(lambda: known_2027(system, "renovation"), lambda seen: seen == ("entered", 1.0),
               what="the restarted renovation loading 2027 at start")


def test_the_spring_festival_replayed_greets_each_owner_once(system):
    ops = system.client("ops_admin", ["*"], sub="ops")
    desk = system.client("agent", [SITE], sub="agent-li")
    ok(ops.post("/sites", site_payload(SITE)), 201)
    for unit, phone in (("0051020301", "13900000031"), ("0051020302", "13900000032")):
        ok(desk.post("/units", unit_payload(unit, phone)), 201)
    ok(ops.put("/calendar/2027", CALENDAR_2027))

    def greetings():
        return [m for m in ok(desk.get("/messages", site=SITE, channel="sms"))["items"]
                if m["template"] == "greeting_spring_festival"]

    def first_day():    # until notifications has both owners from registry's events
        ok(ops.post("/admin/sweeps/notifications", {"as_of": "2027-02-05T10:00:00+08:00"}))
        return greetings()

    sent = eventually(first_day, lambda seen: len(seen) == 2, what="a greeting to each owner")
    assert sorted(m["recipient"] for m in sent) == ["13900000031", "13900000032"]
    assert {m["status"] for m in sent} == {"sent"}
    replay = ok(ops.post("/admin/sweeps/notifications", {"as_of": "2027-02-05T11:00:00+08:00"}))
    assert replay["greetings"] == 0
    assert len(greetings()) == 2
