// Small DOM helpers: elements built from data (never HTML strings), times in the site's zone,
// forms read into the API's JSON, and the API's problems shown where they belong.
import { locale, name, t } from "./i18n.js";
import { badge as slaBadge, duration } from "./sla.js";

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// --- time -----------------------------------------------------------------------------

export let siteZone = "Asia/Shanghai";
export function setSiteZone(zone) { siteZone = zone || "Asia/Shanghai"; }

export function when(value, { seconds = false } = {}) {
  if (!value) return "";
  const date = value instanceof Date ? value : new Date(value);
  return new Intl.DateTimeFormat(locale(), {
    timeZone: siteZone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
    minute: "2-digit", second: seconds ? "2-digit" : undefined, hourCycle: "h23",
  }).format(date);
}

function zoneOffsetMs(utcMs, zone) {
  const parts = Object.fromEntries(new Intl.DateTimeFormat("en-US", {
    timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).formatToParts(new Date(utcMs)).map((p) => [p.type, p.value]));
  const asUtc = Date.UTC(+parts.year, +parts.month - 1, +parts.day, +parts.hour % 24, +parts.minute, +parts.second);
  return asUtc - Math.floor(utcMs / 1000) * 1000;
}

// A <input type="datetime-local"> value, read as wall time in the site's zone → ISO 8601 with offset.
export function zonedIso(local, zone = siteZone) {
  if (!local) return null;
  const [d, time] = local.split("T");
  const [y, mo, da] = d.split("-").map(Number);
  const [hh, mm, ss = 0] = time.split(":").map(Number);
  const wall = Date.UTC(y, mo - 1, da, hh, mm, ss);
  let offset = zoneOffsetMs(wall, zone);
  offset = zoneOffsetMs(wall - offset, zone);
  const sign = offset >= 0 ? "+" : "-";
  const abs = Math.abs(offset) / 60000;
  const pad = (n) => String(n).padStart(2, "0");
  return `${d}T${pad(hh)}:${pad(mm)}:${pad(ss)}${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

// This month (YYYY-MM) in the site's zone, and the n months before it.
export function monthOf(date, zone = siteZone) {
  const parts = Object.fromEntries(new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit" })
    .formatToParts(date).map((p) => [p.type, p.value]));
  return `${parts.year}-${parts.month}`;
}

export function monthsBefore(month, n) {
  const [y, m] = month.split("-").map(Number);
  const out = [];
  for (let i = n - 1; i >= 0; i--) {
    const total = y * 12 + (m - 1) - i;
    out.push(`${Math.floor(total / 12)}-${String((total % 12) + 1).padStart(2, "0")}`);
  }
  return out;
}

// --- badges -----------------------------------------------------------------------------

export function badgeEl(ticket, now, which = null) {
  const b = slaBadge(ticket, now, which);
  const text = t(`badge.${b.level}`);
  const rel = b.level === "none" ? "" : b.ms < 0 ? t("over", { d: duration(b.ms) }) : t("left", { d: duration(b.ms) });
  return h("span", { class: `badge badge-${b.level}`, dataset: { badge: b.level }, title: rel }, text);
}

export function deadlineCell(ticket, now) {
  const b = slaBadge(ticket, now);
  if (b.level === "none") return h("span", { class: "muted" }, "—");
  return h("span", { class: "deadline" },
    h("strong", {}, name("deadline", b.deadline)), " ", when(b.due), " ",
    h("span", { class: `rel rel-${b.level}` }, b.ms < 0 ? t("over", { d: duration(b.ms) }) : t("left", { d: duration(b.ms) })));
}

export function statusEl(ticket) {
  return h("span", { class: `status status-${ticket.status}` }, name("status", ticket.status));
}

// --- forms and problems -----------------------------------------------------------------

export function field(label, control, { name: fieldName, hint, wide } = {}) {
  return h("label", { class: "field" + (wide ? " wide" : ""), dataset: { field: fieldName || control.name } },
    h("span", { class: "label" }, label), control,
    hint ? h("span", { class: "hint" }, hint) : null,
    h("span", { class: "field-error", role: "alert" }));
}

export function select(fieldName, options, { value, blank } = {}) {
  return h("select", { name: fieldName },
    blank !== undefined ? h("option", { value: "" }, blank) : null,
    options.map(([v, label]) => h("option", { value: v, selected: v === value }, label)));
}

// {field path: [messages]} from the API's nested `errors` (appointment.end, items.0.fee, …).
export function flatErrors(errors, prefix = "") {
  const out = {};
  for (const [k, v] of Object.entries(errors || {})) {
    const path = prefix ? `${prefix}.${k}` : k;
    if (Array.isArray(v) && v.every((m) => typeof m === "string")) out[path] = v;
    else if (v && typeof v === "object") Object.assign(out, flatErrors(v, path));
    else out[path] = [String(v)];
  }
  return out;
}

// Shows each error beside the field it names (or its parent: appointment for appointment.end);
// answers the errors no field on the form took.
export function showFieldErrors(form, errors) {
  clearFieldErrors(form);
  const left = {};
  for (const [path, messages] of Object.entries(flatErrors(errors))) {
    const parts = path.split(".");
    let slot = null;
    for (let i = parts.length; i > 0 && !slot; i--) {
      slot = form.querySelector(`[data-field="${CSS.escape(parts.slice(0, i).join("."))}"]`);
    }
    if (!slot) { left[path] = messages; continue; }
    slot.classList.add("invalid");
    const box = slot.querySelector(".field-error");
    box.textContent = [box.textContent, ...messages].filter(Boolean).join(" ");
  }
  return left;
}

export function clearFieldErrors(form) {
  form.querySelectorAll(".invalid").forEach((el) => el.classList.remove("invalid"));
  form.querySelectorAll(".field-error").forEach((el) => { el.textContent = ""; });
}

// A problem as the API worded it: its detail, and allowed actions where a 409 names them.
export function problemBox(problem, extra = {}) {
  const doc = problem.doc || {};
  const detail = problem.status === 0 ? t("error.network", { detail: doc.detail }) : (doc.detail || doc.title || problem.message);
  const allowed = doc.allowed_actions;
  return h("div", { class: "problem", role: "alert", dataset: { status: String(problem.status) }, ...extra },
    h("strong", {}, problem.status ? `${problem.status} ${doc.title || ""}` : t("error.title")),
    h("span", { class: "problem-detail" }, detail),
    Array.isArray(allowed) ? h("span", { class: "muted" }, " → ", allowed.map((a) => name("action", a)).join("、") || t("ticket.none")) : null);
}

export function flash(message, kind = "ok") {
  const el = document.getElementById("flash");
  el.textContent = message;
  el.className = `flash flash-${kind}`;
  el.hidden = false;
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => { el.hidden = true; }, 6000);
}

export function pct(value, digits = 1) {
  if (value === null || value === undefined) return "—";
  return `${(value * 100).toFixed(digits)}%`;
}

// A form's submit: errors cleared, the button held while `work()` calls the API; a 422 beside
// the fields it names (and the rest listed), any other problem in its own words (`onProblem`
// takes it instead where given).
export function submitting(form, problemSlot, work, { onProblem } = {}) {
  return async (event) => {
    event.preventDefault();
    clearFieldErrors(form);
    replace(problemSlot);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await work();
    } catch (err) {
      if (!err || err.doc === undefined) throw err;
      if (err.status === 422 && err.errors) {
        const left = showFieldErrors(form, err.errors);
        replace(problemSlot, h("div", { class: "problem", role: "alert", dataset: { status: "422" } },
          h("strong", {}, t("error.fields")), " ",
          Object.entries(left).map(([k, m]) => `${k}: ${m.join(" ")}`).join("；")));
      } else if (onProblem) {
        await onProblem(err);
      } else {
        replace(problemSlot, problemBox(err));
      }
    } finally {
      button.disabled = false;
    }
  };
}
