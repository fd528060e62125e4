// A case page: status, deadlines, breaches, history, callback record, and the actions the API
// allows this user now (`allowed_actions`) as buttons; a 409 or 403 is shown in its own words.
import * as api from "../api.js";
import { badgeEl, field, flash, h, problemBox, replace, statusEl, submitting, when, zonedIso } from "../dom.js";
import { name, t } from "../i18n.js";

// The body of each action (ticketing's ACTION_SCHEMAS): [field, type, label].
const ZH = { assignee: "处理人（工号）", start: "开始", end: "结束", result: "处理结果", materials: "用料（逗号分隔）",
  signed_off: "客户已签认", fee: "费用（元）", reached: "已联系上", satisfaction: "满意度（1–5）", comment: "备注",
  reason: "原因", note: "备注", valid: "有效投诉", answer: "答复内容", until: "延至", approved: "批准",
  compensation: "赔偿金额（元）", message: "回复内容", handler: "处理人（工号）", adopted: "采纳",
  committee_consulted: "已征询业委会", missed: "上次预约未履约" };
export const ACTION_FIELDS = {
  dispatch: [["assignee", "text"], ["appointment.start", "datetime"], ["appointment.end", "datetime"]],
  reschedule: [["appointment.start", "datetime"], ["appointment.end", "datetime"], ["missed", "bool"], ["reason", "text"]],
  arrive: [],
  complete: [["result", "textarea"], ["materials", "list"], ["signed_off", "bool"], ["fee", "text"]],
  "record-callback": [["reached", "reached"], ["satisfaction", "stars"], ["comment", "textarea"]],
  close: [], cancel: [["reason", "text"]], acknowledge: [["note", "text"]], route: [["assignee", "text"]],
  assess: [["valid", "bool"], ["reason", "text"]], answer: [["answer", "textarea"]],
  "request-extension": [["until", "datetime"], ["reason", "text"]], "approve-extension": [["approved", "bool"], ["note", "text"]],
  resolve: [["result", "textarea"], ["compensation", "text"]], reply: [["message", "textarea"]],
  forward: [["handler", "text"]], decide: [["adopted", "bool"], ["reason", "text"], ["committee_consulted", "bool"]],
  reopen: [["reason", "text"]],
};
const label = (f) => (document.documentElement.lang === "en" ? f.split(".").pop().replace(/_/g, " ") : ZH[f.split(".").pop()] || f);

function control(fieldName, type) {
  const id = `a-${fieldName.replace(".", "-")}`;
  if (type === "textarea") return h("textarea", { name: fieldName, id, rows: 2 });
  if (type === "bool") return h("input", { type: "checkbox", name: fieldName, id, checked: fieldName === "approved" || fieldName === "valid" });
  if (type === "datetime") return h("input", { type: "datetime-local", name: fieldName, id });
  if (type === "reached") {
    return h("span", { class: "segmented small" },
      h("label", {}, h("input", { type: "radio", name: "reached", value: "true", checked: true }), h("span", {}, t("cb.yes"))),
      h("label", {}, h("input", { type: "radio", name: "reached", value: "false" }), h("span", {}, t("cb.no"))));
  }
  if (type === "stars") {
    return h("span", { class: "segmented small stars" }, [1, 2, 3, 4, 5].map((n) =>
      h("label", {}, h("input", { type: "radio", name: "satisfaction", value: String(n) }), h("span", {}, `${n}★`))));
  }
  return h("input", { name: fieldName, id, autocomplete: "off" });
}

// The filled-in fields as the action's JSON body.
export function actionBody(form, action) {
  const body = {};
  for (const [fieldName, type] of ACTION_FIELDS[action] || []) {
    const els = form.querySelectorAll(`[name="${fieldName}"]`);
    let value;
    if (type === "bool") value = els[0].checked;
    else if (type === "reached") value = form.querySelector("[name=reached]:checked")?.value === "true";
    else if (type === "stars") {
      const picked = form.querySelector("[name=satisfaction]:checked");
      value = picked ? Number(picked.value) : null;
      if (value === null) continue;
    } else {
      const raw = els[0].value.trim();
      if (!raw) continue;
      value = type === "datetime" ? zonedIso(raw) : type === "list" ? raw.split(/[,，、]/).map((s) => s.trim()).filter(Boolean) : raw;
    }
    const [head, sub] = fieldName.split(".");
    if (sub) body[head] = { ...(body[head] || {}), [sub]: value };
    else body[head] = value;
  }
  return body;
}

// A form for one action on one ticket; `done(ticket)` after the API took it.
export function actionForm(ticket, action, { done, onProblem }) {
  const fields = ACTION_FIELDS[action] || [];
  const problemSlot = h("div");
  const form = h("form", { class: "action-form", dataset: { action }, novalidate: true },
  h("div", { class: "grid" }, fields.map(([f, type]) => field(label(f), control(f, type), { name: f }))),
  problemSlot,
  h("div", { class: "actions" },
    h("button", { type: "submit", dataset: { submit: action } }, name("action", action))));
  form.addEventListener("submit", submitting(form, problemSlot, async () => {
    const updated = await api.post(`/tickets/${ticket.id}/${action}`, actionBody(form, action));
    flash(t("ticket.done", { action: name("action", action) }) + ` · ${updated.code}`);
    await done(updated);
  }, { onProblem }));
  return form;
}

function section(title, ...content) {
  return h("section", { class: "card" }, h("h2", {}, title), ...content);
}

function callbackRecord(record) {
  if (!record) return h("p", { class: "muted" }, t("ticket.none"));
  return h("dl", { class: "facts" },
    h("dt", {}, t("cb.reached")), h("dd", {}, record.reached ? t("cb.yes") : t("cb.no")),
    record.satisfaction != null ? [h("dt", {}, t("cb.satisfaction")), h("dd", { class: "stars" }, "★".repeat(record.satisfaction), ` ${record.satisfaction}/5`)] : null,
    record.comment ? [h("dt", {}, t("cb.comment")), h("dd", {}, record.comment)] : null,
    record.at || record.recorded_at ? [h("dt", {}, ""), h("dd", { class: "muted" }, when(record.at || record.recorded_at), " ", record.by || "")] : null);
}

export async function ticketView(root, ctx) {
  const id = ctx.arg;
  let ticket = await api.get(`/tickets/${encodeURIComponent(id)}`);
  const banner = h("div", { id: "ticket-problem" });
  const page = h("div");
  let open = null;   // the action whose form is shown

  const draw = () => {
    const now = api.now();
    const met = ticket.deadlines_met || {};
    const actionArea = h("div", { class: "action-area" });
    const buttons = (ticket.allowed_actions || []).map((action) => h("button", {
      type: "button", class: open === action ? "" : "secondary", dataset: { action },
      onclick: async () => {
        replace(banner);
        if (!(ACTION_FIELDS[action] || []).length) {   // nothing to fill in: take the step at once
          try {
            const updated = await api.post(`/tickets/${ticket.id}/${action}`, {});
            flash(t("ticket.done", { action: name("action", action) }) + ` · ${updated.code}`);
            await refresh(updated);
          } catch (err) {
            if (!(err instanceof api.Problem)) throw err;
            await showProblem(err);
          }
          return;
        }
        open = open === action ? null : action;
        draw();
      },
    }, name("action", action)));
    if (open && (ticket.allowed_actions || []).includes(open)) {
      replace(actionArea, actionForm(ticket, open, { done: refresh, onProblem: showProblem }));
    }
    replace(page,
      h("div", { class: "toolbar" },
        h("a", { href: "#/handover", class: "back" }, "← ", t("ticket.back")),
        h("h1", { id: "ticket-code" }, ticket.code), statusEl(ticket), badgeEl(ticket, now),
        h("span", { class: "tag" }, name("kind", ticket.kind)),
        ticket.priority === "urgent" ? h("span", { class: "tag tag-urgent" }, name("priority", "urgent")) : null,
        ticket.escalated ? h("span", { class: "tag tag-breach" }, t("ticket.escalated")) : null),
      banner,
      h("section", { class: "card", id: "ticket-actions" }, h("h2", {}, t("ticket.actions")),
        buttons.length ? h("div", { class: "buttons" }, buttons) : h("p", { class: "muted" }, t("ticket.no_actions")),
        actionArea),
      h("div", { class: "columns" },
        section(t("ticket.title"), h("dl", { class: "facts" },
          h("dt", {}, t("unit")), h("dd", {}, ticket.unit || "—"),
          h("dt", {}, t("description")), h("dd", {}, ticket.description),
          h("dt", {}, t("ticket.reporter")), h("dd", {}, ticket.reporter ? `${ticket.reporter.name || ""} ${ticket.reporter.phone || ""}` : "—"),
          h("dt", {}, t("field.channel")), h("dd", {}, name("channel", ticket.channel)),
          h("dt", {}, t("ticket.received_at")), h("dd", {}, when(ticket.received_at), ticket.late_entry ? h("span", { class: "tag tag-breach" }, t("ticket.late_entry")) : null),
          h("dt", {}, t("first_contact_owner")), h("dd", {}, ticket.first_contact_owner),
          h("dt", {}, t("assignee")), h("dd", { id: "ticket-assignee" }, ticket.assignee || "—"),
          ticket.kind === "repair" ? [h("dt", {}, t("field.scope")), h("dd", {}, name("scope", ticket.scope), ticket.fee ? ` ¥${ticket.fee}` : "")] : null,
          ticket.appointment ? [h("dt", {}, t("field.appointment")), h("dd", {}, `${when(ticket.appointment.start)} – ${when(ticket.appointment.end)}`)] : null,
          ticket.severity ? [h("dt", {}, t("field.severity")), h("dd", {}, name("severity", ticket.severity), " ", name("category", ticket.category))] : null,
          ticket.result ? [h("dt", {}, t("ticket.result")), h("dd", {}, ticket.result.result || JSON.stringify(ticket.result))] : null)),
        section(t("ticket.deadlines"), Object.keys(ticket.deadlines || {}).length ? h("table", { class: "mini", id: "ticket-deadlines" },
          h("tbody", {}, Object.entries(ticket.deadlines).map(([dl, due]) => h("tr", { dataset: { deadline: dl } },
            h("th", {}, name("deadline", dl)), h("td", {}, when(due)),
            h("td", {}, dl in met ? h("span", { class: "muted" }, t("ticket.met", { at: when(met[dl]) })) : badgeEl(ticket, now, dl)))))) :
          h("p", { class: "muted" }, t("ticket.none"))),
        section(t("ticket.breaches"), ticket.breaches?.length ? h("ul", { class: "breaches", id: "ticket-breaches" }, ticket.breaches.map((b) =>
          h("li", {}, h("strong", {}, name("deadline", b.deadline)), ` ${t("ticket.due")} ${when(b.due_at)} · `, t("ticket.detected", { at: when(b.detected_at) })))) :
          h("p", { class: "muted" }, t("ticket.none"))),
        section(t("ticket.callback"), h("div", { id: "ticket-callback" }, callbackRecord(ticket.callback)),
          ticket.second_callback ? [h("h3", {}, t("ticket.second_callback")), callbackRecord(ticket.second_callback)] : null)),
      section(t("ticket.history"), h("ol", { class: "history", id: "ticket-history" }, (ticket.history || []).map((entry) =>
        h("li", { dataset: { action: entry.action } },
          h("time", {}, when(entry.at, { seconds: true })), " ",
          h("strong", {}, name("action", entry.action)), " ",
          h("span", { class: "muted" }, `${entry.by} (${name("role", entry.role)})`),
          entry.note ? h("span", { class: "note" }, " — ", entry.note) : null)))));
  };
  const refresh = async (updated) => {
    ticket = updated || await api.get(`/tickets/${encodeURIComponent(id)}`);
    open = null;
    draw();
  };
  // 409 (someone moved the case on) or 403 (not this role): the API's own words, then the case
  // as it is now, with the actions it allows now.
  const showProblem = async (err) => {
    const box = problemBox(err);
    try { ticket = await api.get(`/tickets/${encodeURIComponent(id)}`); } catch (_) { /* keep what we had */ }
    open = null;
    draw();
    replace(banner, box);
  };
  draw();
  replace(root, page);
  const ticker = setInterval(() => { if (!open) draw(); }, 15000);
  return () => clearInterval(ticker);
}
