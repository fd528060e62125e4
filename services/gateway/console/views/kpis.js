// 月度指标: a site's monthly report as figures, the last six months' rates as a line chart, the
// month's breaches by deadline as bars, and the API's own CSV for download.
import * as api from "../api.js";
import { barChart, lineChart } from "../charts.js";
import { h, monthOf, monthsBefore, pct, problemBox, replace } from "../dom.js";
import { KIND_NAMES, name, t } from "../i18n.js";

const RATES = ["timeliness_rate", "repair_timeliness_rate", "complaint_timeliness_rate", "callback_rate",
  "satisfaction_rate", "complaint_rate", "valid_complaint_rate", "rework_rate", "inquiry_reply_rate"];
const TARGETS = { repair_timeliness_rate: "≥ 99%", valid_complaint_rate: "≤ 2%", inquiry_reply_rate: "100%" };
const TREND = ["timeliness_rate", "callback_rate", "satisfaction_rate"];
const BREACH_PAGES = 10;   // at most 2,000 cases read to count a month's breaches

// The API's report has no breaches by deadline: counted here over the cases received in the month.
async function breachesOf(site, month) {
  const { items, complete } = await api.all("/tickets", { site }, BREACH_PAGES);
  const counts = {};
  let seen = 0;
  for (const ticket of items) {
    if (!ticket.received_at) continue;
    const received = monthOf(new Date(ticket.received_at));
    if (received !== month) continue;
    seen += 1;
    for (const b of ticket.breaches || []) counts[b.deadline] = (counts[b.deadline] || 0) + 1;
  }
  return { counts, complete, seen };
}

async function download(site, month, button) {
  button.disabled = true;
  try {
    const text = await api.call(`/sites/${site}/kpis`, { query: { month }, accept: "text/csv" });
    const link = h("a", { href: URL.createObjectURL(new Blob([text], { type: "text/csv;charset=utf-8" })),
      download: `propdesk-kpis-${site}-${month}.csv` });
    document.body.append(link);
    link.click();
    setTimeout(() => { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
  } finally {
    button.disabled = false;
  }
}

export async function kpisView(root, ctx) {
  const monthInput = h("input", { type: "month", name: "month", id: "kpi-month", value: monthOf(api.now()) });
  const body = h("div", { id: "kpi-body" });
  const csv = h("button", { type: "button", class: "secondary", id: "kpi-csv",
    onclick: () => download(ctx.site, monthInput.value, csv).catch((err) => replace(body, problemBox(err))) }, t("kpi.csv"));

  const draw = async () => {
    const month = monthInput.value;
    if (!month) return;
    replace(body, h("p", { class: "muted" }, t("loading")));
    const months = monthsBefore(month, 6);
    let reports, breaches;
    try {
      [reports, breaches] = await Promise.all([
        Promise.all(months.map((m) => api.get(`/sites/${ctx.site}/kpis`, { month: m }))),
        breachesOf(ctx.site, month),
      ]);
    } catch (err) {
      if (!(err instanceof api.Problem)) throw err;
      replace(body, problemBox(err));
      return;
    }
    const report = reports[reports.length - 1];
    const tiles = RATES.map((key) => h("div", { class: "tile", dataset: { kpi: key } },
      h("span", { class: "label" }, name("kpi", key)),
      h("strong", {}, pct(report[key])),
      TARGETS[key] ? h("span", { class: "hint" }, t("kpi.target", { t: TARGETS[key] })) : null));
    tiles.push(h("div", { class: "tile", dataset: { kpi: "average_satisfaction" } },
      h("span", { class: "label" }, name("kpi", "average_satisfaction")),
      h("strong", {}, report.average_satisfaction == null ? "—" : `${report.average_satisfaction} / 5`)));
    const breachItems = Object.entries(breaches.counts).sort((a, b) => b[1] - a[1])
      .map(([dl, n]) => ({ label: name("deadline", dl), value: n }));
    replace(body,
      h("div", { class: "tiles received" },
        h("div", { class: "tile" }, h("span", { class: "label" }, t("kpi.households")), h("strong", {}, report.households ?? "—")),
        KIND_NAMES.map((k) => h("div", { class: "tile", dataset: { received: k } },
          h("span", { class: "label" }, `${t("kpi.received")} · ${name("kind", k)}`), h("strong", {}, report.received?.[k] ?? 0))),
        h("div", { class: "tile" }, h("span", { class: "label" }, t("kpi.finished")), h("strong", {}, report.finished ?? 0))),
      h("div", { class: "tiles" }, tiles),
      h("div", { class: "columns" },
        h("section", { class: "card" }, h("h2", {}, t("kpi.trend")),
          lineChart(TREND.map((key) => ({ label: name("kpi", key), values: reports.map((r) => r[key]) })),
            months.map((m) => m.slice(2)), { title: t("kpi.trend") })),
        h("section", { class: "card" }, h("h2", {}, t("kpi.breaches"),
          breaches.complete ? "" : h("span", { class: "muted" }, " ", t("kpi.partial", { n: breaches.seen }))),
        breachItems.length ? barChart(breachItems, { title: t("kpi.breaches") }) : h("p", { class: "muted" }, t("kpi.breaches_none")))));
  };
  monthInput.addEventListener("change", draw);
  replace(root, h("div", { class: "toolbar" }, h("h1", {}, t("kpi.title"), " · ", ctx.site || ""),
    h("label", { class: "inline" }, t("kpi.month"), " ", monthInput), csv), body);
  if (ctx.site) await draw();
  return null;
}
