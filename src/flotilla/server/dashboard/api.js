// Calls to the Flotilla API with the viewer's token. A 401 anywhere means the token is
// missing, wrong or expired: the page is told once (onAuthLost) and shows the login.

const KEY = "flotilla.token";

export class ApiError extends Error {
  constructor(status, message, path) {
    super(message);
    this.status = status;
    this.path = path;
  }

  get line() {
    return this.status ? `${this.status}: ${this.message}` : this.message;
  }
}

let lost = () => {};

export function onAuthLost(handler) {
  lost = handler;
}

export function token() {
  return sessionStorage.getItem(KEY) ?? "";
}

export function setToken(value) {
  if (value) sessionStorage.setItem(KEY, value);
  else sessionStorage.removeItem(KEY);
}

// The token's claims, for display only (expiry, who): the server verifies it.
export function claims(jwt = token()) {
  try {
    const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")));
  } catch {
    return null;
  }
}

export function url(path, query = {}, scheme = location.protocol) {
  const out = new URL(path, location.href);
  out.protocol = scheme;
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") out.searchParams.set(key, value);
  }
  return out.toString();
}

function describe(text, fallback) {
  try {
    const body = JSON.parse(text);
    if (typeof body.error === "string") return body.error;
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail)) {
      return body.detail.map((d) => `${(d.loc ?? []).join(".")}: ${d.msg}`).join("; ");
    }
  } catch {
    // not JSON: the text itself says what went wrong
  }
  return text || fallback;
}

// `quiet`: a 401 is only thrown, not reported to onAuthLost (the caller handles it).
export async function api(method, path, { query, body, text = false, quiet = false } = {}) {
  const headers = {};
  const jwt = token();
  if (jwt) headers.Authorization = `Bearer ${jwt}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url(path, query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiError(0, `the service is unreachable (${err.message})`, path);
  }
  if (!response.ok) {
    const error = new ApiError(
      response.status,
      describe(await response.text(), response.statusText),
      path,
    );
    if (response.status === 401 && !quiet) lost(error);
    throw error;
  }
  return text ? response.text() : response.json();
}
