// 受理登记: one form for repairs, complaints, inquiries and suggestions (SPEC §2), the unit looked
// up by code (owner and masked phone, as the API gives them), the API's 422 beside each field.
import * as api from "../api.js";
import { field, flash, h, problemBox, replace, select, submitting, zonedIso } from "../dom.js";
import { KIND_NAMES, name, t } from "../i18n.js";

const CHANNELS = ["front_desk", "phone", "web", "app", "email", "letter"];
const input = (fieldName, attrs = {}) => h("input", { name: fieldName, id: `f-${fieldName.replace(".", "-")}`, ...attrs });
const options = (group, values) => values.map((v) => [v, name(group, v)]);

// The fields of each kind beyond the common ones: [field name, control, label key, hint].
function kindFields(kind) {
  if (kind === "repair") {
    return [
      field(t("field.scope"), select("scope", options("scope", ["common_area", "in_home"]), { value: "common_area" })),
      field(t("field.priority"), select("priority", options("priority", ["normal", "urgent"]), { value: "normal" })),
      h("fieldset", { class: "field group", dataset: { field: "appointment" } },
        h("legend", { class: "label" }, t("field.appointment")),
        field(t("field.start"), input("appointment.start", { type: "datetime-local" }), { name: "appointment.start" }),
        field(t("field.end"), input("appointment.end", { type: "datetime-local" }), { name: "appointment.end" }),
        h("span", { class: "field-error", role: "alert" })),
      field(t("field.fee"), input("fee", { inputmode: "decimal", placeholder: "120.00" })),
      field(t("field.important"), input("important", { type: "checkbox" })),
    ];
  }
  if (kind === "complaint") {
    return [
      field(t("field.severity"), select("severity", options("severity", ["A", "B", "C"]), { blank: "—" })),
      field(t("field.category"), select("category", options("category", ["KF", "ZX", "GC", "BJ", "YY", "QT"]), { blank: "—" })),
      field(t("field.complainants"), input("complainants", { type: "number", min: 1, value: 1 })),
      field(t("field.requested_deadline"), input("requested_deadline", { type: "datetime-local" })),
    ];
  }
  if (kind === "inquiry") return [field(t("field.reply_by"), input("reply_by", { type: "datetime-local" }))];
  return [];
}

// The form as the API's JSON: only what was filled in, instants with the site's offset.
function payload(form, kind, site) {
  const v = (n) => form.elements.namedItem(n);
  const text = (n) => (v(n) && v(n).value.trim()) || null;
  const body = { kind, site, channel: text("channel"), description: v("description").value.trim() };
  const unit = text("unit");
  if (unit) body.unit = unit;
  const received = zonedIso(text("received_at"));
  if (received) body.received_at = received;
  const reporter = { name: text("reporter.name"), phone: text("reporter.phone") };
  if (reporter.name || reporter.phone) body.reporter = reporter;
  if (kind === "repair") {
    body.scope = text("scope");
    body.priority = text("priority");
    body.important = v("important").checked;
    if (text("fee")) body.fee = text("fee");
    const start = zonedIso(text("appointment.start")), end = zonedIso(text("appointment.end"));
    if (start || end) body.appointment = { start, end };
  } else if (kind === "complaint") {
    if (text("severity")) body.severity = text("severity");
    body.category = text("category");
    body.complainants = Number(text("complainants") || 1);
    const deadline = zonedIso(text("requested_deadline"));
    if (deadline) body.requested_deadline = deadline;
  } else if (kind === "inquiry") {
    const replyBy = zonedIso(text("reply_by"));
    if (replyBy) body.reply_by = replyBy;
  }
  return body;
}

export async function intakeView(root, ctx) {
  let kind = "repair";
  const unitInfo = h("div", { class: "unit-info", id: "unit-info", "aria-live": "polite" });
  const unit = input("unit", { inputmode: "numeric", maxlength: 10, placeholder: `${ctx.site || "001"}0101001`, autocomplete: "off" });
  const lookup = async () => {
    const code = unit.value.trim();
    replace(unitInfo);
    if (!code) return;
    try {
      const found = await api.get(`/units/${encodeURIComponent(code)}`);
      const owner = (found.people || []).find((p) => p.relation === "owner") || (found.people || [])[0];
      replace(unitInfo, h("span", { class: "ok", dataset: { phone: owner?.phone || "" } },
        owner ? t("intake.owner", { name: owner.name, phone: owner.phone || "—" }) : code,
        found.moved_in_on ? "" : ""));
    } catch (err) {
      if (!(err instanceof api.Problem)) throw err;
      replace(unitInfo, problemBox(err));
    }
  };
  unit.addEventListener("change", lookup);
  const extra = h("div", { class: "grid", id: "kind-fields" });
  const problemSlot = h("div");
  const kinds = h("div", { class: "segmented", role: "radiogroup" }, KIND_NAMES.map((k) =>
    h("label", {}, h("input", { type: "radio", name: "kind", value: k, checked: k === kind, onchange: () => {
      kind = k;
      replace(extra, kindFields(kind));
    } }), h("span", {}, name("kind", k)))));
  const form = h("form", { class: "card", id: "intake-form", novalidate: true },
  h("h1", {}, t("intake.title"), " · ", ctx.site || ""),
  h("div", { class: "field wide", dataset: { field: "kind" } }, kinds, h("span", { class: "field-error", role: "alert" })),
  h("div", { class: "grid" },
    h("div", { class: "field", dataset: { field: "unit" } },
      h("label", { class: "label", for: "f-unit" }, t("unit")),
      h("div", { class: "with-button" }, unit, h("button", { type: "button", class: "secondary", id: "lookup", onclick: lookup }, t("intake.lookup"))),
      h("span", { class: "hint" }, t("intake.unit_hint")), unitInfo,
      h("span", { class: "field-error", role: "alert" })),
    field(t("field.channel"), select("channel", options("channel", CHANNELS), { value: "phone" })),
    field(t("field.received_at"), input("received_at", { type: "datetime-local" }), { hint: t("intake.received_at_hint") }),
    h("fieldset", { class: "field group", dataset: { field: "reporter" } },
      h("legend", { class: "label" }, t("intake.reporter")),
      field(t("intake.reporter_name"), input("reporter.name"), { name: "reporter.name" }),
      field(t("intake.reporter_phone"), input("reporter.phone", { inputmode: "tel" }), { name: "reporter.phone" }),
      h("span", { class: "field-error", role: "alert" })),
    field(t("description"), h("textarea", { name: "description", id: "f-description", rows: 4 }), { wide: true }),
    field(t("site"), h("input", { name: "site", value: ctx.site || "", readonly: true })),
  ),
  extra,
  problemSlot,
  h("div", { class: "actions" }, h("button", { type: "submit", id: "intake-submit" }, t("intake.submit"))));
  form.addEventListener("submit", submitting(form, problemSlot, async () => {
    const created = await api.post("/tickets", payload(form, kind, ctx.site));
    flash(t("intake.created", { code: created.code }));
    ctx.navigate(`#/ticket/${created.id}`);
  }));
  replace(extra, kindFields(kind));
  replace(root, form);
  return null;
}
