"""billing's set-based SQL on SQLite and PostgreSQL agrees with the domain: the arrears
aggregate finds the oldest unpaid due date and the furthest ladder milestone of every unit
(month ends included), and the monthly run bills area × rate to the fen, once per period."""
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy.orm import Session

from services.billing import domain, storage
from services.billing.storage import Invoice, Unit

NOW = datetime(2026, 11, 23, 2, tzinfo=timezone.utc)
SINCE_DATES = [date(2025, 1, 31), date(2025, 2, 28), date(2025, 8, 31), date(2025, 11, 30),
               date(2026, 1, 15), date(2026, 5, 31), date(2026, 7, 16), date(2026, 8, 23),
               date(2026, 10, 22), date(2026, 10, 23)]


@pytest.fixture
def session(migrated_engine):
    with Session(migrated_engine("billing")) as session:
        yield session


def unit(code, major=False, area_centi=8950, usage="residential"):
    return Unit(code=code, site=code[:3], usage=usage, area_centi_m2=area_centi,
                major_customer=major, active=True, updated_at=NOW)


def invoice(unit_code, due, paid=False):
    return Invoice(id=f"{unit_code}-{due}", unit=unit_code, site=unit_code[:3], period=None,
                   due_date=due, kind="manual", total_fen=22375, paid_fen=22375 if paid else 0,
                   deposit_fen=0, settled=paid, reference={}, created_at=NOW)


@pytest.mark.parametrize("as_of", [date(2026, 11, 23), date(2026, 2, 28), date(2026, 3, 31)])
def test_the_arrears_aggregate_agrees_with_the_domain_on_every_date(session, as_of):
    expected = {}
    for n, since in enumerate(SINCE_DATES):
        for major in (False, True):
            code = f"001{n:05d}{int(major)}0"
            session.add(unit(code, major))
            session.add(invoice(code, since))
            session.add(invoice(code, since - timedelta(days=40), paid=True))
            session.add(invoice(code, since + timedelta(days=31)))
            if since < as_of:
                milestone = domain.current_milestone(since, as_of, major)
                expected[code] = (since, milestone.number if milestone else 0)
    session.commit()
    rows = session.execute(storage.arrears(as_of)).all()
    assert {r.unit: (r.since, r.milestone) for r in rows} == expected
    due = {r.unit for r in session.execute(storage.due_for_a_step(as_of)).all()}
    assert due == {code for code, (_, milestone) in expected.items() if milestone}


def test_the_monthly_run_bills_area_times_rate_to_the_fen_once_per_period(session):
    session.add_all([unit("0010101001"), unit("0010101002", area_centi=12345),
                     unit("0010101003", usage="parking", area_centi=1200)])
    session.commit()
    schedule = domain.FeeSchedule(site="001", management_per_m2={"residential": Decimal("2.50")},
                                  parking_per_month=Decimal("150.00"))
    assert storage.run_monthly(session, schedule, "2026-11", NOW) == 3
    session.commit()
    assert storage.run_monthly(session, schedule, "2026-11", NOW + timedelta(seconds=1)) == 0
    session.commit()
    totals = dict(session.query(Invoice.unit, Invoice.total_fen).all())
    # 89.50 × 2.50 = 223.75; 123.45 × 2.50 = 308.625 → 308.63; a parking space 150.00
    assert totals == {"0010101001": 22375, "0010101002": 30863, "0010101003": 15000}
    # the SQL bills what the domain's rule says
    for code, usage, area in (("0010101001", "residential", "89.50"),
                              ("0010101002", "residential", "123.45"), ("0010101003", "parking", "12.00")):
        [(_, amount, _)] = schedule.monthly_lines(usage, Decimal(area))
        assert domain.to_fen(amount) == totals[code]
    assert domain.from_fen(storage.ledger_balance(session, "0010101002")) == Decimal("308.63")


def test_the_bills_postgresql_builds_for_a_run_are_the_ones_python_builds(session):
    """A monthly run's billing.invoice_issued payloads are made by the database on PostgreSQL
    (one INSERT … SELECT); they must be what the Python builder makes, for every shape of bill:
    an owner known or not (or only by empty names), an email or not, no lines, several lines,
    a one-off invoice without a period, a unit billing knows no time zone of."""
    import json
    from sqlalchemy import cast, select as select_, Text
    from services.billing.service import invoice_issued
    from services.billing.storage import InvoiceLine
    from services.common import contracts
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("the payloads are built by the database on PostgreSQL only")
    owners = [dict(owner_name="李明", owner_phone="13800000001", owner_email="li@example.com"),
              dict(owner_name="王芳", owner_phone="13800000002"), {},
              dict(owner_name="", owner_phone=""), dict(owner_person_id="p0000001")]
    for n, owner in enumerate(owners):
        code = f"00101010{n:02d}"
        session.add(Unit(code=code, site="001", usage="residential", area_centi_m2=8950,
                         major_customer=False, active=True, updated_at=NOW,
                         timezone=None if n == 2 else "Asia/Shanghai", **owner))
        session.add(Invoice(id=f"I{n}", unit=code, site="001", period=None if n == 3 else "2026-11",
                            due_date=date(2026, 11, 15), kind="monthly", total_fen=22375 + n * 101 - 50,
                            paid_fen=0, deposit_fen=0, settled=False, reference={}, created_at=NOW))
        for k in range(n % 3):
            session.add(InvoiceLine(invoice_id=f"I{n}", fee=f"fee{k}", amount_fen=5 + 10000 * k,
                                    description="车位租赁 A-01（沪A12345）" if k else ""))
    session.commit()
    rate = Decimal("0.0003")
    where = Invoice.site == "001"
    made = storage.issued_payloads(where, rate).subquery()
    built = {sort: json.loads(data) for sort, data in session.execute(
        select_(made.c.sort, cast(made.c.data, Text)))}
    by_python = {invoice.id: contracts.dump_payload("billing.invoice_issued",
                                                    invoice_issued(invoice, lines, rate))[1]
                 for invoice, lines in storage.issued(session, where)}
    assert built == by_python
    assert len(built) == len(owners)
