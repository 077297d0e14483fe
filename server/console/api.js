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

// Calls onEvent(event, data) for each Server-Sent Event of `body` (a
// ReadableStream of bytes), as the HTML standard parses them: lines end in
// CRLF, LF or CR, also when a chunk splits them; ":" lines are comments
// (the heartbeat); several "data" lines join with LF; a blank line ends an
// event, which is passed on only if it has data.
export async function readEvents(body, onEvent) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let event = '';
  let data = [];
  const line = (text) => {
    if (text === '') {
      if (data.length) onEvent(event || 'message', data.join('\n'));
      event = '';
      data = [];
      return;
    }
    if (text.startsWith(':')) return;
    const colon = text.indexOf(':');
    const field = colon < 0 ? text : text.slice(0, colon);
    const value = colon < 0 ? '' : text.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') event = value;
    if (field === 'data') data.push(value);
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.search(/[\r\n]/)) >= 0) {
      // A CR last in the buffer may be the first half of a CRLF.
      if (buffer[end] === '\r' && end === buffer.length - 1) break;
      const length = buffer.startsWith('\r\n', end) ? 2 : 1;
      line(buffer.slice(0, end));
      buffer = buffer.slice(end + length);
    }
  }
}
