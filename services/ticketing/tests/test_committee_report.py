"""The committee report composed from the KPI reports of 12 months, and its printable page:
SVG charts, nothing fetched, text escaped (SPEC §8.6)."""
from types import SimpleNamespace

from services.ticketing import committee


def kpis(month, repairs=0, timeliness=None):
    return {"site": "001", "month": month, "households": 10,
            "received": {"repair": repairs, "complaint": 0, "inquiry": 0, "suggestion": 0},
            "timeliness_rate": timeliness, "repair_timeliness_rate": timeliness,
            "complaint_timeliness_rate": None, "callback_rate": None, "satisfaction_rate": None,
            "average_satisfaction": None, "complaint_rate": 0.0, "valid_complaint_rate": 0.0,
            "rework_rate": None, "inquiry_reply_rate": None, "finished": 0}


def report():
    months = committee.months_back("2027-03", 12)
    trend = [kpis(m) for m in months[:-1]] + [kpis("2027-03", repairs=2, timeliness=0.5)]
    collections = [{"invoices": 0, "rate_percent": "0.00"}] * 11 + [
        {"invoices": 10, "rate_percent": "97.50", "billed": "1000.00", "collected": "975.00"}]
    tickets = [SimpleNamespace(kind="repair", breaches=[{"deadline": "complete"}]),
               SimpleNamespace(kind="repair", breaches=[])]
    frontdesk = {"defects": {"open": 3, "found": 1, "submit_breached": 1},
                 "activities": [{"title": "<游园会>", "status": "completed", "participants": 20,
                                 "revisit_rate": "0.1", "satisfaction_rate": "0.8", "on_target": True}]}
    return committee.compose(site="001", month="2027-03", trend=trend, tickets=tickets,
                             collections=collections, frontdesk=frontdesk,
                             contact_breaches={"quarterly_contact": 1, "monthly_contact": 0})


def test_twelve_months_back_across_the_new_year():
    assert committee.months_back("2027-03", 12)[:2] == ["2026-04", "2026-05"]
    assert committee.months_back("2027-03", 12)[-1] == "2027-03"


def test_the_figures_are_the_months_kpi_report_and_the_others_besides():
    r = report()
    assert r["kpis"]["received"]["repair"] == 2 and r["kpis"]["month"] == "2027-03"
    assert r["breaches"]["tickets"] == {"repair": {"complete": 1}}
    assert r["breaches"]["total"] == 1 + 1 + 1      # a ticket's, a key customer's, a defect's
    against = {row["figure"]: row for row in r["against_target"]}
    assert against["collection_rate"]["value"] == 0.975
    assert against["collection_rate"]["on_target"] is False
    assert against["valid_complaint_rate"]["on_target"] is True          # 0 % ≤ 2 %
    assert against["callback_rate"]["on_target"] is None                 # nothing to measure
    assert [p["collection_rate"] for p in r["trend"]][-2:] == [None, 0.975]
    assert r["open_defects"] == 3


def test_the_page_is_a4_with_svg_charts_and_nothing_to_fetch():
    page = committee.render_html(report(), "金色家园")
    assert "size: A4" in page and page.count("<svg") == 3
    assert "<script" not in page and "src=" not in page and "href=" not in page
    assert "&lt;游园会&gt;" in page and "<游园会>" not in page
    assert "金色家园 月度工作报告 2027-03" in page
