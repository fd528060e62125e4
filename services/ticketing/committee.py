"""The monthly work report to the owners' committee (SPEC §8.6, 001 §2.11.1
"每月应向业主委员会提交《月度工作报告》"): the site's KPI report of the month as `kpis` composes
it, with the collection rate, the breaches, the front desk's activities and open defects and the
trend of the last 12 months; as JSON, or as a printable A4 page whose charts are SVG drawn here
(nothing is fetched from anywhere: no script, no font, no image).

Pure: standard library only; the service gathers the figures and hands them over."""
from decimal import Decimal
from html import escape

# Targets the figures are held against: 001 ch.3 (报修、投诉处理及时率 100 %, 投诉回访率 100 %,
# 活动回访率 ≥ 10 %, 活动满意率 ≥ 80 %), SPEC §2 (repair timeliness ≥ 99 %, valid complaints
# ≤ 2 %), §4 (collection ≥ 98 %). The seeds give no figure for callback satisfaction: 90 % is
# propdesk's default.
TARGETS = {
    "timeliness_rate": 1.0, "repair_timeliness_rate": 0.99, "complaint_timeliness_rate": 1.0,
    "callback_rate": 1.0, "satisfaction_rate": 0.9, "collection_rate": 0.98,
    "valid_complaint_rate": 0.02, "activity_revisit_rate": 0.10,
    "activity_satisfaction_rate": 0.80,
}
AT_MOST = {"valid_complaint_rate"}      # lower is better
FIGURE_NAMES = {
    "timeliness_rate": "处理及时率", "repair_timeliness_rate": "报修及时率",
    "complaint_timeliness_rate": "投诉及时率", "callback_rate": "回访率",
    "satisfaction_rate": "满意率", "collection_rate": "收缴率",
    "valid_complaint_rate": "有效投诉率",
}
KIND_NAMES = {"repair": "报修", "complaint": "投诉", "inquiry": "咨询", "suggestion": "建议"}
DEADLINE_NAMES = {"quarterly_contact": "要害客户季度沟通", "monthly_contact": "业委会委员月度沟通"}
FRONTDESK_NOTE = ("activities and open defects are frontdesk's figures of the month, as the "
                  "KPI report's frontdesk section (and /frontdesk-kpis) gives them")


def months_back(month, count):
    """The `count` months ending with `month` (YYYY-MM), oldest first."""
    year, number = map(int, month.split("-"))
    found = []
    for back in range(count - 1, -1, -1):
        y, m = divmod(year * 12 + number - 1 - back, 12)
        found.append(f"{y}-{m + 1:02d}")
    return found


def collection_fraction(collection):
    """billing's `rate_percent` ("97.50") as a fraction (0.975); None when nothing was billed."""
    if not collection or not collection.get("invoices"):
        return None
    return float((Decimal(collection["rate_percent"]) / 100).quantize(Decimal("0.0001")))


def ticket_breaches(tickets):
    """{kind: {deadline: n}} of the breaches on the month's tickets, and their total."""
    by_kind = {}
    for ticket in tickets:
        for breach in ticket.breaches or ():
            deadlines = by_kind.setdefault(ticket.kind, {})
            deadlines[breach["deadline"]] = deadlines.get(breach["deadline"], 0) + 1
    return by_kind, sum(n for deadlines in by_kind.values() for n in deadlines.values())


def compose(*, site, month, trend, tickets, collections, frontdesk, contact_breaches):
    """The report: `trend` the KPI reports of the 12 months (oldest first, the month last),
    `tickets` the month's tickets (for their breaches), `collections` billing's collection
    answer of each of those months, `frontdesk` its KPIs of the month, `contact_breaches`
    registry's {deadline: n} of the month."""
    kpis = trend[-1]
    collection = collections[-1]
    by_kind, ticket_total = ticket_breaches(tickets)
    defects = frontdesk.get("defects") or {}
    activities = frontdesk.get("activities") or []
    figures = {**{name: kpis.get(name) for name in FIGURE_NAMES if name != "collection_rate"},
               "collection_rate": collection_fraction(collection)}
    against = [{"figure": name, "value": value, "target": TARGETS[name],
                "on_target": None if value is None else (
                    value <= TARGETS[name] if name in AT_MOST else value >= TARGETS[name])}
               for name, value in figures.items()]
    return {
        "site": site, "month": month,
        "kpis": kpis,
        "against_target": against,
        "breaches": {"tickets": by_kind, "tickets_total": ticket_total,
                     "contacts": contact_breaches,
                     "defects_submit": defects.get("submit_breached", 0),
                     "total": ticket_total + sum(contact_breaches.values())
                     + defects.get("submit_breached", 0)},
        "collection": collection,
        "activities": activities,
        "open_defects": defects.get("open", 0),
        "frontdesk": {"source": "frontdesk_kpis", "note": FRONTDESK_NOTE,
                      "defects": defects, "move_ins": frontdesk.get("move_ins")},
        "trend": [{"month": report["month"], "received": sum(report["received"].values()),
                   "timeliness_rate": report["timeliness_rate"],
                   "callback_rate": report["callback_rate"],
                   "satisfaction_rate": report["satisfaction_rate"],
                   "collection_rate": collection_fraction(paid)}
                  for report, paid in zip(trend, collections)],
    }


# -- the printable page -------------------------------------------------------------------

def _pct(value):
    return "—" if value is None else f"{float(value) * 100:.1f}%"


def _bars(items, *, width=520, height=180, colour="#3b6ea5"):
    """A vertical bar chart of [(label, count)]."""
    top = max([n for _, n in items] + [1])
    slot = (width - 40) / max(len(items), 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img">',
             f'<line x1="30" y1="{height - 30}" x2="{width - 10}" y2="{height - 30}" stroke="#333"/>']
    for i, (label, count) in enumerate(items):
        h = (height - 60) * count / top
        x = 30 + i * slot + slot * 0.2
        parts.append(f'<rect x="{x:.1f}" y="{height - 30 - h:.1f}" width="{slot * 0.6:.1f}" '
                     f'height="{h:.1f}" fill="{colour}"/>')
        parts.append(f'<text x="{x + slot * 0.3:.1f}" y="{height - 34 - h:.1f}" font-size="12" '
                     f'text-anchor="middle">{count}</text>')
        parts.append(f'<text x="{x + slot * 0.3:.1f}" y="{height - 12}" font-size="12" '
                     f'text-anchor="middle">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _against(rows, *, width=620):
    """Horizontal bars of rates (0–100 %) with each target marked."""
    row_h = 26
    height = row_h * len(rows) + 20
    left, span = 110, width - 240
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img">']
    for i, row in enumerate(rows):
        y = 10 + i * row_h
        value = row["value"]
        colour = "#999" if row["on_target"] is None else ("#3a8a4a" if row["on_target"] else "#c0392b")
        parts.append(f'<text x="{left - 6}" y="{y + 14}" font-size="12" text-anchor="end">'
                     f'{escape(FIGURE_NAMES[row["figure"]])}</text>')
        parts.append(f'<rect x="{left}" y="{y + 2}" width="{span}" height="16" fill="#eee"/>')
        if value is not None:
            parts.append(f'<rect x="{left}" y="{y + 2}" width="{span * min(float(value), 1):.1f}" '
                         f'height="16" fill="{colour}"/>')
        tx = left + span * row["target"]
        parts.append(f'<line x1="{tx:.1f}" y1="{y}" x2="{tx:.1f}" y2="{y + 20}" stroke="#000" '
                     f'stroke-width="2"/>')
        parts.append(f'<text x="{left + span + 6}" y="{y + 14}" font-size="12">{_pct(value)} / '
                     f'{"≤" if row["figure"] in AT_MOST else "≥"}{_pct(row["target"])}</text>')
    parts.append("</svg>")
    return "".join(parts)


TREND_LINES = (("timeliness_rate", "#3b6ea5", "及时率"), ("callback_rate", "#e67e22", "回访率"),
               ("satisfaction_rate", "#3a8a4a", "满意率"), ("collection_rate", "#8e44ad", "收缴率"))


def _trend(trend, *, width=640, height=220):
    """Lines of the rates over the 12 months (0–100 %); a month with nothing measured is a gap."""
    left, right, top, bottom = 40, 24, 10, 50
    plot_w, plot_h = width - left - right, height - top - bottom
    step = plot_w / max(len(trend) - 1, 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img">']
    for tick in (0, 0.5, 1):
        y = top + plot_h * (1 - tick)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" '
                     f'stroke="#ccc"/><text x="{left - 4}" y="{y + 4:.1f}" font-size="10" '
                     f'text-anchor="end">{int(tick * 100)}%</text>')
    for i, point in enumerate(trend):
        parts.append(f'<text x="{left + i * step:.1f}" y="{height - bottom + 14}" font-size="10" '
                     f'text-anchor="middle">{escape(point["month"][2:])}</text>')
    for n, (name, colour, label) in enumerate(TREND_LINES):
        segment = []
        for i, point in enumerate(trend + [{name: None}]):
            value = point.get(name)
            if value is None:
                if len(segment) > 1:
                    parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
                                 f'points="{" ".join(segment)}"/>')
                for dot in segment:
                    x, y = dot.split(",")
                    parts.append(f'<circle cx="{x}" cy="{y}" r="2.5" fill="{colour}"/>')
                segment = []
                continue
            segment.append(f"{left + i * step:.1f},{top + plot_h * (1 - min(float(value), 1)):.1f}")
        lx = left + n * 110
        parts.append(f'<rect x="{lx}" y="{height - 20}" width="12" height="4" fill="{colour}"/>'
                     f'<text x="{lx + 16}" y="{height - 14}" font-size="11">{label}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(header, rows):
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(report, site_name=None):
    """The report as one printable A4 HTML page."""
    kpis = report["kpis"]
    received = [(KIND_NAMES.get(kind, kind), n) for kind, n in kpis["received"].items()]
    breaches = report["breaches"]
    breach_rows = [(KIND_NAMES.get(kind, kind), deadline, n)
                   for kind, deadlines in sorted(breaches["tickets"].items())
                   for deadline, n in sorted(deadlines.items())]
    breach_rows += [("客户关怀", DEADLINE_NAMES.get(d, d), n) for d, n in sorted(breaches["contacts"].items())]
    if breaches["defects_submit"]:
        breach_rows.append(("房屋遗留问题", "书面提交开发商", breaches["defects_submit"]))
    activity_rows = [(a.get("title"), a.get("status"), a.get("participants"),
                      _pct(a.get("revisit_rate")), _pct(a.get("satisfaction_rate")),
                      "是" if a.get("on_target") else "否") for a in report["activities"]]
    collection = report["collection"] or {}
    trend_rows = [(p["month"], p["received"], _pct(p["timeliness_rate"]), _pct(p["callback_rate"]),
                   _pct(p["satisfaction_rate"]), _pct(p["collection_rate"])) for p in report["trend"]]
    title = f"{site_name or report['site']} 月度工作报告 {report['month']}"
    return f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>
@page {{ size: A4; margin: 15mm; }}
body {{ font-family: "Noto Sans CJK SC", "Microsoft YaHei", sans-serif; font-size: 11pt;
        width: 180mm; margin: 0 auto; color: #222; }}
h1 {{ font-size: 16pt; border-bottom: 2px solid #333; padding-bottom: 4px; }}
h2 {{ font-size: 12pt; margin: 14px 0 6px; }}
table {{ border-collapse: collapse; width: 100%; font-size: 10pt; }}
th, td {{ border: 1px solid #999; padding: 3px 6px; text-align: left; }}
section {{ page-break-inside: avoid; }}
.meta {{ color: #555; font-size: 9pt; }}
</style></head><body>
<h1>{escape(title)}</h1>
<p class="meta">致业主委员会 · 站点 {escape(report['site'])} · 住户 {kpis.get('households')} 户 ·
本页数据与站点月度 KPI 报表（/sites/{escape(report['site'])}/kpis?month={escape(report['month'])}）一致</p>
<section><h2>一、本月受理（按类别）</h2>{_bars(received)}
{_table(["类别", "受理", "及时率"], [
    ("报修", kpis["received"].get("repair", 0), _pct(kpis["repair_timeliness_rate"])),
    ("投诉", kpis["received"].get("complaint", 0), _pct(kpis["complaint_timeliness_rate"])),
    ("咨询", kpis["received"].get("inquiry", 0), _pct(kpis["inquiry_reply_rate"])),
    ("建议", kpis["received"].get("suggestion", 0), "—")])}</section>
<section><h2>二、指标与目标</h2>{_against(report["against_target"])}</section>
<section><h2>三、超时（违约）</h2>
{_table(["类别", "时限", "次数"], breach_rows or [("—", "本月无超时", 0)])}
<p>合计 {breaches["total"]} 次。</p></section>
<section><h2>四、收费</h2>
<p>收缴率 {escape(str(collection.get("rate_percent", "—")))}%（目标 ≥ 98%）：应收
{escape(str(collection.get("billed", "—")))} 元，实收 {escape(str(collection.get("collected", "—")))} 元。</p></section>
<section><h2>五、社区活动与房屋遗留问题</h2>
{_table(["活动", "状态", "参加人数", "回访率（≥10%）", "满意率（≥80%）", "达标"], activity_rows or [("本月无活动", "", "", "", "", "")])}
<p>未完成的房屋遗留问题 {report["open_defects"]} 项。</p></section>
<section><h2>六、近 12 个月趋势</h2>{_trend(report["trend"])}
{_table(["月份", "受理", "及时率", "回访率", "满意率", "收缴率"], trend_rows)}</section>
</body></html>
"""
