"""SPEC §3 as plain Python: the review table, required documents, the status machine, fees,
permit and passes, violations, inspection, refund and the deadlines with their breaches."""
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from services.common.errors import Conflict, Forbidden, IllegalTransition
from services.renovation import domain
from services.renovation.domain import Renovation, RenovationPolicy

UTC = timezone.utc
# Wednesday 2026-11-18 10:00 Shanghai
SUBMITTED = datetime(2026, 11, 18, 2, 0, tzinfo=UTC)
UNIT = "0011020304"
# the site's renovation fees as billing's fee schedule states them at approval
FEES = domain.FeeTable(management_per_m2=Decimal("5.00"), deposit=Decimal("2000.00"),
                       debris_removal=Decimal("300.00"))
ALL_DOCUMENTS = list(domain.REQUIRED_DOCUMENTS)


def application(**changes):
    data = {
        "applicant": {"name": "张三", "phone": "13812341234", "is_owner": True},
        "contractor": {"name": "好家装饰", "licence_no": "91110000X"},
        "workers": [{"name": "王工", "id_number": "110101199001011234"},
                    {"name": "李工", "id_number": "110101199202021234"}],
        "planned": {"start": date(2026, 12, 1), "end": date(2026, 12, 31)},
        "work_items": ["flooring", "painting"], "documents": ALL_DOCUMENTS, "approvals": [],
        "debris_removal": True, "submitted_at": None,
    }
    data.update(changes)
    return data


def submit(now=SUBMITTED, **changes):
    return Renovation.submit(id="0190aaaabbbbccccdddd", site="001", unit=UNIT,
                             timezone="Asia/Shanghai", area_m2="88.50", data=application(**changes),
                             now=now, by="agent-li", role="agent", policy=RenovationPolicy())


def approved(now=SUBMITTED):
    renovation = submit(now)
    renovation.apply("review", {"decision": "approved", "fee_table": FEES}, now=now + timedelta(hours=1),
                     by="mgr", role="manager")
    renovation.pull_events()
    return renovation


def permitted(now=SUBMITTED):
    renovation = approved(now)
    renovation.apply("sign", {}, now=now + timedelta(hours=2), by="agent-li", role="agent")
    renovation.record_payment("inv-1", renovation.fees_total, now=now + timedelta(hours=3))
    renovation.pull_events()
    return renovation


# -- the review table ---------------------------------------------------------------------

@pytest.mark.parametrize("item", ["wet_room_conversion", "load_bearing_opening",
                                  "energy_saving_damage", "unsafe_other"])
def test_forbidden_items_violate_whatever_approvals_are_held(item):
    assert domain.rule_violations([item, "flooring"], list(domain.APPROVALS)) == [item]


@pytest.mark.parametrize("item, approval", [
    ("structural_change", "design_institute_approval"), ("new_structure", "planning_approval"),
    ("facade_change", "planning_approval"), ("heating_pipe_change", "heating_company_approval"),
    ("gas_pipe_change", "gas_company_approval"),
])
def test_conditional_items_pass_only_with_their_approval(item, approval):
    assert domain.rule_violations([item], []) == [item]
    others = [a for a in domain.APPROVALS if a != approval]
    assert domain.rule_violations([item], others) == [item]
    assert domain.rule_violations([item], [approval]) == []


def test_ordinary_items_are_allowed():
    assert domain.rule_violations(list(domain.ORDINARY_WORK_ITEMS), []) == []


def test_every_violated_item_is_listed_once():
    items = ["facade_change", "flooring", "wet_room_conversion", "gas_pipe_change", "facade_change"]
    assert domain.rule_violations(items, ["gas_company_approval"]) == [
        "facade_change", "wet_room_conversion"]


def test_missing_documents_are_named_and_utility_work_needs_its_drawings():
    assert domain.missing_documents(ALL_DOCUMENTS, ["flooring"]) == []
    assert domain.missing_documents(["application_form"], ["flooring"]) == [
        "property_certificate", "applicant_id", "design_plan", "contractor_licence", "worker_ids"]
    assert domain.missing_documents(ALL_DOCUMENTS, ["plumbing"]) == ["utility_drawings"]


# -- submission and review ------------------------------------------------------------------

def test_review_is_due_two_working_days_after_submission_in_site_time():
    renovation = submit()
    # Wednesday 10:00 + 2 working days = Friday 10:00 Shanghai
    assert renovation.deadlines == {"review": "2026-11-20T02:00:00+00:00"}
    assert renovation.status == "submitted"
    friday = submit(now=datetime(2026, 11, 20, 2, 0, tzinfo=UTC))
    assert friday.deadlines["review"] == "2026-11-24T02:00:00+00:00"  # over the weekend


def test_a_paper_form_entered_later_runs_from_its_submission():
    entered = SUBMITTED + timedelta(days=1)
    renovation = submit(now=entered, submitted_at=SUBMITTED)
    assert renovation.deadlines["review"] == "2026-11-20T02:00:00+00:00"
    with pytest.raises(domain.InvalidField) as raised:
        submit(submitted_at=SUBMITTED + timedelta(minutes=1))
    assert raised.value.field == "submitted_at"


def test_a_manager_cannot_approve_an_application_with_violations():
    renovation = submit(work_items=["flooring", "facade_change", "unsafe_other"])
    assert renovation.rule_violations == ["facade_change", "unsafe_other"]
    with pytest.raises(Conflict) as raised:
        renovation.apply("review", {"decision": "approved", "fee_table": FEES}, now=SUBMITTED, by="mgr", role="manager")
    assert raised.value.extra["rule_violations"] == ["facade_change", "unsafe_other"]
    assert renovation.status == "submitted" and not renovation.pull_events()


def test_a_rejection_records_the_violations_and_the_managers_reason():
    renovation = submit(work_items=["wet_room_conversion"])
    renovation.apply("review", {"decision": "rejected", "reason": "阳台改卫生间不予登记"},
                     now=SUBMITTED + timedelta(hours=5), by="mgr", role="manager")
    assert renovation.status == "rejected"
    assert renovation.rejection_reasons == ["wet_room_conversion", "阳台改卫生间不予登记"]
    assert renovation.deadlines_met == {"review": "2026-11-18T07:00:00+00:00"}
    [(event, data)] = renovation.pull_events()
    assert event == "renovation.decided" and data["decision"] == "rejected"
    assert renovation.allowed_actions() == []


def test_only_a_manager_reviews():
    with pytest.raises(Forbidden):
        submit().apply("review", {"decision": "approved", "fee_table": FEES}, now=SUBMITTED, by="a", role="agent")


@pytest.mark.parametrize("role", ["hq", "ops_admin"])
def test_head_office_may_review_as_a_manager_may(role):
    renovation = submit()
    renovation.apply("review", {"decision": "approved", "fee_table": FEES}, now=SUBMITTED, by="hq-1", role=role)
    assert renovation.status == "approved"


def test_a_role_that_may_never_review_is_refused_403_before_the_state_is_judged():
    with pytest.raises(Forbidden) as raised:
        approved().apply("review", {"decision": "approved", "fee_table": FEES}, now=SUBMITTED, by="a", role="agent")
    assert "manager" in raised.value.extra["allowed_roles"]


def test_approval_bills_management_fee_per_m2_deposit_and_debris_removal():
    renovation = submit()
    renovation.apply("review", {"decision": "approved", "fee_table": FEES}, now=SUBMITTED, by="mgr", role="manager")
    assert renovation.status == "approved"
    events = dict(renovation.pull_events())
    fees = events["renovation.fees_due"]
    assert [(line["fee"], line["amount"]) for line in fees["items"]] == [
        ("renovation_management", "442.50"), ("renovation_deposit", "2000.00"),
        ("debris_removal", "300.00")]
    assert fees["due_date"] == date(2026, 11, 25)
    assert fees["applicant"] == events["renovation.decided"]["applicant"]    # the fee notice's addressee
    assert fees["applicant"]["phone"]
    assert events["renovation.decided"]["decision"] == "approved"
    assert renovation.fees_total == Decimal("2742.50")


def test_no_debris_removal_unless_asked():
    renovation = submit(debris_removal=False)
    renovation.apply("review", {"decision": "approved", "fee_table": FEES}, now=SUBMITTED, by="mgr", role="manager")
    assert [line["fee"] for line in renovation.fees] == ["renovation_management", "renovation_deposit"]


# -- permit and passes ----------------------------------------------------------------------

def test_the_permit_waits_for_every_fee_and_the_signed_agreement():
    renovation = approved()
    renovation.record_payment("inv-1", Decimal("442.50"), now=SUBMITTED)
    renovation.record_payment("inv-1", Decimal("442.50"), now=SUBMITTED)  # redelivered: once
    renovation.record_payment("inv-2", Decimal("2000.00"), now=SUBMITTED)
    assert renovation.status == "approved" and renovation.permit is None
    renovation.record_payment("inv-3", Decimal("300.00"), now=SUBMITTED)
    assert renovation.status == "approved", "the agreement is not signed yet"
    renovation.apply("sign", {}, now=SUBMITTED, by="agent-li", role="agent")
    assert renovation.status == "permitted"
    assert renovation.permit["valid_from"] == "2026-12-01"
    assert renovation.permit["valid_until"] == "2026-12-31"
    assert [(p["holder"], p["number"]) for p in renovation.passes] == [
        ("王工", renovation.permit["number"] + "-01"), ("李工", renovation.permit["number"] + "-02")]
    [(event, data)] = renovation.pull_events()
    assert event == "renovation.permit_issued" and len(data["passes"]) == 2


def test_pass_status_at_the_gate():
    entry = {"valid_until": "2026-12-31", "revoked_at": None}
    assert domain.pass_status(entry, date(2026, 12, 31)) == "valid"
    assert domain.pass_status(entry, date(2027, 1, 1)) == "expired"
    assert domain.pass_status({**entry, "revoked_at": "2026-12-20T00:00:00+00:00"},
                              date(2026, 12, 20)) == "revoked"


# -- construction, inspection, refund ----------------------------------------------------------

def test_violations_set_the_rectify_deadline_and_deductions():
    renovation = permitted()
    now = SUBMITTED + timedelta(days=15)
    renovation.apply("patrol", {"note": "正常", "ok": True}, now=now, by="tech", role="technician")
    renovation.apply("violation", {"description": "中午施工噪音", "rectify_by": now + timedelta(days=2),
                                   "deduction": Decimal("200.00")}, now=now, by="tech", role="technician")
    renovation.apply("violation", {"description": "垃圾堆放楼道", "rectify_by": now + timedelta(days=1)},
                     now=now, by="tech", role="technician")
    assert renovation.deadlines["rectify"] == (now + timedelta(days=1)).isoformat()
    assert renovation.deductions == "200.00"
    assert [o["number"] for o in renovation.overdue_violations(now + timedelta(days=1))] == [2]
    renovation.apply("rectified", {"numbers": [2]}, now=now, by="tech", role="technician")
    assert renovation.deadlines["rectify"] == (now + timedelta(days=2)).isoformat()
    renovation.apply("rectified", {}, now=now, by="tech", role="technician")
    assert "rectify" in renovation.deadlines_met
    with pytest.raises(domain.InvalidField):
        renovation.apply("violation", {"description": "x", "rectify_by": now}, now=now,
                         by="tech", role="technician")


def test_inspection_is_held_within_three_days_failed_means_rectifying_then_again():
    renovation = permitted()
    asked = SUBMITTED + timedelta(days=40)
    renovation.apply("request-inspection", {}, now=asked, by="agent-li", role="agent")
    assert renovation.status == "inspection_requested"
    assert renovation.deadlines["inspection"] == (asked + timedelta(days=3)).isoformat()
    with pytest.raises(domain.InvalidField) as refused:
        renovation.apply("inspect", {"passed": False, "notes": "公共走廊墙面损坏", "rectify_by": asked},
                         now=asked, by="mgr", role="manager")
    assert refused.value.field == "rectify_by"
    rectify_by = asked + timedelta(days=4)
    renovation.apply("inspect", {"passed": False, "notes": "公共走廊墙面损坏", "rectify_by": rectify_by},
                     now=asked, by="mgr", role="manager")
    assert renovation.status == "rectifying"
    assert renovation.permit["revoked_at"] is None
    assert renovation.deadlines["rectify"] == rectify_by.isoformat()
    assert renovation.next_due_at == rectify_by
    # not re-inspected by then: one breach, alerted like any other deadline
    late = rectify_by + timedelta(hours=1)
    assert renovation.due_breaches(late) == [("rectify", rectify_by)]
    renovation.record_breach("rectify", rectify_by, now=late)
    assert renovation.due_breaches(late + timedelta(days=1)) == []
    assert renovation.pull_events()[-1][1]["deadline"] == "rectify"
    again = asked + timedelta(days=5)
    renovation.apply("request-inspection", {}, now=again, by="agent-li", role="agent")
    assert renovation.deadlines["inspection"] == (again + timedelta(days=3)).isoformat()
    assert "inspection" not in renovation.deadlines_met
    renovation.apply("inspect", {"passed": True, "notes": "复验合格"}, now=again, by="mgr", role="manager")
    assert "rectify" in renovation.deadlines_met


def test_the_refund_billing_made_archives_the_file_and_a_manual_close_stays_for_one_made_outside():
    renovation = permitted()
    inspected = SUBMITTED + timedelta(days=30)
    renovation.apply("request-inspection", {}, now=inspected, by="agent-li", role="agent")
    renovation.apply("inspect", {"passed": True, "notes": "合格"}, now=inspected, by="mgr", role="manager")
    assert renovation.deposit_refunded(Decimal("2000.00"), now=inspected + timedelta(hours=2))
    assert (renovation.status, renovation.history[-1]["by"]) == ("closed", "billing")
    assert "refund" in renovation.deadlines_met and renovation.next_due_at is None
    assert not renovation.deposit_refunded(Decimal("2000.00"), now=inspected + timedelta(hours=3))

    by_hand = permitted()
    by_hand.apply("request-inspection", {}, now=inspected, by="agent-li", role="agent")
    by_hand.apply("inspect", {"passed": True, "notes": "合格"}, now=inspected, by="mgr", role="manager")
    by_hand.apply("close", {"reference": "现金退还 RF-0001"}, now=inspected, by="agent-li", role="agent")
    assert (by_hand.status, by_hand.refund["reference"]) == ("closed", "现金退还 RF-0001")
    assert not by_hand.deposit_refunded(Decimal("2000.00"), now=inspected + timedelta(days=1))


def test_a_passed_inspection_revokes_permit_and_passes_and_refunds_the_deposit_less_deductions():
    renovation = permitted()
    now = SUBMITTED + timedelta(days=15)
    renovation.apply("violation", {"description": "噪音", "rectify_by": now + timedelta(days=1),
                                   "deduction": Decimal("150.00")}, now=now, by="t", role="technician")
    renovation.apply("rectified", {}, now=now, by="t", role="technician")
    # Friday 2026-12-04 10:00 Shanghai
    inspected = datetime(2026, 12, 4, 2, 0, tzinfo=UTC)
    renovation.apply("request-inspection", {}, now=inspected, by="agent-li", role="agent")
    renovation.apply("inspect", {"passed": True, "notes": "合格"}, now=inspected, by="mgr", role="manager")
    assert renovation.status == "passed"
    assert renovation.permit["revoked_at"] and all(p["revoked_at"] for p in renovation.passes)
    # + 3 working days = Wednesday 2026-12-09 10:00 Shanghai
    assert renovation.deadlines["refund"] == "2026-12-09T02:00:00+00:00"
    [(event, data)] = renovation.pull_events()
    assert event == "renovation.deposit_refund_due"
    assert data["deductions"] == Decimal("150.00")
    renovation.apply("close", {"reference": "RF-1"}, now=inspected, by="agent-li", role="agent")
    assert renovation.status == "closed" and "refund" in renovation.deadlines_met


def test_actions_out_of_order_are_409_naming_what_is_allowed():
    renovation = submit()
    with pytest.raises(IllegalTransition) as raised:
        renovation.apply("inspect", {"passed": True, "notes": "x"}, now=SUBMITTED, by="m", role="manager")
    assert raised.value.extra["allowed_actions"] == ["review"]


# -- breaches -------------------------------------------------------------------------------

def test_a_missed_review_is_breached_once():
    renovation = submit()
    due = datetime.fromisoformat(renovation.deadlines["review"])
    assert renovation.next_due_at == due
    assert renovation.due_breaches(due - timedelta(seconds=1)) == []
    assert renovation.due_breaches(due) == [("review", due)]
    renovation.record_breach("review", due, now=due)
    renovation.refresh_due()
    assert renovation.due_breaches(due + timedelta(days=9)) == []
    assert renovation.next_due_at is None
    assert renovation.breaches == [{"deadline": "review", "due_at": due.isoformat(),
                                    "detected_at": due.isoformat()}]
    [(event, data)] = renovation.pull_events()
    assert event == "renovation.sla_breached" and data["deadline"] == "review"


def test_a_review_in_time_is_no_breach():
    renovation = approved()
    assert renovation.due_breaches(SUBMITTED + timedelta(days=30)) == []
