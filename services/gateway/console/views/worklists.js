// 回访工作单 (tickets awaiting a callback, by due time) and 超时清单 (past their next deadline),
// each row with the callback form where the API allows a callback now.
import * as api from "../api.js";
import { h, problemBox, replace } from "../dom.js";
import { t } from "../i18n.js";
import { ticketRows, ticketTable } from "./handover.js";
import { actionForm } from "./ticket.js";

function callbackCell(ticket, redraw) {
  if (!(ticket.allowed_actions || []).includes("record-callback")) return null;
  return h("button", { type: "button", class: "secondary", dataset: { callback: ticket.id }, onclick: (e) => {
    const row = e.target.closest("tr");
    const next = row.nextElementSibling;
    if (next && next.classList.contains("form-row")) { next.remove(); return; }
    const form = actionForm(ticket, "record-callback", { done: redraw });
    form.classList.add("callback-form");
    row.after(h("tr", { class: "form-row" }, h("td", { colspan: 9 }, form)));
  } }, t("cb.record"));
}

async function worklist(root, ctx, { title, empty, load, id }) {
  const body = h("div", { id });
  const redraw = async () => {
    let items;
    try {
      ({ items } = await load());
    } catch (err) {
      if (!(err instanceof api.Problem)) throw err;
      replace(body, problemBox(err));
      return;
    }
    const now = api.now();
    replace(body, items.length
      ? ticketTable(ticketRows(items, now, { extra: (tk) => callbackCell(tk, redraw) }), { extraHead: true })
      : h("p", { class: "empty" }, empty));
    return items;
  };
  replace(root, h("div", { class: "toolbar" }, h("h1", {}, title, " · ", ctx.site || ""),
    h("button", { type: "button", class: "secondary", onclick: redraw }, t("refresh"))), body);
  if (ctx.site) await redraw();
  return null;
}

export function callbacksView(root, ctx) {
  return worklist(root, ctx, {
    id: "callback-list", title: t("cb.title"), empty: t("cb.empty"),
    load: () => api.all(`/sites/${ctx.site}/callbacks`, {}, 5),
  });
}

export function overdueView(root, ctx) {
  return worklist(root, ctx, {
    id: "overdue-list", title: t("overdue.title"), empty: t("overdue.empty"),
    load: () => api.all("/tickets", { site: ctx.site, overdue: "true" }, 5),
  });
}
