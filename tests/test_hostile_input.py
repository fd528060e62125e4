"""SPEC §7's hostile inputs sent through the gateway to the whole system running as separate
processes, each at representative routes: every one is a 4xx problem naming what is at fault
(never a 500, never an empty answer), and nothing is written."""
import base64
import json
from datetime import datetime, timedelta, timezone

import jwt
import pytest
import requests

from tests.conftest import JWT_SECRET
from tests.flows import SITE, repair_payload, site_payload, unit_payload

pytestmark = pytest.mark.e2e

UNIT = "0010101001"
PROBLEM = "application/problem+json"
LISTS = ["/sites", f"/units?site={SITE}", f"/tickets?site={SITE}", "/messages",
         "/renovations", "/arrears", f"/sites/{SITE}/handover", f"/sites/{SITE}/callbacks"]
FORGED_CURSORS = [base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")
                  for value in ({"id": {"$gt": ""}}, [1, 2], 10 ** 30, -1, "zzz", None)]


@pytest.fixture(scope="module")
def desk(system):
    """Site 001 with a unit and its billing set up; head office, who may call every route probed."""
    hq = system.client("hq", ["*"], sub="hq-zhao")
    assert hq.post("/sites", site_payload(SITE)).status_code == 201
    assert hq.post("/units", unit_payload(UNIT, "13812345678")).status_code == 201
    assert hq.post("/fee-schedules", {"site": SITE, "management_per_m2": {"residential": "2.50"}}).status_code in (200, 201)
    return hq


def problem(response, status_range=range(400, 500)):
    assert response.status_code in status_range, (response.status_code, response.text)
    assert response.headers["Content-Type"] == PROBLEM, response.text
    return response.json()


def names(response, field):
    body = problem(response)
    assert field in body.get("errors", {}), body
    return body


def test_nothing_hostile_on_a_ticket_is_written(desk):
    ticket = repair_payload(UNIT, "厨房水管漏水")
    deep = ticket | {"extra": json.loads("[" * 31 + "]" * 31)}  # with the body: 32 levels
    deep_text = json.dumps(ticket)[:-1] + ', "extra": ' + "[" * 10_000 + "]" * 10_000 + "}"
    assert problem(desk.session.post(desk.base + "/tickets", data=deep_text,
                                     headers={"Content-Type": "application/json"}))["status"] == 400
    assert names(desk.post("/tickets", deep), "extra")  # parsed; the schema refuses the field
    names(desk.post("/tickets", ticket | {"description": "漏水\ud800"}), "description")
    names(desk.post("/tickets", ticket | {"reporter": {"name": "\udfff", "phone": "13800000000"}}),
          "reporter.name")
    names(desk.post("/tickets", ticket | {"received_at": "0001-01-01T00:00:00+14:00"}), "received_at")
    names(desk.post("/tickets", ticket | {"fee": "1.005", "scope": "in_home"}), "fee")
    as_text = desk.session.post(desk.base + "/tickets", data=json.dumps(ticket),
                                headers={"Content-Type": "text/plain"})
    assert problem(as_text)["status"] == 415
    assert desk.get("/tickets", site=SITE).json()["items"] == []


@pytest.mark.parametrize("amount", ["1.005", "1e20", "99999999999999999999.99", "１２", " 1.00",
                                    "NaN", 1e20, 1.005])
def test_an_amount_that_is_not_plain_money_is_refused_on_invoices_and_payments(desk, amount):
    names(desk.post("/payments", {"unit": UNIT, "amount": amount, "method": "cash"}), "amount")
    invoice = desk.post("/invoices", {"unit": UNIT, "period": "2026-01", "due_date": "2026-01-31",
                                      "items": [{"fee": "management", "amount": amount}]})
    assert "items" in names(invoice, "items")["errors"]
    account = desk.get(f"/units/{UNIT}/account").json()
    assert (account["balance"], account["open_invoices"]) == ("0.00", [])


def test_a_month_or_day_before_1900_is_refused(desk):
    names(desk.post("/billing/runs", {"site": SITE, "period": "0000-01"}), "period")
    names(desk.get(f"/sites/{SITE}/kpis", month="0000-01"), "month")
    names(desk.post("/invoices", {"unit": UNIT, "due_date": "0001-01-01",
                                  "items": [{"fee": "management", "amount": "1.00"}]}), "due_date")


@pytest.mark.parametrize("path", LISTS)
def test_a_cursor_the_server_did_not_issue_is_refused_on_every_list(desk, path):
    for cursor in FORGED_CURSORS:
        names(desk.session.get(desk.base + path, params={"cursor": cursor}), "cursor")


def test_a_cursor_the_server_issued_still_turns_the_page(desk):
    assert desk.post("/sites", site_payload("002")).status_code == 201
    first = desk.get("/sites", limit=1).json()
    second = desk.get("/sites", limit=1, cursor=first["next_cursor"]).json()
    assert [s["code"] for s in first["items"] + second["items"]] == [SITE, "002"]


def _token(claims_or_size):
    now = datetime.now(timezone.utc)
    claims = {"sub": "hq-1", "role": "hq", "sites": ["*"], "iat": now}
    if isinstance(claims_or_size, int):
        claims |= {"exp": now + timedelta(hours=1), "pad": "x" * claims_or_size}
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


@pytest.mark.parametrize("token", [_token(None), _token(8 * 1024), _token(267 * 1024)],
                         ids=["without exp", "8 KB", "267 KB"])
def test_a_token_without_exp_or_above_4_kb_is_a_401_problem(system, token):
    for method, path in (("GET", "/tickets"), ("POST", "/tickets")):
        response = requests.request(method, system.url + "/api/v1" + path, json=repair_payload(UNIT, "x"),
                                    headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert problem(response, {401})["type"].endswith("/unauthorized")
