// Calls of webhookd's HTTP/JSON API (README "HTTP/JSON API") from the web
// console, with the API key kept in this tab's session storage, and the live
// delivery log read as Server-Sent Events.

const KEY_STORAGE = 'webhookd.apiKey';

export class ApiError extends Error {
  constructor(httpStatus, status, message) {
    super(message);
    this.httpStatus = httpStatus;
    this.status = status;
  }
}

export function apiKey() { return sessionStorage.getItem(KEY_STORAGE) || ''; }

// Keeps `key` for this tab only; an empty key forgets it.
export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

function authHeaders() {
  const key = apiKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

let unauthorized = () => {};

// `handler(message)` runs whenever a call is answered 401.
export function onUnauthorized(handler) { unauthorized = handler; }

// Calls a route; resolves to the response's JSON, or rejects with an
// ApiError carrying the server's code and message.
export async function api(method, path, body) {
  const headers = authHeaders();
  const init = { method, headers };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'UNAVAILABLE', `webhookd did not answer (${e.message})`);
  }
  return readAnswer(response);
}

async function readAnswer(response) {
  const text = await response.text();
  let json = {};
  try { json = text ? JSON.parse(text) : {}; } catch (e) { json = {}; }
  if (response.ok) return json;
  const error = json.error || {};
  const failure = new ApiError(response.status, error.status || `HTTP ${response.status}`,
                               error.message || text || response.statusText);
  if (response.status === 401) unauthorized(failure.message);
  throw failure;
}

export function errorText(e) {
  return e instanceof ApiError ? `${e.status}: ${e.message}` : String(e.message || e);
}

// Reads GET /v1/deliveries:stream?<query> until `signal` aborts it: calls
// opened() once it is subscribed, then delivery(d) for each update. Rejects
// when it ends, with the server's reason if it gave one. EventSource cannot
// send an Authorization header, so this is fetch() with the events parsed
// here.
export async function streamDeliveries(query, signal, opened, delivery) {
  const response = await fetch(`/v1/deliveries:stream?${query}`, { headers: authHeaders(), signal });
  if (!response.ok) await readAnswer(response);  // rejects with its error
  opened();
  await readEvents(response.body, (event, data) => {
    if (event === 'delivery') delivery(JSON.parse(data).delivery);
    if (event === 'error') {
      const error = JSON.parse(data).error || {};
      throw new ApiError(error.code, error.status, error.message);
    }
  });
  throw new Error('the stream ended');
}

// Calls onEvent(event, data) for each Server-Sent Event of `body`.
async function readEvents(body, onEvent) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer = (buffer + decoder.decode(value, { stream: true })).replace(/\r\n?/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;  // a comment: the heartbeat
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') event = text;
        if (field === 'data') data.push(text);
      }
      if (data.length) onEvent(event, data.join('\n'));
    }
  }
}
