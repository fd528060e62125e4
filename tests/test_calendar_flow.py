"""Head office enters 2027's calendar, which chinesecalendar 1.11 does not know, and the
renovation review deadline (2 working days) of an application submitted the day before the
Spring Festival moves past the holiday; one submitted before the entry keeps the weekday
deadline it was given; a renovation service restarted afterwards loads the year at start.
Services in this process on the real broker, the clock at 2027-02-04 10:00 in Shanghai.

The 2027 arrangement is TEST DATA shaped like 2026's (nine days from New Year's Eve, two weekends
worked), not the State Council's."""
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.common import calendar, entrypoints
from services.common.errors import Forbidden, ValidationFailed
from tests.flows import SITE, eventually, renovation_application, site_payload, unit_payload
from tests.inprocess import identity

pytestmark = pytest.mark.integration

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2027, 2, 4, 10, 0, tzinfo=SH)            # Thursday, the day before the holiday
AGENT = identity("agent", sub="agent-li")
MANAGER = identity("manager", sub="mgr-zhao")
HQ = identity("hq", sites=("*",), sub="hq-wu")
UNITS = ("0011020301", "0011020302", "0011020303")
CALENDAR_2027 = {
    "holidays": [{"name": "spring_festival",
                  "days": [(datetime(2027, 2, 5) + timedelta(days=n)).date().isoformat()
                           for n in range(9)]}],         # Fri 5 – Sat 13 February
    "workdays": ["2027-01-31", "2027-02-20"],              # a Sunday and a Saturday worked
}


@pytest.fixture
def services(run_services, monkeypatch):
    monkeypatch.setattr(entrypoints, "utcnow", lambda: NOW)     # every service's self.clock()
    cluster = run_services("registry", "renovation", "notifications")
    with cluster.rpc(MANAGER) as rpc:
        rpc.registry.create_site(site_payload(SITE))
    with cluster.rpc(AGENT) as rpc:
        for unit in UNITS:
            rpc.registry.create_unit(unit_payload(unit, "13900000001"))
    return cluster


def review_due(cluster, unit):
    planned = {"start": "2027-02-22", "end": "2027-03-22"}
    with cluster.rpc(AGENT) as rpc:
        made = rpc.renovation.create_renovation(renovation_application(unit, planned=planned))
    return datetime.fromisoformat(made["deadlines"]["review"]).astimezone(SH)


def test_an_entered_2027_moves_the_review_deadline_past_the_spring_festival(services):
    with services.rpc(HQ) as rpc:
        assert rpc.notifications.get_calendar(2027)["source"] == "weekdays_only"
    before = review_due(services, UNITS[0])
    assert before == datetime(2027, 2, 8, 10, 0, tzinfo=SH)          # Fri 5 and Mon 8

    with services.rpc(HQ) as rpc:
        entered = rpc.notifications.enter_calendar(2027, CALENDAR_2027)
    assert (entered["source"], entered["version"], entered["entered_by"]) == ("entered", 1, "hq-wu")
    assert entered["holidays"][0]["first_day"] == "2027-02-05"
    after = review_due(services, UNITS[1])
    assert after == datetime(2027, 2, 16, 10, 0, tzinfo=SH)          # Mon 15 and Tue 16

    with services.rpc(AGENT) as rpc:                                  # frozen on its case
        [first] = rpc.renovation.list_renovations({"unit": UNITS[0]})["items"]
    assert datetime.fromisoformat(first["deadlines"]["review"]) == before

    # A fresh renovation process knows nothing until it asks notifications at start.
    services.stop("renovation")
    calendar.forget_entered()
    services.start("renovation")
    eventually(lambda: calendar.source(2027), lambda s: s == "entered",
               what="the restarted renovation service loading 2027")
    assert review_due(services, UNITS[2]) == datetime(2027, 2, 16, 10, 0, tzinfo=SH)


def test_only_head_office_enters_a_calendar_and_a_wrong_one_is_named(services):
    with services.rpc(MANAGER) as rpc, pytest.raises(Forbidden):
        rpc.notifications.enter_calendar(2027, CALENDAR_2027)
    wrong = {"holidays": [{"name": "spring_festival", "first_day": "2027-02-04",
                           "days": ["2027-02-05", "2028-02-06"]},
                          {"name": "lantern", "days": ["2027-02-20"]}],
             "workdays": ["2027-02-05", "2027-02-09"]}
    with services.rpc(HQ) as rpc, pytest.raises(ValidationFailed) as refused:
        rpc.notifications.enter_calendar(2027, wrong)          # not a known holiday's name
    assert "holidays" in refused.value.extra["errors"]
    with services.rpc(HQ) as rpc, pytest.raises(ValidationFailed) as refused:
        rpc.notifications.enter_calendar(2027, {**wrong, "holidays": wrong["holidays"][:1]})
    errors = refused.value.extra["errors"]
    assert errors["holidays.0.days"] == ["2028-02-06 is not in 2027"]
    assert errors["holidays.0.first_day"] == ["2027-02-04 is not one of its days"]
    assert errors["workdays"][0] == "2027-02-05 is both a workday and a day of spring_festival"
    assert "is a weekday" in errors["workdays"][1]
    with services.rpc(HQ) as rpc:
        assert rpc.notifications.get_calendar(2027)["source"] == "weekdays_only"
        library = rpc.notifications.get_calendar(2026)
    assert library["source"] == "library"
    assert {"name": "spring_festival", "first_day": "2026-02-15",
            "days": [f"2026-02-{d}" for d in range(15, 24)]} in library["holidays"]
    assert library["workdays"][:2] == ["2026-01-04", "2026-02-14"]
