// A ticket's next deadline and its badge: on time, due within the warning lead, or breached.
import { t } from "./i18n.js";

export const HOUR = 3600 * 1000;
export const MINUTE = 60 * 1000;

// The warning lead: one hour before a deadline, one minute before the 3-minute dispatch of an
// urgent repair (三分钟服务承诺), where an hour would make every such repair "due soon" at once.
export function warningLead(ticket, deadline) {
  return deadline === "dispatch" && ticket.priority === "urgent" ? MINUTE : HOUR;
}

// {name, due: Date} of the earliest deadline not yet met, or null. A dropped (cancelled or
// invalid) or closed ticket has nothing left to meet here; `next_due_at` is the API's own.
export function nextDeadline(ticket) {
  const met = ticket.deadlines_met || {};
  let next = null;
  for (const [name, at] of Object.entries(ticket.deadlines || {})) {
    if (name in met) continue;
    const due = new Date(at);
    if (!next || due < next.due) next = { name, due };
  }
  if (!next && ticket.next_due_at) next = { name: "", due: new Date(ticket.next_due_at) };
  return next;
}

// {level: breached | soon | ok | none, deadline, due, ms (left, negative when over)}.
export function badge(ticket, now, which = null) {
  let next = nextDeadline(ticket);
  if (which) {
    const at = (ticket.deadlines || {})[which];
    next = at && !(which in (ticket.deadlines_met || {})) ? { name: which, due: new Date(at) } : null;
  }
  if (!next) return { level: "none" };
  const ms = next.due - now;
  const level = ms < 0 ? "breached" : ms <= warningLead(ticket, next.name) ? "soon" : "ok";
  return { level, deadline: next.name, due: next.due, ms };
}

export function duration(ms) {
  const s = Math.round(Math.abs(ms) / 1000);
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  const zh = t("badge.ok") === "正常";
  const [D, H, M, S] = zh ? ["天", "小时", "分", "秒"] : ["d", "h", "min", "s"];
  if (d) return `${d}${D}${h ? h + H : ""}`;
  if (h) return `${h}${H}${m ? m + M : ""}`;
  if (m) return `${m}${M}`;
  return `${s}${S}`;
}

export const LEVELS = ["breached", "soon", "ok", "none"];
