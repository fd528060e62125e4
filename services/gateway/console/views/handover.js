// 交接班: every open case of the site, most urgent first (the API's order), with its next
// deadline and badge; filtered by kind and status here, refreshed on its own.
import * as api from "../api.js";
import { badgeEl, deadlineCell, h, problemBox, replace, select, statusEl, when } from "../dom.js";
import { KIND_NAMES, name, STATUSES, t } from "../i18n.js";
import { badge, LEVELS } from "../sla.js";

export const REFRESH_SECONDS = 30;
const TICK_SECONDS = 5;
const FILTER_KEY = "propdesk.console.handover";

export function ticketRows(tickets, now, { extra } = {}) {
  return tickets.map((ticket) => h("tr", { dataset: { ticketId: ticket.id, code: ticket.code, badge: badge(ticket, now).level } },
    h("td", { "data-label": t("status") }, badgeEl(ticket, now)),
    h("td", { "data-label": t("code") }, h("a", { href: `#/ticket/${ticket.id}`, class: "code" }, ticket.code),
      ticket.priority === "urgent" ? h("span", { class: "tag tag-urgent" }, name("priority", "urgent")) : null),
    h("td", { "data-label": t("kind") }, name("kind", ticket.kind), ticket.severity ? ` ${ticket.severity}` : ""),
    h("td", { "data-label": t("status") }, statusEl(ticket)),
    h("td", { "data-label": t("unit") }, ticket.unit || "—"),
    h("td", { "data-label": t("description"), class: "desc" }, ticket.description),
    h("td", { "data-label": t("next_deadline") }, deadlineCell(ticket, now),
      ticket.breaches?.length ? h("span", { class: "tag tag-breach" }, t("breached_before", { n: ticket.breaches.length })) : null),
    h("td", { "data-label": t("assignee") }, ticket.assignee || h("span", { class: "muted" }, ticket.first_contact_owner)),
    extra ? h("td", { "data-label": "" }, extra(ticket)) : null));
}

export function ticketTable(rows, { extraHead = false } = {}) {
  return h("table", { class: "tickets" },
    h("thead", {}, h("tr", {},
      [t("status"), t("code"), t("kind"), t("status"), t("unit"), t("description"), t("next_deadline"), t("assignee")]
        .map((label, i) => h("th", { scope: "col" }, i === 0 ? "" : label)),
      extraHead ? h("th", {}) : null)),
    h("tbody", {}, rows));
}

export async function handoverView(root, ctx) {
  const saved = JSON.parse(sessionStorage.getItem(FILTER_KEY) || "{}");
  const kind = select("kind", KIND_NAMES.map((k) => [k, name("kind", k)]), { value: saved.kind, blank: t("all") });
  const status = h("select", { name: "status" });
  const fillStatuses = () => {
    const wanted = kind.value ? STATUSES[kind.value] : [...new Set(Object.values(STATUSES).flat())];
    const keep = status.value || saved.status;
    replace(status, h("option", { value: "" }, t("all")),
      wanted.map((s) => h("option", { value: s, selected: s === keep }, name("status", s))));
  };
  fillStatuses();
  const stamp = h("span", { class: "muted", id: "refreshed" });
  const summary = h("div", { class: "summary", id: "summary" });
  const body = h("div", { id: "handover-list" });
  let tickets = [];
  let complete = true;
  let problem = null;

  const draw = () => {
    const now = api.now();
    sessionStorage.setItem(FILTER_KEY, JSON.stringify({ kind: kind.value, status: status.value }));
    if (problem) { replace(body, problemBox(problem)); return; }
    const shown = tickets.filter((tk) => (!kind.value || tk.kind === kind.value) && (!status.value || tk.status === status.value));
    const counts = Object.fromEntries(LEVELS.map((l) => [l, 0]));
    shown.forEach((tk) => { counts[badge(tk, now).level] += 1; });
    replace(summary, LEVELS.map((l) => h("span", { class: `badge badge-${l}`, dataset: { count: l } }, `${t(`badge.${l}`)} ${counts[l]}`)));
    replace(body, shown.length ? ticketTable(ticketRows(shown, now)) : h("p", { class: "empty" }, t("handover.empty")),
      complete ? null : h("p", { class: "muted" }, t("handover.truncated", { n: tickets.length })));
  };
  const load = async () => {
    try {
      ({ items: tickets, complete } = await api.all(`/sites/${ctx.site}/handover`, {}, 5));
      problem = null;
    } catch (err) {
      if (!(err instanceof api.Problem)) throw err;
      problem = err;
    }
    stamp.textContent = t("auto_refresh", { s: REFRESH_SECONDS, at: when(api.now(), { seconds: true }) });
    draw();
  };
  kind.addEventListener("change", () => { fillStatuses(); draw(); });
  status.addEventListener("change", draw);

  replace(root,
    h("div", { class: "toolbar" },
      h("h1", {}, t("handover.title"), " · ", ctx.site || ""),
      h("label", { class: "inline" }, t("kind"), " ", kind),
      h("label", { class: "inline" }, t("status"), " ", status),
      h("button", { type: "button", class: "secondary", id: "refresh", onclick: load }, t("refresh")),
      stamp),
    summary, body);
  if (!ctx.site) return null;
  await load();
  const refresher = setInterval(load, REFRESH_SECONDS * 1000);
  const ticker = setInterval(draw, TICK_SECONDS * 1000);
  return () => { clearInterval(refresher); clearInterval(ticker); };
}
