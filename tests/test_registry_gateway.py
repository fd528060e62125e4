"""Move-in (入伙) and the customer-affairs assistant (客户事务助理) through the HTTP gateway, with
the whole system running as separate processes: the desk records them and reads the unit back;
a second move-in is 409, bad input 422 naming the field, another site's unit 403."""
import pytest

from tests.flows import OTHER_SITE, SITE, site_payload, unit_payload

pytestmark = pytest.mark.e2e

UNIT, OTHER_SITE_UNIT = "0010101001", "0020101001"
WANG = {"name": "王芳", "phone": "13900001111"}
ZHAO = {"name": "赵磊", "phone": "13900002222"}


@pytest.fixture(scope="module")
def desk(system):
    """Sites 001 and 002 with a unit each, handed over on 2025-06-30; an agent of site 001."""
    hq = system.client("hq", ["*"], sub="hq-zhao")
    for site, unit in ((SITE, UNIT), (OTHER_SITE, OTHER_SITE_UNIT)):
        assert hq.post("/sites", site_payload(site)).status_code == 201
        created = hq.post("/units", {**unit_payload(unit, "13812345678"),
                                     "handover_date": "2025-06-30"})
        assert created.status_code == 201, created.text
        assert created.json()["warranty_until"] == "2027-06-30"
    return system.client("agent", [SITE], sub="agent-ann")


def test_the_desk_records_a_move_in_once_and_changes_the_assistant(desk):
    refused = desk.post(f"/units/{UNIT}/move-in", {"assistant": {"name": "王芳"}})
    assert refused.status_code == 422 and list(refused.json()["errors"]) == ["assistant"]

    moved_in = desk.post(f"/units/{UNIT}/move-in", {"moved_in_on": "2026-10-08", "assistant": WANG})
    assert moved_in.status_code == 200, moved_in.text
    assert (moved_in.json()["moved_in_on"], moved_in.json()["assistant"]) == ("2026-10-08", WANG)

    again = desk.post(f"/units/{UNIT}/move-in", {"assistant": ZHAO})
    assert again.status_code == 409 and again.json()["moved_in_on"] == "2026-10-08"

    changed = desk.post(f"/units/{UNIT}/assistant", {"assistant": ZHAO})
    assert changed.status_code == 200, changed.text
    assert desk.get(f"/units/{UNIT}").json()["assistant"] == ZHAO


def test_another_sites_unit_is_403_to_the_desk_and_left_as_it_was(system, desk):
    for path in ("move-in", "assistant"):
        refused = desk.post(f"/units/{OTHER_SITE_UNIT}/{path}", {"assistant": WANG})
        assert refused.status_code == 403, refused.text
    unit = system.client("hq", ["*"]).get(f"/units/{OTHER_SITE_UNIT}").json()
    assert (unit["moved_in_on"], unit["assistant"]) == (None, None)
