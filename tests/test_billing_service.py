"""billing as a running service on the real broker: units projected from registry's events, the
monthly run once per unit and period, payments oldest first with receipts and credit, renovation
fees and deposits through events, the arrears ladder swept at successive dates, and two replicas
sweeping at the same moment taking each step once."""
from datetime import date, datetime, timezone

import eventlet
import pytest
from nameko.containers import ServiceContainer
from nameko.standalone.events import event_dispatcher

from services.billing.service import BillingService
from services.common.contracts import envelope
from services.common.errors import Conflict, ValidationFailed
from tests.flows import SITE, eventually, site_payload, unit_payload
from bench.harness import free_port, migrated
from tests.inprocess import Cluster, identity

pytestmark = pytest.mark.integration

MANAGER = identity("manager", sub="mgr-wang")
DESK = identity("agent", sub="agent-ann")
OPS = identity("ops_admin", sites=["*"], sub="ops")
UNIT, NEIGHBOUR = "0010101001", "0010101002"
SCHEDULE = {"site": SITE, "management_per_m2": {"residential": "2.50"}, "parking_per_month": "150.00"}


def past_invoice(unit, period, amount="223.75"):
    return {"unit": unit, "period": period, "due_date": f"{period}-15",
            "items": [{"fee": "management", "amount": amount}]}


@pytest.fixture
def billing(run_services):
    """registry and billing running; site 001 with two units of 89.50 m² known to billing."""
    cluster = run_services("registry", "billing")
    with cluster.rpc(MANAGER) as rpc:
        rpc.registry.create_site(site_payload(SITE))
        rpc.registry.create_unit(unit_payload(UNIT, "13812345678"))
        rpc.registry.create_unit(unit_payload(NEIGHBOUR, "13987654321", owner="Zhang Min"))
        rpc.billing.set_fee_schedule(SCHEDULE)
    with cluster.rpc(OPS) as rpc:
        eventually(lambda: all(_known(rpc, u) for u in (UNIT, NEIGHBOUR)),
                   what="billing learning the units from registry.unit_changed")
    return cluster


def _known(rpc, unit):
    try:
        return rpc.billing.get_account(unit, "2026-01-01")
    except Exception:
        return None


def test_the_monthly_run_invoices_each_unit_once_per_period(billing):
    with billing.rpc(MANAGER) as rpc:
        first = rpc.billing.run_billing({"site": SITE, "period": "2026-01"})
        again = rpc.billing.run_billing({"site": SITE, "period": "2026-01"})
        account = rpc.billing.get_account(UNIT, "2026-01-10")
    assert (first["created"], first["billed"]) == (2, "447.50")
    assert (again["created"], again["invoices"]) == (0, 2)
    [invoice] = account["open_invoices"]
    assert (invoice["period"], invoice["total"], invoice["due_date"]) == ("2026-01", "223.75", "2026-01-15")
    assert account["balance"] == "223.75"


def test_a_payment_settles_the_oldest_invoice_first_and_leaves_a_credit(billing, event_tap):
    tap = event_tap("billing", "invoice_paid")
    with billing.rpc(DESK) as rpc:
        for period in ("2026-01", "2026-02"):
            rpc.billing.create_invoice(past_invoice(UNIT, period))
        paid = rpc.billing.record_payment({"unit": UNIT, "amount": "500.00", "method": "wechat",
                                           "reference": "WX123"})
        account = rpc.billing.get_account(UNIT, "2026-03-01")
        collection = rpc.billing.collection_rate({"site": SITE, "period": "2026-01"})
    assert paid["receipt_number"].startswith("R001")
    assert (len(paid["settled_invoices"]), paid["credit"]) == (2, "52.50")
    assert (account["balance"], account["credit"], account["open_invoices"]) == ("-52.50", "52.50", [])
    assert (collection["rate_percent"], collection["on_target"]) == ("100.00", True)
    events = tap.collect(2)
    assert sorted(body["data"]["period"] for _, body in events) == ["2026-01", "2026-02"]
    assert {body["data"]["receipt_number"] for _, body in events} == {paid["receipt_number"]}
    assert {body["data"]["owner"]["phone"] for _, body in events} == {"13812345678"}
    # the credit pays the next month's run at once
    with billing.rpc(MANAGER) as rpc:
        rpc.billing.run_billing({"site": SITE, "period": "2026-03"})
        assert rpc.billing.get_account(UNIT, "2026-03-01")["open_invoices"][0]["outstanding"] == "171.25"


def test_bad_input_is_refused_by_field_and_nothing_is_written(billing):
    with billing.rpc(DESK) as rpc:
        with pytest.raises(ValidationFailed) as refused:
            rpc.billing.create_invoice({**past_invoice(UNIT, "2026-01"), "items": [
                {"fee": "management", "amount": "-1"}]})
        assert "items" in refused.value.extra["errors"]
        with pytest.raises(ValidationFailed) as refused:
            rpc.billing.record_payment({"unit": UNIT, "amount": "10.00", "method": "gold"})
        assert list(refused.value.extra["errors"]) == ["method"]
        rpc.billing.create_invoice(past_invoice(UNIT, "2026-01"))
        with pytest.raises(Conflict):
            rpc.billing.create_invoice(past_invoice(UNIT, "2026-01"))
        assert len(rpc.billing.get_account(UNIT, "2026-01-01")["open_invoices"]) == 1


def test_renovation_fees_are_invoiced_the_deposit_held_once_paid_and_refunded_less_deductions(
        billing, service_config, event_tap):
    tap = event_tap("billing", "invoice_paid")
    publish("renovation.fees_due", {
        "renovation_id": "reno-1", "unit": UNIT, "due_date": date(2026, 3, 1),
        "items": [{"fee": "renovation_management", "amount": "300.00"},
                  {"fee": "renovation_deposit", "amount": "2000.00"}]}, service_config)
    with billing.rpc(DESK) as rpc:
        eventually(lambda: rpc.billing.get_account(UNIT, "2026-02-01")["open_invoices"],
                   what="the renovation invoice")
        rpc.billing.record_payment({"unit": UNIT, "amount": "2300.00", "method": "bank_transfer"})
        held = rpc.billing.get_account(UNIT, "2026-02-01")
    [paid] = tap.collect(1)
    assert paid[1]["data"]["reference"] == {"renovation_id": "reno-1"}
    assert (held["deposits_held"], held["balance"]) == ("2000.00", "0.00")
    publish("renovation.deposit_refund_due", {
        "renovation_id": "reno-1", "unit": UNIT, "deductions": "300.00",
        "refund_by": datetime(2026, 6, 5, tzinfo=timezone.utc)}, service_config)
    with billing.rpc(DESK) as rpc:
        refunded = eventually(
            lambda: rpc.billing.get_account(UNIT, "2026-06-01"),
            done=lambda account: account["deposits"][0]["status"] == "refunded",
            what="the deposit refund")
    assert refunded["deposits"][0]["refunded"] == "1700.00"
    assert refunded["deposits_held"] == "0.00"


def test_a_paid_repair_is_invoiced_and_its_settlement_names_the_ticket(billing, service_config, event_tap):
    tap = event_tap("billing", "invoice_paid")
    publish("ticketing.service_charge", {
        "ticket_id": "t-42", "code": "001-R-00042", "unit": UNIT, "amount": "80.00",
        "description": "replace tap", "completed_at": datetime(2026, 3, 2, 2, tzinfo=timezone.utc)},
        service_config)
    with billing.rpc(DESK) as rpc:
        [invoice] = eventually(lambda: rpc.billing.get_account(UNIT, "2026-03-02")["open_invoices"],
                               what="the repair invoice")
        rpc.billing.record_payment({"unit": UNIT, "amount": "80.00", "method": "cash"})
    assert (invoice["kind"], invoice["total"], invoice["due_date"]) == ("repair", "80.00", "2026-03-02")
    [(_, paid)] = tap.collect(1)
    assert paid["data"]["reference"] == {"ticket_id": "t-42"}


def test_the_ladder_is_walked_by_successive_sweeps_and_a_payment_stops_it(billing, event_tap):
    tap = event_tap("billing", "arrears_escalated")
    with billing.rpc(DESK) as rpc:
        rpc.billing.create_invoice(past_invoice(UNIT, "2026-01"))
    with billing.rpc(OPS) as rpc:
        swept = [rpc.billing.sweep({"as_of": f"{day}T09:00:00+08:00"}) for day in (
            "2026-02-14", "2026-02-15", "2026-02-16", "2026-04-16", "2026-04-16")]
        arrears = rpc.billing.list_arrears({"site": SITE, "as_of": "2026-04-16"})
    assert [s["steps"] for s in swept] == [0, 2, 0, 3, 0]
    [row] = arrears["items"]
    assert (row["unit"], row["months"], row["stage"], row["amount_overdue"]) == (UNIT, 3, "reminder", "223.75")
    steps = sorted((b["data"]["step"], b["data"]["months"]) for _, b in tap.collect(5, quiet=0.5))
    assert steps == [("payment_notice", 1), ("payment_notice", 3), ("reminder", 1),
                     ("reminder", 3), ("transfer_watch", 3)]
    # a partial payment does not stop the ladder: month 4 still brings its reminder and notice
    with billing.rpc(DESK) as rpc:
        partial = rpc.billing.record_payment({"unit": UNIT, "amount": "100.00", "method": "cash"})
    assert (partial["settled_invoices"], partial["credit"]) == ([], "0.00")
    with billing.rpc(OPS) as rpc:
        assert rpc.billing.sweep({"as_of": "2026-05-15T09:00:00+08:00"})["steps"] == 2
        account = rpc.billing.get_account(UNIT, "2026-05-15")
    assert (account["arrears"]["months"], account["arrears"]["amount_overdue"]) == (4, "123.75")
    # paying the rest, with 50.00 over, stops it and leaves a credit
    with billing.rpc(DESK) as rpc:
        settled = rpc.billing.record_payment({"unit": UNIT, "amount": "173.75", "method": "cash"})
    assert settled["credit"] == "50.00"
    with billing.rpc(OPS) as rpc:
        assert rpc.billing.sweep({"as_of": "2026-08-01T09:00:00+08:00"})["steps"] == 0
        assert rpc.billing.list_arrears({"site": SITE, "as_of": "2026-08-01"})["items"] == []


def test_the_sweep_takes_the_day_of_its_instant_at_the_site(billing):
    """The first reminder and notice are due on 2026-02-15 at the site (Asia/Shanghai), which
    begins at 16:00 UTC on the 14th."""
    with billing.rpc(DESK) as rpc:
        rpc.billing.create_invoice(past_invoice(UNIT, "2026-01"))
    with billing.rpc(OPS) as rpc:
        assert rpc.billing.sweep({"as_of": "2026-02-14T15:59:00+00:00"})["steps"] == 0
        assert rpc.billing.sweep({"as_of": "2026-02-14T16:00:00+00:00"})["steps"] == 2


def test_the_sweep_takes_an_instant_not_a_day(billing):
    with billing.rpc(OPS) as rpc, pytest.raises(ValidationFailed) as caught:
        rpc.billing.sweep({"as_of": "2026-02-15"})
    assert "as_of" in caught.value.extra["errors"]


def publish(event, data, config):
    """An event as its source service's outbox relay publishes it."""
    source, name = event.split(".")
    body = envelope(event, data, site=SITE, occurred_at=datetime.now(timezone.utc))
    event_dispatcher(config)(source, name, body)


@pytest.fixture
def shared_database(db_url, service_config):
    """billing's configuration on a database (SQLite or PostgreSQL) two replicas share."""
    return dict(service_config, DB_URIS={**service_config["DB_URIS"],
                                         "billing": migrated("billing", db_url)})


def test_two_replicas_sweeping_at_the_same_moment_take_each_step_once(
        shared_database, event_tap):
    units = [f"00101010{n:02d}" for n in range(1, 21)]
    others = Cluster(shared_database).start("registry")
    replicas = [ServiceContainer(BillingService, dict(
        shared_database, WEB_SERVER_ADDRESS=f"127.0.0.1:{free_port()}")) for _ in range(2)]
    for replica in replicas:
        replica.start()
    tap = event_tap("billing", "arrears_escalated")
    try:
        with others.rpc(MANAGER) as rpc:
            rpc.registry.create_site(site_payload(SITE))
            for unit in units:
                rpc.registry.create_unit(unit_payload(unit, "13812345678"))
            for unit in units:
                eventually(lambda: _known(rpc, unit), what=f"billing learning {unit}")
                rpc.billing.create_invoice(past_invoice(unit, "2026-01"))
        with others.rpc(OPS) as first, others.rpc(OPS) as second:
            # Two calls in flight at once are consumed round-robin, one by each replica.
            pool = eventlet.GreenPool()
            results = list(pool.imap(lambda proxy: proxy.billing.sweep({"as_of": "2026-04-16T09:00:00+08:00"}),
                                     [first, second]))
        # each unit: the reminder and the notice of month 3, and the transfer watch — once
        assert sum(r["steps"] for r in results) == 3 * len(units)
        events = tap.collect(3 * len(units))
        assert len(events) == 3 * len(units)
        assert len({(b["data"]["unit"], b["data"]["step"]) for _, b in events}) == 3 * len(units)
        # on the first of the month both post April's late fees: one invoice per unit between them
        with others.rpc(OPS) as first, others.rpc(OPS) as second:
            posted = list(pool.imap(lambda proxy: proxy.billing.sweep({"as_of": "2026-05-01T09:00:00+08:00"}),
                                    [first, second]))
        assert sum(r["late_fees_posted"] for r in posted) == len(units)
        with others.rpc(DESK) as rpc:
            arrears = rpc.billing.get_account(units[0], "2026-05-01")["arrears"]
        # 106 days on 223.75 since 15 January
        assert (arrears["late_fee_posted"], arrears["late_fee_accruing"]) == ("7.12", "0.00")
    finally:
        for replica in replicas:
            replica.stop()
        others.shutdown()
