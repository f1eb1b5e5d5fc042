// The one way the pages talk to the server: the same REST API scripts use.
function csrfToken() {
  const match = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

export class ApiError extends Error {
  constructor(status, body) {
    super(readableError(status, body));
    this.status = status;
    this.body = body;
  }
}

/** The server's words for a refusal: its ``detail``, or a serializer's messages per field. */
function readableError(status, body) {
  if (!body || typeof body !== "object") return `HTTP ${status}`;
  if (body.detail) return body.detail;
  const fieldMessages = Object.entries(body).map(([field, messages]) => `${field}: ${[].concat(messages).join(" ")}`);
  return fieldMessages.join("; ") || `HTTP ${status}`;
}

/** ``body`` is sent as JSON, except a Blob or FormData, which goes as it is (file uploads). */
export async function api(path, { method = "GET", body, headers: extraHeaders = {}, signal } = {}) {
  const raw = body instanceof Blob || body instanceof FormData;
  const headers = { Accept: "application/json", ...extraHeaders };
  if (body !== undefined && !raw) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
  const response = await fetch(`/api/v1/${path}`, {
    method,
    headers,
    body: body === undefined || raw ? body : JSON.stringify(body),
    credentials: "same-origin",
    signal,
  });
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/** Every item of a paginated list, following the cursor's ``next`` links. */
export async function listAll(path) {
  const items = [];
  let next = path;
  while (next) {
    const page = await api(next);
    items.push(...page.results);
    next = page.next ? page.next.slice(page.next.indexOf("/api/v1/") + "/api/v1/".length) : null;
  }
  return items;
}
