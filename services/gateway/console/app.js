// The console's shell: sign-in with a bearer token, who you are, the site you work on, and the
// pages by URL fragment (#/handover, #/intake, #/ticket/<id>, #/callbacks, #/overdue, #/kpis).
import * as api from "./api.js";
import { flash, h, problemBox, replace, setSiteZone } from "./dom.js";
import { lang, name, setLang, t } from "./i18n.js";
import { handoverView } from "./views/handover.js";
import { intakeView } from "./views/intake.js";
import { kpisView } from "./views/kpis.js";
import { ticketView } from "./views/ticket.js";
import { callbacksView, overdueView } from "./views/worklists.js";

const SITE_KEY = "propdesk.console.site";
const main = document.getElementById("main");
const PAGES = [
  ["handover", handoverView], ["intake", intakeView], ["callbacks", callbacksView],
  ["overdue", overdueView], ["kpis", kpisView],
];

// What the views share: the user, the sites they may see, the one chosen.
const ctx = { user: null, sites: [], site: null, siteInfo: {} };
let cleanup = null;

function signedIn() { return ctx.user !== null; }

async function signIn(jwt) {
  const claims = api.claims(jwt);
  if (!claims || !claims.sub) throw new api.Problem(401, { title: "", detail: t("signin.bad") });
  // The API checks the token (signature, expiry, claims) and answers the sites it may see.
  let items = [];
  try {
    items = (await api.all("/sites", {}, 5, jwt)).items;
  } catch (err) {
    if (err.status === 401 || err.status === 0) throw err;   // a role that lists no sites still signs in
  }
  api.setToken(jwt);
  ctx.user = claims;
  const listed = items.map((s) => s.code);
  ctx.sites = (claims.sites || []).includes("*") ? listed : (claims.sites || []).filter(Boolean);
  for (const s of items) ctx.siteInfo[s.code] = s;
  const remembered = sessionStorage.getItem(SITE_KEY);
  ctx.site = ctx.sites.includes(remembered) ? remembered : ctx.sites[0] || null;
  setSiteZone(ctx.siteInfo[ctx.site]?.timezone);
}

function signOut(message) {
  api.clearToken();
  sessionStorage.removeItem(SITE_KEY);
  ctx.user = null;
  ctx.sites = [];
  ctx.site = null;
  location.hash = "#/signin";
  render().then(() => { if (message) flash(message, "warn"); });
}

api.onUnauthorized(() => { if (signedIn()) signOut(t("signin.expired")); });

function renderChrome() {
  const nav = document.getElementById("nav");
  const who = document.getElementById("who");
  document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  const langButton = document.getElementById("lang");
  langButton.textContent = lang === "en" ? "中文" : "EN";
  langButton.onclick = () => { setLang(lang === "en" ? "zh" : "en"); render(); };
  nav.hidden = who.hidden = !signedIn();
  if (!signedIn()) return;
  const current = route().page;
  replace(nav, PAGES.map(([page]) => h("a", {
    href: `#/${page}`, class: current === page ? "active" : null, dataset: { nav: page },
  }, t(`nav.${page}`))));
  const siteChooser = h("select", { id: "site", "aria-label": t("site"), onchange: (e) => {
    ctx.site = e.target.value;
    sessionStorage.setItem(SITE_KEY, ctx.site);
    setSiteZone(ctx.siteInfo[ctx.site]?.timezone);
    render();
  } }, ctx.sites.map((code) => h("option", { value: code, selected: code === ctx.site },
    ctx.siteInfo[code]?.name ? `${code} ${ctx.siteInfo[code].name}` : code)));
  replace(who,
    h("span", { class: "user", id: "whoami", dataset: { sub: ctx.user.sub, role: ctx.user.role } },
      h("strong", {}, ctx.user.sub), " · ", name("role", ctx.user.role),
      " · ", t("sites"), " ", (ctx.user.sites || []).join(", ")),
    ctx.sites.length ? siteChooser : null,
    h("button", { type: "button", class: "secondary", id: "signout", onclick: () => signOut() }, t("signout")));
}

function signInView() {
  const input = h("textarea", { name: "token", id: "token", rows: 4, required: true, spellcheck: "false",
    autocomplete: "off", placeholder: "eyJhbGciOiJIUzI1NiIs…" });
  const errorSlot = h("div");
  const form = h("form", { class: "card signin", id: "signin-form", onsubmit: async (e) => {
    e.preventDefault();
    replace(errorSlot);
    try {
      await signIn(input.value.trim());
      location.hash = "#/handover";
      await render();
    } catch (err) {
      replace(errorSlot, problemBox(err));
    }
  } },
  h("h1", {}, t("signin.title")),
  h("p", { class: "muted" }, t("signin.hint")),
  h("p", { class: "muted mono" }, ".venv/bin/propdesk-token --sub agent-li --role agent --sites 001"),
  h("label", { class: "field wide" }, h("span", { class: "label" }, t("signin.token")), input),
  errorSlot,
  h("button", { type: "submit", id: "signin-submit" }, t("signin.submit")));
  return form;
}

function route() {
  const parts = (location.hash.replace(/^#\/?/, "") || "handover").split("/");
  return { page: parts[0], arg: parts.slice(1).map(decodeURIComponent).join("/") };
}

async function render() {
  if (cleanup) { cleanup(); cleanup = null; }
  renderChrome();
  if (!signedIn()) {
    replace(main, signInView());
    return;
  }
  const { page, arg } = route();
  const view = page === "ticket" ? ticketView : (PAGES.find(([p]) => p === page) || PAGES[0])[1];
  const container = h("section", { class: "view", dataset: { view: page } }, h("p", { class: "muted" }, t("loading")));
  replace(main, container);
  try {
    cleanup = (await view(container, { ...ctx, arg, navigate, rerender: render })) || null;
  } catch (err) {
    if (!(err instanceof api.Problem)) throw err;
    replace(container, problemBox(err));
  }
}

function navigate(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

window.addEventListener("hashchange", render);

(async () => {
  const saved = api.token();
  if (saved) {
    try {
      await signIn(saved);
    } catch (_) {
      api.clearToken();
    }
  }
  await render();
})();
