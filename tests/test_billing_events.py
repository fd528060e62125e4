"""billing tells owners about their bills and payments (000: 将每月的管理费帐单及时通过电子邮件、
短信...发送给客户): every invoice it makes raises `billing.invoice_issued` once — the monthly run's
all in one go, none again when the period is run again — and a settled invoice's
`billing.invoice_paid` names the receipt of the payment that settled it and the owner to tell.
Service workers on a real database (SQLite and PostgreSQL); the events are read from the outbox
they were committed to."""
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace
from unittest.mock import Mock

import pytest
from nameko.testing.services import worker_factory

from services.billing.service import BillingService
from services.billing.storage import Base
from services.common.auth import IDENTITY_KEY, CallContext
from services.common.contracts import envelope
from services.common.errors import Conflict, Forbidden
from tests.flows import SITE
from bench.harness import migrated
from tests.inprocess import identity

NOW = datetime(2026, 11, 23, 2, tzinfo=timezone.utc)
MANAGER = identity("manager", sub="mgr-wang")
DESK = identity("agent", sub="agent-ann")
SCHEDULE = {"site": SITE, "management_per_m2": {"residential": "2.50"}, "parking_per_month": "150.00"}
LI = {"name": "李伟", "phone": "13812345678", "email": "liwei@example.com", "person_id": "p-li"}
ZHANG = {"name": "张敏", "phone": "13987654321", "email": "zhangmin@example.com", "person_id": "p-zhang"}
WANG = {"name": "王芳", "phone": "13700001111", "email": None, "person_id": "p-wang"}
# unit: (usage, area m², owner)
UNITS = {"0010101001": ("residential", "89.50", LI), "0010101002": ("residential", "123.45", ZHANG),
         "0010101003": ("parking", "12.00", WANG)}
UNIT = "0010101001"


@pytest.fixture
def database(db_url, bound_database):
    """billing's Database dependency; its relay is not started, so events stay in the outbox."""
    return bound_database("billing", Base, {
        "AMQP_URI": "pyamqp://guest:guest@127.0.0.1:5672/unused",
        "DB_URIS": {"billing": migrated("billing", db_url)},
    })


@pytest.fixture
def billing(database):
    """`billing(method, *args, caller=MANAGER, now=NOW, rpc=None)`: one call on a fresh worker
    with its own unit of work, rolled back if the call raises, as Nameko runs an entrypoint."""
    def call(method, *args, caller=MANAGER, now=NOW, rpc=None):
        context = {IDENTITY_KEY: caller} if caller else {}
        with database.unit(context) as uow:
            worker = worker_factory(BillingService, uow=uow, clock=lambda: now,
                                    caller=CallContext(SimpleNamespace(data=dict(context))),
                                    rpc=rpc or Mock(name="no registry"))
            return getattr(worker, method)(*args)
    return call


@pytest.fixture
def site_billed(billing):
    """Site 001's fee schedule, and its three units with their owners as registry tells billing."""
    billing("set_fee_schedule", SCHEDULE)
    for code, (usage, area, owner) in UNITS.items():
        billing("on_unit_changed", event("registry.unit_changed", {
            "unit": code, "change": "created", "usage": usage, "area_m2": area, "owner": owner}),
            caller=None)
    return billing


def event(name, data):
    return envelope(name, data, site=SITE, occurred_at=NOW)


def raised(database, name):
    """The payloads of `name` in the outbox, in the order they were recorded."""
    return [row.body["data"] for row in database.outbox_rows() if row.event == name]


def invoice(unit, period, due_date, *amounts):
    return {"unit": unit, "period": period, "due_date": due_date,
            "items": [{"fee": "management", "amount": amount} for amount in amounts]}


def test_a_monthly_run_tells_each_owner_their_bill_and_running_it_again_tells_no_one(
        site_billed, database):
    run = site_billed("run_billing", {"site": SITE, "period": "2026-11"})
    bills = {bill["unit"]: bill for bill in raised(database, "billing.invoice_issued")}
    assert run["created"] == 3 and len(raised(database, "billing.invoice_issued")) == 3
    # 89.50 m² × 2.50 = 223.75; 123.45 × 2.50 = 308.625 → 308.63; a parking space 150.00
    assert {unit: bill["amount"] for unit, bill in bills.items()} == {
        "0010101001": "223.75", "0010101002": "308.63", "0010101003": "150.00"}
    assert {unit: bill["owner"] for unit, bill in bills.items()} == {
        "0010101001": LI, "0010101002": ZHANG, "0010101003": WANG}
    bill = bills[UNIT]
    assert (bill["invoice_id"], bill["period"], bill["kind"], bill["due_date"], bill["timezone"]) == (
        f"M2026-11-{UNIT}", "2026-11", "monthly", "2026-11-15", "Asia/Shanghai")
    assert bill["items"] == [{"fee": "management", "amount": "223.75", "description": "物业管理费"}]
    assert bills["0010101003"]["items"][0]["fee"] == "parking"
    assert bill["late_fee_daily_rate"] == "0.0003"        # the schedule's default, which the bill states

    again = site_billed("run_billing", {"site": SITE, "period": "2026-11"}, now=NOW + timedelta(hours=1))
    assert (again["created"], again["invoices"]) == (0, 3)
    assert len(raised(database, "billing.invoice_issued")) == 3
    # the next period is billed and told anew
    site_billed("run_billing", {"site": SITE, "period": "2026-12"}, now=NOW + timedelta(hours=2))
    assert len(raised(database, "billing.invoice_issued")) == 6


def test_a_manual_invoice_raises_one_bill_and_a_refused_one_none(site_billed, database):
    made = site_billed("create_invoice", invoice(UNIT, "2026-01", "2026-01-15", "223.75", "100.00"),
                       caller=DESK)
    [bill] = raised(database, "billing.invoice_issued")
    assert (bill["invoice_id"], bill["kind"], bill["period"], bill["amount"], bill["due_date"]) == (
        made["id"], "manual", "2026-01", "323.75", "2026-01-15")
    assert [item["amount"] for item in bill["items"]] == ["223.75", "100.00"]
    assert bill["owner"] == LI
    with pytest.raises(Conflict):
        site_billed("create_invoice", invoice(UNIT, "2026-01", "2026-01-15", "1.00"), caller=DESK)
    assert len(raised(database, "billing.invoice_issued")) == 1


def test_renovation_fees_and_a_paid_repair_are_billed_and_told(site_billed, database):
    site_billed("on_fees_due", event("renovation.fees_due", {
        "renovation_id": "reno-1", "unit": UNIT, "due_date": date(2026, 3, 1),
        "items": [{"fee": "renovation_management", "amount": "300.00"},
                  {"fee": "renovation_deposit", "amount": "2000.00"}]}), caller=None)
    site_billed("on_service_charge", event("ticketing.service_charge", {
        "ticket_id": "t-42", "code": "001-R-00042", "unit": UNIT, "amount": "80.00",
        "description": "replace tap", "completed_at": datetime(2026, 3, 2, 2, tzinfo=timezone.utc)}),
        caller=None)
    renovation, repair = raised(database, "billing.invoice_issued")
    assert (renovation["kind"], renovation["amount"], renovation["due_date"], renovation["period"]) == (
        "renovation", "2300.00", "2026-03-01", None)
    assert [item["fee"] for item in renovation["items"]] == ["renovation_management", "renovation_deposit"]
    assert (repair["kind"], repair["amount"], repair["due_date"], repair["owner"]) == (
        "repair", "80.00", "2026-03-02", LI)
    assert repair["items"] == [{"fee": "repair", "amount": "80.00", "description": "001-R-00042 replace tap"}]


def test_a_unit_registry_has_not_told_billing_of_is_fetched_with_its_owners_email(billing, database):
    billing("set_fee_schedule", SCHEDULE)
    registry = Mock()
    registry.registry.get_unit.return_value = {"code": "0010102001", "usage": "residential",
                                               "area_m2": "100.00", "active": True, "people": []}
    registry.registry.unit_contact.return_value = {"unit": "0010102001", "site": SITE,
                                                   "timezone": "Asia/Urumqi", "owner": ZHANG}
    billing("create_invoice", invoice("0010102001", None, "2026-02-01", "50.00"), caller=DESK,
            rpc=registry)
    [bill] = raised(database, "billing.invoice_issued")
    assert (bill["unit"], bill["owner"], bill["timezone"]) == ("0010102001", ZHANG, "Asia/Urumqi")


def test_an_invoice_settled_by_two_payments_names_the_receipt_of_the_second(site_billed, database):
    for period in ("2026-01", "2026-02"):
        site_billed("create_invoice", invoice(UNIT, period, f"{period}-15", "223.75"), caller=DESK)
    first = site_billed("record_payment", {"unit": UNIT, "amount": "300.00", "method": "wechat"},
                        caller=DESK)
    second = site_billed("record_payment", {"unit": UNIT, "amount": "147.50", "method": "cash"},
                         caller=DESK, now=NOW + timedelta(days=1))
    january, february = raised(database, "billing.invoice_paid")
    assert (january["period"], january["receipt_number"], january["owner"]) == (
        "2026-01", first["receipt_number"], LI)
    assert (february["period"], february["receipt_number"], february["amount"]) == (
        "2026-02", second["receipt_number"], "223.75")
    assert first["receipt_number"] != second["receipt_number"]


def test_a_credit_pays_the_monthly_bill_it_is_told_of_first(site_billed, database):
    paid = site_billed("record_payment", {"unit": UNIT, "amount": "500.00", "method": "alipay"},
                       caller=DESK)
    site_billed("run_billing", {"site": SITE, "period": "2026-11"})
    told = [(row.event, row.body["data"]["unit"]) for row in database.outbox_rows()]
    assert told.index(("billing.invoice_issued", UNIT)) < told.index(("billing.invoice_paid", UNIT))
    [settled] = raised(database, "billing.invoice_paid")
    assert (settled["invoice_id"], settled["receipt_number"], settled["owner"]) == (
        f"M2026-11-{UNIT}", paid["receipt_number"], LI)


@pytest.mark.parametrize("role", ["agent", "supervisor", "legal"])
def test_only_a_manager_or_head_office_runs_billing_and_a_refused_run_bills_no_one(
        site_billed, database, role):
    with pytest.raises(Forbidden):
        site_billed("run_billing", {"site": SITE, "period": "2026-11"}, caller=identity(role))
    assert raised(database, "billing.invoice_issued") == []
    site_billed("run_billing", {"site": SITE, "period": "2026-11"}, caller=identity("hq", sites=["*"]))
    site_billed("run_billing", {"site": SITE, "period": "2026-12"},
                caller=identity("ops_admin", sites=["*"]), now=NOW + timedelta(hours=1))
    assert len(raised(database, "billing.invoice_issued")) == 6
