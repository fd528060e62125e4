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
