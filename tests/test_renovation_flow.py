"""A renovation across registry, renovation and notifications on the real broker, with billing
stood in for by the shared contract: approval bills the fees (renovation.fees_due); the
`billing.invoice_paid` events this test publishes (as billing will) issue the permit and the
worker passes, and the lobby notice goes to the building; a passed inspection revokes the
passes and asks billing to refund the deposit less deductions. Missed deadlines are breached
and overdue violations escalated exactly once (two processes sweeping at once:
tests/test_renovation_replicas.py)."""
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from nameko.standalone.events import event_dispatcher

from services.common import contracts
from services.common.errors import Conflict, NotFound, ValidationFailed
from tests.flows import renovation_application, SITE, eventually, site_payload, unit_payload
from tests.inprocess import identity

pytestmark = pytest.mark.integration

UNIT = "0011020304"
AGENT = identity("agent", sub="agent-li")
MANAGER = identity("manager", sub="mgr-zhao")
TECHNICIAN = identity("technician", sub="tech-wang")
OPS = identity("ops_admin", sites=("*",), sub="ops")
# the renovation fees approval charges come from billing's schedule of the site
FEE_SCHEDULE = {"site": SITE, "renovation_management": "5.00", "renovation_deposit": "2000.00",
                "debris_removal": "300.00"}


def application(**changes):
    return renovation_application(changes.pop("unit", UNIT), workers=2, **changes)


@pytest.fixture
def renovation_services(run_services):
    cluster = run_services("registry", "renovation", "notifications", "billing")
    with cluster.rpc(MANAGER) as rpc:
        rpc.registry.create_site(site_payload(SITE))
        rpc.billing.set_fee_schedule(FEE_SCHEDULE)
    with cluster.rpc(AGENT) as rpc:
        rpc.registry.create_unit(unit_payload(UNIT, "13900000001", area="88.50"))
    return cluster


def act(cluster, caller, renovation_id, action, payload=None):
    with cluster.rpc(caller) as rpc:
        return rpc.renovation.act(renovation_id, action, payload or {})


def pay(cluster, renovation_id, invoice_id, amount):
    """What billing publishes when an invoice it made for the renovation is settled."""
    body = contracts.envelope("billing.invoice_paid", {
        "invoice_id": invoice_id, "unit": UNIT, "amount": amount,
        "paid_at": datetime.now(timezone.utc), "reference": {"renovation_id": renovation_id},
    }, site=SITE, occurred_at=datetime.now(timezone.utc))
    event_dispatcher(cluster.config)("billing", "invoice_paid", body)
    return body


def get(cluster, renovation_id):
    with cluster.rpc(AGENT) as rpc:
        return rpc.renovation.get_renovation(renovation_id)


def test_an_application_lacking_documents_is_refused_naming_them(renovation_services):
    with renovation_services.rpc(AGENT) as rpc:
        with pytest.raises(ValidationFailed) as raised:
            rpc.renovation.create_renovation(application(documents=["application_form"],
                                                         work_items=["plumbing"]))
        assert raised.value.extra["missing_documents"] == [
            "property_certificate", "applicant_id", "design_plan", "contractor_licence",
            "worker_ids", "utility_drawings"]
        with pytest.raises(ValidationFailed) as raised:
            rpc.renovation.create_renovation(application(
                applicant={"name": "租户", "phone": "13700000000", "is_owner": False}))
        assert "applicant" in raised.value.extra["errors"]
        assert rpc.renovation.list_renovations({"site": SITE})["items"] == []


def test_from_application_to_refund(renovation_services, event_tap):
    cluster = renovation_services
    tap = event_tap("renovation")
    with cluster.rpc(AGENT) as rpc:
        renovation = rpc.renovation.create_renovation(application())
    rid = renovation["id"]
    assert renovation["status"] == "submitted" and renovation["rule_violations"] == []
    assert set(renovation["deadlines"]) == {"review"}

    approved = act(cluster, MANAGER, rid, "review", {"decision": "approved"})
    assert approved["status"] == "approved"
    events = dict(tap.collect(expected=2, quiet=0))
    fees = events["fees_due"]["data"]
    assert [(line["fee"], line["amount"]) for line in fees["items"]] == [
        ("renovation_management", "442.50"), ("renovation_deposit", "2000.00"),
        ("debris_removal", "300.00")]
    assert events["decided"]["data"]["decision"] == "approved"

    act(cluster, AGENT, rid, "sign", {})
    first = pay(cluster, rid, "inv-fees", "742.50")
    event_dispatcher(cluster.config)("billing", "invoice_paid", first)   # redelivered
    eventually(lambda: get(cluster, rid)["paid_invoices"], what="the first invoice recorded")
    assert get(cluster, rid)["status"] == "approved", "the deposit is not paid yet"

    pay(cluster, rid, "inv-deposit", "2000.00")
    permitted = eventually(lambda: get(cluster, rid), lambda r: r["status"] == "permitted",
                           what="the permit")
    assert permitted["paid_invoices"] == {"inv-fees": "742.50", "inv-deposit": "2000.00"}
    assert permitted["permit"]["valid_until"] == application()["planned"]["end"]
    numbers = [p["number"] for p in permitted["passes"]]
    assert [p["holder"] for p in permitted["passes"]] == ["王工", "李工"]
    with cluster.rpc(identity("agent", sub="gate")) as rpc:
        gate = rpc.renovation.check_pass(numbers[0])
        assert (gate["status"], gate["unit"], gate["holder"]) == ("valid", UNIT, "王工")
        with pytest.raises(NotFound):
            rpc.renovation.check_pass("ZX-NO-SUCH-PASS")
    with cluster.rpc(identity("agent", sites=("002",))) as rpc:
        with pytest.raises(NotFound):
            rpc.renovation.check_pass(numbers[0])

    lobby = eventually(lambda: _messages(cluster, "building:001102"), what="the lobby notice")
    assert len(lobby) == 1 and lobby[0]["channel"] == "in_app"
    assert "1 组团 02 栋 0304 室" in lobby[0]["body"]
    to_applicant = eventually(lambda: _messages(cluster, "13812341234"),
                              lambda found: len(found) == 2, what="the applicant's SMS")
    assert sorted(m["template"] for m in to_applicant) == ["renovation_fees", "renovation_permit"]
    assert all(number in next(m["body"] for m in to_applicant if m["template"] == "renovation_permit")
               for number in numbers)

    now = datetime.now(timezone.utc)
    act(cluster, TECHNICIAN, rid, "patrol", {"note": "现场整洁", "ok": True})
    with pytest.raises(ValidationFailed) as raised:
        act(cluster, TECHNICIAN, rid, "violation", {"description": "午休时间施工",
                                                    "rectify_by": (now - timedelta(hours=1)).isoformat()})
    assert list(raised.value.extra["errors"]) == ["rectify_by"]
    assert get(cluster, rid)["violations"] == []
    act(cluster, TECHNICIAN, rid, "violation", {"description": "午休时间施工",
                                                "rectify_by": (now + timedelta(days=1)).isoformat(),
                                                "deduction": "200.00"})
    act(cluster, TECHNICIAN, rid, "rectified", {})
    act(cluster, AGENT, rid, "request-inspection", {})
    failed = act(cluster, MANAGER, rid, "inspect", {"passed": False, "notes": "走廊墙面损坏",
                                                   "rectify_by": (now + timedelta(days=3)).isoformat()})
    assert failed["status"] == "rectifying"
    act(cluster, AGENT, rid, "request-inspection", {})
    passed = act(cluster, MANAGER, rid, "inspect", {"passed": True, "notes": "合格"})
    assert passed["status"] == "passed"
    with cluster.rpc(identity("agent", sub="gate")) as rpc:
        assert rpc.renovation.check_pass(numbers[1])["status"] == "revoked"

    refund = [body for key, body in tap.collect(expected=2, quiet=0)
              if key == "deposit_refund_due"]
    assert [(r["data"]["deductions"]) for r in refund] == ["200.00"]
    closed = act(cluster, AGENT, rid, "close", {"reference": "RF-0001"})
    assert closed["status"] == "closed" and "refund" in closed["deadlines_met"]


def test_an_application_with_violations_cannot_be_approved_and_its_rejection_says_why(renovation_services):
    cluster = renovation_services
    with cluster.rpc(AGENT) as rpc:
        renovation = rpc.renovation.create_renovation(application(
            work_items=["flooring", "facade_change", "wet_room_conversion"]))
    assert renovation["rule_violations"] == ["facade_change", "wet_room_conversion"]
    with pytest.raises(Conflict):
        act(cluster, MANAGER, renovation["id"], "review", {"decision": "approved"})
    rejected = act(cluster, MANAGER, renovation["id"], "review",
                   {"decision": "rejected", "reason": "需规划部门批准"})
    assert rejected["rejection_reasons"] == ["facade_change", "wet_room_conversion", "需规划部门批准"]
    [sms] = eventually(lambda: _messages(cluster, "13812341234"), what="the applicant's SMS")
    assert "未获通过" in sms["body"] and "facade_change" in sms["body"] and "需规划部门批准" in sms["body"]


def test_a_review_left_past_its_deadline_alerts_the_manager_once(renovation_services):
    cluster = renovation_services
    long_ago = datetime.now(timezone.utc) - timedelta(days=10)
    with cluster.rpc(AGENT) as rpc:
        late = rpc.renovation.create_renovation(application(submitted_at=long_ago.isoformat()))
    as_of = datetime.now(timezone.utc).isoformat()
    with cluster.rpc(OPS) as rpc:
        assert [b["deadline"] for b in rpc.renovation.sweep({"as_of": as_of})["breaches"]] == ["review"]
        assert rpc.renovation.sweep({"as_of": as_of})["breaches"] == []
    alerts = eventually(lambda: _messages(cluster, f"role:manager@{SITE}"), what="the breach alert")
    assert [(m["event"], m["channel"]) for m in alerts] == [("renovation.sla_breached", "staff")]
    assert late["id"] in alerts[0]["body"]
    assert [b["deadline"] for b in get(cluster, late["id"])["breaches"]] == ["review"]


def _messages(cluster, recipient):
    with cluster.rpc(OPS) as rpc:
        return rpc.notifications.list_messages({"recipient": recipient})["items"]


# -- the sweep (two processes sweeping at once: tests/test_renovation_replicas.py) ------------

def test_the_sweep_escalates_an_overdue_violation_and_breaches_late_reviews_once_each(
        renovation_services, event_tap):
    cluster = renovation_services
    tap = event_tap("renovation", "sla_breached")
    long_ago = datetime.now(timezone.utc) - timedelta(days=10)
    with cluster.rpc(AGENT) as rpc:
        late = [rpc.renovation.create_renovation(application(submitted_at=long_ago.isoformat()))["id"]
                for _ in range(3)]
        watched = rpc.renovation.create_renovation(application())["id"]
    fees = act(cluster, MANAGER, watched, "review", {"decision": "approved"})["fees"]
    act(cluster, AGENT, watched, "sign", {})
    pay(cluster, watched, "inv-all", f"{sum(Decimal(line['amount']) for line in fees):.2f}")
    eventually(lambda: get(cluster, watched), lambda r: r["status"] == "permitted", what="the permit")
    soon = datetime.now(timezone.utc) + timedelta(minutes=5)
    act(cluster, TECHNICIAN, watched, "violation", {"description": "楼道堆放垃圾",
                                                    "rectify_by": soon.isoformat()})

    as_of = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()

    with cluster.rpc(OPS) as rpc:
        reports = [rpc.renovation.sweep({"as_of": as_of}), rpc.renovation.sweep({"as_of": as_of})]
    assert reports[1]["breaches"] == reports[1]["escalations"] == []
    swept = [b["renovation_id"] for report in reports for b in report["breaches"]]
    assert sorted(swept) == sorted(late)
    for rid in late:
        assert [b["deadline"] for b in get(cluster, rid)["breaches"]] == ["review"]
    escalated = [e for report in reports for e in report["escalations"]]
    assert escalated == [{"renovation_id": watched, "violation": 1}]
    [notice] = get(cluster, watched)["violations"]
    assert notice["escalated_at"] is not None
    assert [h["action"] for h in get(cluster, watched)["history"]].count("escalate") == 1
    alerts = tap.collect(expected=3)
    assert sorted(body["data"]["subject_id"] for _, body in alerts) == sorted(late)


def test_several_invoices_for_one_application_add_up_and_issue_the_permit_once(renovation_services):
    """However billing splits the fees (one invoice, or several settled by one payment), the
    permit comes once the paid invoices cover every fee line, and only once."""
    cluster = renovation_services
    with cluster.rpc(AGENT) as rpc:
        rid = rpc.renovation.create_renovation(application())["id"]
    fees = act(cluster, MANAGER, rid, "review", {"decision": "approved"})["fees"]
    act(cluster, AGENT, rid, "sign", {})
    total = sum(Decimal(line["amount"]) for line in fees)
    parts = [(total / 8).quantize(Decimal("0.01"))] * 7
    parts.append(total - sum(parts))
    for number, amount in enumerate(parts[:-1]):
        pay(cluster, rid, f"inv-{number}", f"{amount:.2f}")
    eventually(lambda: get(cluster, rid), lambda r: len(r["paid_invoices"]) == 7, what="7 payments")
    assert get(cluster, rid)["status"] == "approved", "one part is still unpaid"
    pay(cluster, rid, "inv-7", f"{parts[-1]:.2f}")
    permitted = eventually(lambda: get(cluster, rid), lambda r: r["status"] == "permitted",
                           what="the permit")
    assert permitted["paid_invoices"] == {f"inv-{n}": f"{a:.2f}" for n, a in enumerate(parts)}
    assert [h["action"] for h in permitted["history"]].count("issue-permit") == 1
