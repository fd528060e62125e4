"""The front-desk rules with the seed's numbers (001 ch.5 §2, §3, §6), in Shanghai time."""
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from services.common.errors import Conflict, Forbidden, IllegalTransition
from services.frontdesk import domain
from services.frontdesk.domain import Activity, MoveIn, ParkingRental, ReleasePass

SH = ZoneInfo("Asia/Shanghai")
OWNER = {"name": "张三", "phone": "13812341234", "person_id": "p-owner"}
DOCS = {"checked": ["id_card", "move_in_notice", "purchase_contract", "payment_receipt"],
        "signed": ["service_agreement", "management_rules"]}
READINGS = {"meter_readings": {"water": "12.5", "electricity": "300", "gas": "8"},
            "defects": [{"location": "主卧", "description": "墙面开裂"}]}


def at(day, hh, mm=0):
    return datetime(2026, 12, day, hh, mm, tzinfo=SH)


def arrived(when=at(1, 9)):
    return MoveIn.arrive(id="01MOVEIN0001", site="001", unit="0011020304", timezone="Asia/Shanghai",
                         person_id="p-owner", owner=OWNER, arrived_at=when, now=when,
                         by="agent-li", role="agent")


def act(case, action, data=None, when=at(1, 9), role="agent"):
    return case.apply(action, data or {}, now=when, by=f"{role}-li", role=role)


def test_a_move_in_started_after_20_minutes_breaches_its_start_deadline_once():
    move_in = arrived()
    assert datetime.fromisoformat(move_in.deadlines["start"]) == at(1, 9, 15)
    act(move_in, "start", when=at(1, 9, 20))
    assert move_in.status == "in_progress"
    assert datetime.fromisoformat(move_in.deadlines["finish"]) == at(1, 9, 50)
    assert move_in.due_breaches(at(1, 9, 21)) == [("start", at(1, 9, 15))]
    move_in.record_breach("start", at(1, 9, 15), now=at(1, 9, 21))
    move_in.refresh_due()
    assert move_in.due_breaches(at(1, 9, 22)) == []
    assert move_in.next_due_at == at(1, 9, 50)
    assert move_in.on_time("start") is False


def test_complete_refuses_until_identity_signatures_and_inspection():
    move_in = arrived()
    act(move_in, "start", when=at(1, 9, 5))
    keys = {"keys": ["大门"], "assistant": {"name": "王芳", "phone": "13900001111"}}
    with pytest.raises(IllegalTransition) as refused:
        act(move_in, "complete", keys, when=at(1, 9, 10))
    assert "complete" not in refused.value.extra["allowed_actions"]
    act(move_in, "documents", DOCS, when=at(1, 9, 10))
    with pytest.raises(IllegalTransition):
        act(move_in, "complete", keys, when=at(1, 9, 12))
    act(move_in, "inspection", READINGS, when=at(1, 9, 20))
    assert [d.location for d in move_in.new_defects] == ["主卧"]
    act(move_in, "complete", keys, when=at(1, 9, 30))
    assert move_in.status == "completed" and move_in.on_time("finish") is True
    (name, payload), = move_in.pull_events()
    assert name == "frontdesk.moved_in" and payload["moved_in_on"] == date(2026, 12, 1)
    assert move_in.due_breaches(at(1, 12)) == []


def test_documents_name_what_is_missing():
    move_in = arrived()
    act(move_in, "start", when=at(1, 9, 5))
    with pytest.raises(domain.InvalidField) as missing:
        act(move_in, "documents", {**DOCS, "signed": ["service_agreement"]})
    assert missing.value.extra["missing_documents"] == ["management_rules"]


def test_a_defect_not_submitted_within_a_working_day_is_a_breach():
    move_in = arrived(at(4, 9))                       # Friday 2026-12-04
    act(move_in, "start", when=at(4, 9, 5))
    act(move_in, "inspection", READINGS, when=at(4, 9, 20))
    defect, = move_in.new_defects
    assert datetime.fromisoformat(defect.deadlines["submit"]) == at(7, 9, 20)   # the next working day, Monday
    assert defect.due_breaches(at(7, 9, 19)) == []
    assert defect.due_breaches(at(7, 9, 21)) == [("submit", at(7, 9, 20))]
    act(defect, "submit", when=at(7, 10))
    (name, letter), = defect.pull_events()
    assert (name, letter["channel"], letter["recipient"]) == ("frontdesk.notice", "letter", "developer@001")
    act(defect, "fixed", when=at(9, 10))
    (_, sms), = defect.pull_events()
    assert (sms["channel"], sms["recipient"]) == ("sms", OWNER["phone"])
    act(defect, "close", when=at(9, 11))
    assert defect.status == "closed"


def rental(relation="owner", documents=("driving_licence", "vehicle_licence", "insurance", "property_proof"),
           arrived_at=at(1, 14)):
    return ParkingRental.apply_for(
        id="01RENTAL00001", site="001", unit="0011020304", timezone="Asia/Shanghai",
        space={"id": "s1", "number": "B-017", "monthly_fee": "300.00"}, person_id="p-owner",
        relation=relation, data={"vehicle": {"plate": "粤B12345", "licence_no": "L1"},
                                 "documents": list(documents), "start": date(2026, 12, 1),
                                 "end": None, "arrived_at": arrived_at},
        now=arrived_at, by="agent-li", role="agent")


def test_a_rental_needs_its_documents_by_relation():
    with pytest.raises(domain.InvalidField) as missing:
        rental(relation="tenant")
    assert missing.value.extra["missing_documents"] == ["lease"]
    with pytest.raises(domain.InvalidField) as missing:
        rental(documents=("driving_licence", "insurance", "property_proof"))
    assert missing.value.extra["missing_documents"] == ["vehicle_licence"]


def test_a_rental_started_1400_and_signed_1425_is_breached():
    case = rental()
    assert datetime.fromisoformat(case.deadlines["finish"]) == at(1, 14, 20)
    with pytest.raises(Forbidden):
        act(case, "approve", when=at(1, 14, 25), role="agent")
    act(case, "approve", when=at(1, 14, 25), role="manager")
    assert case.status == "active" and case.contract_no and case.card_no
    # signed late: the sweep still finds the breach, once
    assert case.due_breaches(at(1, 14, 26)) == [("finish", at(1, 14, 20))]
    assert case.next_due_at == at(1, 14, 20)
    case.record_breach("finish", at(1, 14, 20), now=at(1, 14, 26))
    case.refresh_due()
    assert case.next_due_at is None and case.due_breaches(at(1, 15)) == []
    name, payload = case.pull_events()[0]
    assert name == "frontdesk.parking_rented" and payload["monthly_fee"] == Decimal("300.00")


def test_a_rental_signed_in_time_is_not_breached():
    case = rental()
    act(case, "approve", when=at(1, 14, 18), role="manager")
    assert case.due_breaches(at(1, 15)) == [] and case.on_time("finish") is True


def release(requested_by, transfer_watch=False):
    return ReleasePass.request(
        id="01PASS000001", site="001", unit="0011020304", timezone="Asia/Shanghai", owner=OWNER,
        transfer_watch=transfer_watch, data={"requested_by": requested_by, "move_on": date(2026, 12, 5),
                                             "items": [{"description": "沙发", "quantity": 1}]},
        now=at(1, 10), by="agent-li", role="agent")


def test_a_pass_asked_by_the_owner_is_confirmed_at_once_and_used_once_on_its_day():
    p = release({"name": "张三", "phone": "13812341234", "person_id": "p-owner"})
    assert p.status == "confirmed" and p.confirmed_by == "owner"
    assert p.gate_status(date(2026, 12, 4)) == "not_yet"
    assert p.gate_status(date(2026, 12, 5)) == "valid"
    with pytest.raises(Conflict):
        act(p, "use", {"guard": "guard-1"}, when=at(4, 10), role="agent")
    act(p, "use", {"guard": "guard-1"}, when=at(5, 10), role="agent")
    assert p.status == "used" and p.used_by == "guard-1"
    with pytest.raises(IllegalTransition):
        act(p, "use", {"guard": "guard-1"}, when=at(5, 11), role="agent")


def test_a_pass_for_anyone_else_waits_for_the_owner_and_alerts_the_manager_under_transfer_watch():
    p = release({"name": "搬家公司", "phone": "13700000000"}, transfer_watch=True)
    assert p.status == "awaiting_owner" and p.gate_status(date(2026, 12, 5)) == "awaiting_owner"
    (_, ask), = p.pull_events()
    assert (ask["notice"], ask["recipient"]) == ("pass_confirmation", OWNER["phone"])
    act(p, "confirm", {"by": "phone"}, when=at(1, 11))
    (_, alert), = p.pull_events()
    assert (alert["channel"], alert["recipient"]) == ("staff", "role:manager@001")
    assert p.gate_status(date(2026, 12, 6)) == "expired"


def activity(starts_at=at(10, 10)):
    return Activity.plan(id="01ACT0000001", data={
        "site": "001", "title": "中秋游园会", "purpose": "增进邻里交流", "starts_at": starts_at,
        "ends_at": starts_at + timedelta(hours=2), "budget": Decimal("2000.00"), "capacity": 2},
        now=at(1, 9), by="agent-li", role="agent")


def test_an_activity_published_two_days_ahead_is_refused():
    a = activity(starts_at=at(3, 10))
    with pytest.raises(Conflict):
        act(a, "publish", when=at(1, 10))
    assert a.status == "planned"


def test_registrations_up_to_capacity_and_the_rates():
    a = activity()
    act(a, "publish", when=at(1, 10))
    (_, notice), (published, told) = a.pull_events()
    assert (notice["channel"], notice["recipient"]) == ("in_app", "site:001")
    assert (published, told["notify_sms"]) == ("frontdesk.activity_published", False)
    act(a, "register", {"person_id": "p1"}, role="resident")
    with pytest.raises(Conflict):
        act(a, "register", {"person_id": "p1"}, role="resident")
    act(a, "register", {"person_id": "p2"}, role="resident")
    with pytest.raises(Conflict):
        act(a, "register", {"person_id": "p3"}, role="resident")
    act(a, "complete", {"summary": "圆满"}, when=at(10, 13))
    act(a, "revisit", {"person_id": "p1", "satisfied": True}, when=at(11, 10))
    assert a.rates() == {"revisit_rate": Decimal("0.5"), "satisfaction_rate": Decimal("1"),
                         "on_target": True}


def test_the_rate_targets():
    assert domain.activity_rates(100, 9, 9)["on_target"] is False      # revisits under 10 %
    assert domain.activity_rates(100, 10, 7)["on_target"] is False     # satisfaction under 80 %
    assert domain.activity_rates(100, 10, 8)["on_target"] is True
    assert domain.activity_rates(0, 0, 0) == {"revisit_rate": None, "satisfaction_rate": None,
                                              "on_target": False}


def test_an_answer_is_due_for_review_six_months_after_its_update():
    updated = at(1, 9)
    assert domain.review_due(updated) == datetime(2027, 6, 1, 9, tzinfo=SH)
    assert not domain.review_overdue(updated, datetime(2027, 5, 31, 9, tzinfo=SH))
    assert domain.review_overdue(updated, datetime(2027, 6, 1, 9, tzinfo=SH))
