// The REST API as the pages use it: same origin, the session cookie goes by itself, and
// every state-changing request carries the CSRF token (node/admin/session.h).

let csrf = null;

function csrfFromCookie() {
  const m = document.cookie.match(/(?:^|;\s*)pbx_csrf=([^;]+)/);
  return m ? m[1] : null;
}

export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.field = e.field || null;
  }
}

// Calls `path` under /api/v1 and returns the parsed JSON (null for 204). Throws ApiError.
export async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET') headers['X-CSRF-Token'] = csrf || csrfFromCookie() || '';
  const res = await fetch('/api/v1' + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
  });
  const text = await res.text();
  const json = text ? JSON.parse(text) : null;
  if (!res.ok) throw new ApiError(res.status, json);
  return json;
}

export async function login(username, password) {
  const r = await api('POST', '/session', { username, password });
  csrf = r.csrf_token;
  return r;
}

export async function logout() {
  try {
    await api('POST', '/logout');
  } finally {
    csrf = null;
  }
}
