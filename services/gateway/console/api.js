// The console's only way to the data: /api/v1 with the signed-in user's bearer token.
const API = new URL("../api/v1", document.baseURI).pathname.replace(/\/$/, "");
const TOKEN_KEY = "propdesk.console.token";

// A problem document (RFC 9457) the API answered with, or one made up for a network failure.
export class Problem extends Error {
  constructor(status, doc) {
    super(doc.detail || doc.title || `HTTP ${status}`);
    this.status = status;
    this.doc = doc;
  }
  get errors() { return this.doc.errors || null; }
}

let skewMs = 0;   // server clock minus this browser's, from the Date header
export function now() { return new Date(Date.now() + skewMs); }

export function token() { return sessionStorage.getItem(TOKEN_KEY); }
export function setToken(value) { sessionStorage.setItem(TOKEN_KEY, value); }
export function clearToken() { sessionStorage.removeItem(TOKEN_KEY); }

// The claims of a JWT, read without checking the signature: what the console shows about the
// user. The API checks the token itself on every call (and the console calls it at sign-in).
export function claims(jwt) {
  const part = (jwt || "").split(".")[1];
  if (!part) return null;
  try {
    const text = atob(part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "="));
    const bytes = Uint8Array.from(text, (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (_) {
    return null;
  }
}

function idempotencyKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));   // also where randomUUID is not (plain http)
  return "console-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function url(path, query) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== "") params.set(k, v);
  }
  const qs = params.toString();
  return API + path + (qs ? "?" + qs : "");
}

const listeners = new Set();
export function onUnauthorized(fn) { listeners.add(fn); }

// GET or POST; answers the JSON (or the text for `accept: "text/csv"`), throws a Problem.
export async function call(path, { method = "GET", body, query, accept = "application/json", bearer } = {}) {
  const headers = { Accept: accept };
  const jwt = bearer || token();
  if (jwt) headers.Authorization = "Bearer " + jwt;
  const init = { method, headers, cache: "no-store" };
  if (method === "POST") {
    headers["Content-Type"] = "application/json";
    headers["Idempotency-Key"] = idempotencyKey();
    init.body = JSON.stringify(body || {});
  }
  let response;
  try {
    response = await fetch(url(path, query), init);
  } catch (err) {
    throw new Problem(0, { title: "network", detail: String(err.message || err) });
  }
  const date = response.headers.get("Date");
  if (date) {
    const server = Date.parse(date);
    if (!Number.isNaN(server) && Math.abs(server - Date.now()) > 5000) skewMs = server - Date.now();
    else skewMs = 0;
  }
  const type = response.headers.get("Content-Type") || "";
  if (!response.ok) {
    let doc;
    try {
      doc = type.includes("json") ? await response.json() : { detail: await response.text() };
    } catch (_) {
      doc = {};
    }
    const problem = new Problem(response.status, { status: response.status, ...doc });
    if (response.status === 401 && !bearer) listeners.forEach((fn) => fn(problem));
    throw problem;
  }
  if (accept !== "application/json") return response.text();
  return type.includes("json") ? response.json() : response.text();
}

export const get = (path, query) => call(path, { query });
export const post = (path, body) => call(path, { method: "POST", body });

// Every item of a cursor-paginated list, at most `pages` pages of `limit` (the API's cap is 200).
export async function all(path, query = {}, pages = 5, bearer = undefined) {
  const items = [];
  let cursor = null;
  for (let i = 0; i < pages; i++) {
    const page = await call(path, { query: { ...query, limit: query.limit || 200, cursor }, bearer });
    items.push(...page.items);
    cursor = page.next_cursor;
    if (!cursor) return { items, complete: true };
  }
  return { items, complete: false };
}
