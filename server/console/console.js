// The webhookd web console: the Webhooks tab of one thread (README "Web
// console"). Plain JavaScript modules, no framework: every call goes
// through the HTTP/JSON API (/v1/...) of the server that served this page
// (api.js), with the API key of this tab's session storage.

import { ApiError, api, apiKey, errorText, onUnauthorized, setApiKey, streamDeliveries } from './api.js';
import { deliveryCharts } from './charts.js';
import {
  $, button, el, num, openDialog, setUpDialogs, showError, statusBadge, statusOf, timeElement,
} from './ui.js';

const LOG_PAGE_SIZE = 100;
const CHART_POINTS = 20;

// ---------------------------------------------------------------- state

const state = {
  thread: '',
  endpoints: new Map(),   // id -> Endpoint, of the open thread
  names: new Map(),       // endpoint id -> name, kept after a delete
  stats: new Map(),       // endpoint id -> EndpointStats
  deliveries: new Map(),  // id -> Delivery (list form)
  detailId: '',           // the delivery the detail dialog shows
  stream: null,           // AbortController of the live log
  paused: false,          // the live log paused by the user
  listed: { endpoints: false, log: false },  // loaded once: empty states may show
  changes: 0,             // endpoint changes made here (a list older than one is stale)
  lookedUp: new Set(),    // endpoint ids of live deliveries the endpoints were listed for
  editing: null,          // the endpoint the form edits; null: a new one
};

// ---------------------------------------------------------------- API key

function askForKey(reason) {
  const dialog = $('key-dialog');
  showError($('key-reason'), reason ? `webhookd needs an API key: ${reason}` : '');
  if (dialog.open) return;
  $('key-input').value = '';
  openDialog(dialog, $('key-input'));
}

onUnauthorized(askForKey);
$('key-button').addEventListener('click', () => askForKey(''));

$('key-form').addEventListener('submit', (event) => {
  event.preventDefault();
  setApiKey($('key-input').value.trim());
  $('key-dialog').close();
  updateKeyButton();
  openThread();
});

$('key-forget').addEventListener('click', () => {
  setApiKey('');
  $('key-dialog').close();
  updateKeyButton();
});

function updateKeyButton() {
  $('key-button').textContent = apiKey() ? 'API key: set' : 'API key';
}

// ---------------------------------------------------------------- thread

function threadFromHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  return (params.get('thread') || '').trim();
}

$('thread-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const thread = $('thread-input').value.trim();
  if (!thread) return;
  const hash = `#thread=${encodeURIComponent(thread)}`;
  if (location.hash === hash) openThread();
  else location.hash = hash;  // hashchange opens it
});

window.addEventListener('hashchange', openThread);

function openThread() {
  state.thread = threadFromHash();
  $('thread-input').value = state.thread;
  $('no-thread').hidden = Boolean(state.thread);
  $('thread-view').hidden = !state.thread;
  stopStream();
  state.paused = false;
  $('live-toggle').setAttribute('aria-pressed', 'false');
  state.endpoints.clear();
  state.stats.clear();
  state.deliveries.clear();
  state.listed = { endpoints: false, log: false };
  state.lookedUp.clear();
  renderEndpoints();
  renderLog();
  document.title = state.thread ? `${state.thread} · Webhooks · webhookd` : 'Webhooks · webhookd';
  if (!state.thread) return;
  startStream(false);
  loadEndpoints();
  loadDeliveries();
}

// ---------------------------------------------------------------- endpoints

async function loadEndpoints() {
  const thread = state.thread;
  const changes = state.changes;
  try {
    const endpoints = [];
    let token = '';
    do {
      const query = new URLSearchParams({ threadId: thread, pageSize: '1000' });
      if (token) query.set('pageToken', token);
      const page = await api('GET', `/v1/endpoints?${query}`);
      endpoints.push(...(page.endpoints || []));
      token = page.nextPageToken || '';
    } while (token);
    if (thread !== state.thread) return;
    if (changes !== state.changes) {
      loadEndpoints();  // this page changed one meanwhile: list again
      return;
    }
    state.endpoints.clear();
    for (const endpoint of endpoints) rememberEndpoint(endpoint);
    state.listed.endpoints = true;
    showError($('endpoints-error'), '');
    renderEndpoints();
    renderLog();
    for (const endpoint of endpoints) loadStats(endpoint.id);
  } catch (e) {
    if (thread === state.thread) {
      showError($('endpoints-error'), `Could not load the endpoints: ${errorText(e)}`);
      renderEndpoints();
    }
  }
}

function rememberEndpoint(endpoint) {
  const before = state.endpoints.get(endpoint.id);
  state.endpoints.set(endpoint.id, endpoint);
  state.names.set(endpoint.id, endpoint.name);
  // Its deliveries' Retry buttons come and go with it (see logRow).
  if (before && Boolean(before.enabled) !== Boolean(endpoint.enabled)) renderLog();
}

async function loadStats(id) {
  try {
    const answer = await api('GET', `/v1/endpoints/${encodeURIComponent(id)}/stats`);
    state.stats.set(id, answer.stats || {});
    const card = cardOf(id);
    if (card) fillStats(card, state.stats.get(id));
  } catch (e) {
    const card = cardOf(id);
    if (card) showError(card.querySelector('.error'), `Could not load the statistics: ${errorText(e)}`);
  }
}

// Statistics (and the endpoint itself) change with every attempt: fetched
// again, at most every 300 ms per endpoint.
const statsTimers = new Map();
function refreshStatsSoon(id) {
  if (statsTimers.has(id)) return;
  statsTimers.set(id, setTimeout(() => {
    statsTimers.delete(id);
    if (!state.endpoints.has(id)) return;
    loadStats(id);
    refreshEndpoint(id);
  }, 300));
}

// The endpoint as it is now: webhookd may have disabled it (failing, 410
// Gone), or another client changed or deleted it.
async function refreshEndpoint(id) {
  try {
    const answer = await api('GET', `/v1/endpoints/${encodeURIComponent(id)}`);
    if (!state.endpoints.has(id)) return;
    rememberEndpoint(answer.endpoint);
    renderEndpoint(id);
  } catch (e) {
    if (e instanceof ApiError && e.httpStatus === 404 && state.endpoints.delete(id)) {
      renderEndpoints();
      renderLog();
    }
  }
}

function cardOf(id) {
  return document.querySelector(`#endpoints > li[data-id="${CSS.escape(id)}"]`);
}

// Cards are built once per endpoint and then updated in place, so that a
// live update never takes the focus from a button the user is on.
function renderEndpoints() {
  const list = $('endpoints');
  const cards = [...state.endpoints.values()].map((endpoint) => {
    const card = cardOf(endpoint.id) || newCard(endpoint.id);
    fillCard(card, endpoint);
    return card;
  });
  cards.forEach((card, i) => {
    if (list.children[i] !== card) list.insertBefore(card, list.children[i] || null);
  });
  while (list.children.length > cards.length) list.lastElementChild.remove();
  $('endpoints-empty').hidden = !state.listed.endpoints || state.endpoints.size > 0;
}

function renderEndpoint(id) {
  const card = cardOf(id);
  const endpoint = state.endpoints.get(id);
  if (card && endpoint) fillCard(card, endpoint);
}

const DISABLED_REASONS = {
  DISABLED_REASON_MANUAL: 'disabled',
  DISABLED_REASON_FAILING: 'disabled: failing',
  DISABLED_REASON_GONE: 'disabled: gone (410)',
};

function newCard(id) {
  const titleId = `ep-title-${id}`;
  const stat = (name, kind, title) =>
    el('div', { className: `stat ${kind}`, title }, el('dt', {}, name), el('dd', {}, '…'));
  const endpoint = () => state.endpoints.get(id);
  return el('li', { className: 'endpoint', dataset: { id }, ariaLabelledby: titleId },
    el('div', { className: 'endpoint-head' },
      el('span', { className: 'badge ep-status' }),
      el('h3', { id: titleId })),
    el('p', { className: 'url' }),
    el('p', { className: 'hint ep-detail' }),
    el('p', { className: 'hint ep-signing' }),
    el('dl', { className: 'stats' },
      stat('Total deliveries', 'stat-total', 'Delivery attempts, retries included'),
      stat('Success rate', 'stat-rate', 'Attempts answered 2xx'),
      stat('Avg response time', 'stat-time', 'Of the attempts that got a response')),
    el('p', { className: 'hint stat-deliveries' }),
    el('div', { className: 'chart-slot' }),
    el('div', { className: 'actions' },
      button('Test', () => openTest(id), { className: 'ep-test' }),
      button('Edit', () => openEndpointForm(endpoint()), { className: 'ep-edit' }),
      button('Disable', () => setEnabled(id, !endpoint().enabled), { className: 'ep-toggle' }),
      button('Delete', () => confirmDelete(endpoint()), { className: 'danger ep-delete' })),
    el('p', { className: 'error', role: 'alert', hidden: true }));
}

function fillCard(card, endpoint) {
  const part = (selector) => card.querySelector(selector);
  const enabled = Boolean(endpoint.enabled);
  card.classList.toggle('off', !enabled);
  const status = part('.ep-status');
  status.textContent = enabled ? 'enabled'
      : (DISABLED_REASONS[endpoint.disabledReason] || 'disabled');
  status.classList.toggle('success', enabled);
  status.classList.toggle('disabled', !enabled);
  part('h3').textContent = endpoint.name;
  part('.url').textContent = endpoint.url;
  part('.ep-detail').textContent = endpoint.disabledDetail || '';
  part('.ep-detail').hidden = !endpoint.disabledDetail;
  const headers = (endpoint.headers || []).length;
  part('.ep-signing').textContent = [
    endpoint.hasSecret ? 'Signed (secret set)' : 'Unsigned (no secret)',
    headers ? `${headers} custom header${headers > 1 ? 's' : ''}` : '',
    endpoint.hasPreviousSecret ? 'secret rotation under way' : '',
    (endpoint.eventTypes || []).length ? `events: ${endpoint.eventTypes.join(', ')}` : '',
  ].filter(Boolean).join(' · ');
  const labels = { '.ep-test': 'Test', '.ep-edit': 'Edit', '.ep-toggle': enabled ? 'Disable' : 'Enable',
                   '.ep-delete': 'Delete' };
  for (const [selector, verb] of Object.entries(labels)) {
    part(selector).textContent = verb;
    part(selector).setAttribute('aria-label', `${verb} ${endpoint.name}`);
  }
  fillStats(card, state.stats.get(endpoint.id));
  part('.chart-slot').replaceChildren(chartsOf(endpoint.id));
}

function fillStats(card, stats) {
  const total = stats ? num(stats.totalDeliveries) : null;
  const value = (known) => (!stats ? '…' : total === 0 ? '–' : known());
  card.querySelector('.stat-total dd').textContent = stats ? String(total) : '…';
  card.querySelector('.stat-rate dd').textContent =
      value(() => `${num(stats.successRate).toFixed(1)}%`);
  card.querySelector('.stat-time dd').textContent =
      value(() => `${Math.round(num(stats.avgResponseTimeMs))} ms`);
  // The three figures above count attempts, as the product documents them;
  // this line counts deliveries (each one event to this endpoint).
  const succeeded = stats ? num(stats.deliveriesSucceeded) : 0;
  const failed = stats ? num(stats.deliveriesFailed) : 0;
  const inProgress = stats ? num(stats.deliveriesInProgress) : 0;
  const deliveries = succeeded + failed + inProgress;
  const line = card.querySelector('.stat-deliveries');
  line.hidden = deliveries === 0;
  line.textContent = `${deliveries} ${deliveries === 1 ? 'event' : 'events'} delivered here: ` +
      `${succeeded} succeeded, ${failed} failed, ${inProgress} in progress`;
}

// ---------------------------------------------------------------- charts

// The endpoint's most recent attempted deliveries in the log, oldest first.
function chartsOf(id) {
  return deliveryCharts([...state.deliveries.values()]
    .filter((d) => d.endpointId === id && !d.test && num(d.attempts) > 0)
    .sort((a, b) => String(a.createTime).localeCompare(String(b.createTime)))
    .slice(-CHART_POINTS));
}

// ---------------------------------------------------------------- create / edit

function headerRow(name, value) {
  const row = el('div', { className: 'header-row' },
    el('input', { className: 'header-name', value: name || '', placeholder: 'X-Source',
                  ariaLabel: 'Header name', autocomplete: 'off' }),
    el('input', { className: 'header-value', value: value || '', placeholder: 'value',
                  ariaLabel: 'Header value', autocomplete: 'off' }));
  row.append(button('×', () => {
    row.remove();
    $('add-header').focus();
  }, { className: 'quiet', ariaLabel: 'Remove header' }));
  return row;
}

$('add-header').addEventListener('click', () => {
  const row = headerRow('', '');
  $('header-rows').append(row);
  row.querySelector('input').focus();
});

$('new-endpoint').addEventListener('click', () => openEndpointForm(null));
$('create-first').addEventListener('click', () => openEndpointForm(null));

function openEndpointForm(endpoint) {
  state.editing = endpoint;
  const form = $('endpoint-form');
  form.reset();
  $('endpoint-dialog-title').textContent = endpoint ? `Edit ${endpoint.name}` : 'New endpoint';
  $('endpoint-submit').textContent = endpoint ? 'Save changes' : 'Create endpoint';
  $('ep-name').value = endpoint ? endpoint.name : '';
  $('ep-url').value = endpoint ? endpoint.url : '';
  $('ep-secret').value = '';
  $('ep-secret').placeholder = endpoint && endpoint.hasSecret
      ? 'set: leave empty to keep it' : '';
  $('secret-state').textContent = endpoint && endpoint.hasSecret
      ? 'A secret is set (it is never shown). Type a new one to replace it.'
      : 'Signs each delivery with an X-Hub-Signature-256 header (HMAC-SHA256 of the body).';
  $('clear-secret-row').hidden = !(endpoint && endpoint.hasSecret);
  $('header-rows').replaceChildren(
    ...((endpoint && endpoint.headers) || []).map((h) => headerRow(h.name, h.value)));
  showError($('endpoint-form-error'), '');
  openDialog($('endpoint-dialog'), $('ep-name'));
}

function formHeaders() {
  return [...document.querySelectorAll('#header-rows .header-row')]
    .map((row) => ({
      name: row.querySelector('.header-name').value.trim(),
      value: row.querySelector('.header-value').value,
    }))
    .filter((h) => h.name || h.value);
}

$('endpoint-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const submit = $('endpoint-submit');
  const editing = state.editing;
  const endpoint = {
    name: $('ep-name').value.trim(),
    url: $('ep-url').value.trim(),
    headers: formHeaders(),
  };
  const secret = $('ep-secret').value;
  submit.disabled = true;
  try {
    let answer;
    if (editing) {
      const mask = ['name', 'url', 'headers'];
      if (secret) {
        endpoint.secret = secret;
        mask.push('secret');
      } else if ($('ep-clear-secret').checked) {
        mask.push('secret');
      }
      endpoint.id = editing.id;
      answer = await api('PATCH', `/v1/endpoints/${encodeURIComponent(editing.id)}`,
                         { endpoint, updateMask: mask.join(',') });
    } else {
      endpoint.threadId = state.thread;
      if (secret) endpoint.secret = secret;
      answer = await api('POST', '/v1/endpoints', { endpoint });
    }
    state.changes++;
    rememberEndpoint(answer.endpoint);
    $('endpoint-dialog').close();
    renderEndpoints();
    loadStats(answer.endpoint.id);
  } catch (e) {
    showError($('endpoint-form-error'), errorText(e));
  } finally {
    submit.disabled = false;
  }
});

// ---------------------------------------------------------------- enable, disable, delete

async function setEnabled(id, enable) {
  const card = cardOf(id);
  try {
    const answer = await api('POST', `/v1/endpoints/${encodeURIComponent(id)}:${enable ? 'enable' : 'disable'}`, {});
    state.changes++;
    rememberEndpoint(answer.endpoint);
    renderEndpoint(id);
    const toggle = cardOf(id) && cardOf(id).querySelector('.ep-toggle');
    if (toggle) toggle.focus();
  } catch (e) {
    if (card) showError(card.querySelector('.error'), errorText(e));
  }
}

function confirmDelete(endpoint) {
  $('confirm-title').textContent = `Delete ${endpoint.name}?`;
  $('confirm-text').textContent = 'Its future deliveries stop and its configuration is removed. ' +
      'Its delivery log stays visible.';
  const form = $('confirm-form');
  form.onsubmit = async (event) => {
    event.preventDefault();
    $('confirm-dialog').close();
    try {
      await api('DELETE', `/v1/endpoints/${encodeURIComponent(endpoint.id)}`);
      state.endpoints.delete(endpoint.id);
      state.changes++;
      state.stats.delete(endpoint.id);
      renderEndpoints();
      renderLog();
      $('new-endpoint').focus();
    } catch (e) {
      const card = cardOf(endpoint.id);
      if (card) showError(card.querySelector('.error'), errorText(e));
    }
  };
  openDialog($('confirm-dialog'), $('confirm-yes'));
}

// ---------------------------------------------------------------- test delivery

function samplePayload() {
  return {
    event: 'execution.completed',
    triggerId: '550e8400-e29b-41d4-a716-446655440000',
    triggerName: 'Daily Report Schedule',
    execution: {
      jobId: '661f9511-b38a-42c5-9e2a-557766880000',
      runId: '772a0622-c49b-53d6-af3b-668877990000',
      prompt: "Generate today's sales summary",
      run: {
        totalCostUsd: 0.0342,
        totalTokens: 4521,
        durationMs: 11450,
        messages: [{ role: 'assistant', content: 'This is a test delivery from webhookd.' }],
      },
      durationMs: 12450,
    },
    threadId: state.thread,
    userId: 42,
  };
}

const SIGNATURES = {
  SIGNATURE_SCHEME_STANDARD_WEBHOOKS:
    'Signed: webhook-id, webhook-timestamp and webhook-signature (Standard Webhooks) headers will be included.',
};

function openTest(id) {
  const endpoint = state.endpoints.get(id);
  if (!endpoint) return;
  $('test-url').textContent = endpoint.url;
  $('test-signature').textContent = endpoint.hasSecret
      ? (SIGNATURES[endpoint.signatureScheme] ||
         'Signed: an X-Hub-Signature-256 header (HMAC-SHA256 of the body with the endpoint\'s secret) will be included.')
      : 'Unsigned: the endpoint has no secret, so no signature header is sent.';
  $('test-payload').value = JSON.stringify(samplePayload(), null, 2);
  showError($('test-error'), '');
  $('test-result').hidden = true;
  $('test-form').onsubmit = (event) => {
    event.preventDefault();
    sendTest(id);
  };
  openDialog($('test-dialog'), $('test-payload'));
}

async function sendTest(id) {
  const payload = $('test-payload').value;
  try {
    const parsed = JSON.parse(payload);
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new Error('it must be a JSON object');
    }
  } catch (e) {
    showError($('test-error'), `The payload is not a JSON object: ${e.message}`);
    $('test-payload').focus();
    return;
  }
  showError($('test-error'), '');
  const result = $('test-result');
  result.hidden = false;
  result.replaceChildren('Sending…');
  delete result.dataset.status;
  $('test-send').disabled = true;
  try {
    const answer = await api('POST', `/v1/endpoints/${encodeURIComponent(id)}:test`,
                             { payloadJson: payload });
    const d = answer.delivery;
    upsertDelivery(d);
    const attempt = (d.attemptHistory || [])[0] || {};
    result.replaceChildren(...[
      statusBadge(d), ' ',
      num(d.responseCode) ? `HTTP ${d.responseCode}` : 'no response', ` in ${num(d.responseTimeMs)} ms`,
      attemptError(d.lastError, d.responseCode),
      attempt.responseBody ? el('pre', { className: 'code' }, attempt.responseBody) : null,
    ].filter(Boolean));
    result.dataset.status = statusOf(d);
  } catch (e) {
    result.hidden = true;
    showError($('test-error'), errorText(e));
  } finally {
    $('test-send').disabled = false;
  }
}

// ---------------------------------------------------------------- delivery log

async function loadDeliveries() {
  const thread = state.thread;
  try {
    const query = new URLSearchParams({ threadId: thread, pageSize: String(LOG_PAGE_SIZE) });
    const page = await api('GET', `/v1/deliveries?${query}`);
    if (thread !== state.thread) return;
    for (const delivery of page.deliveries || []) mergeListed(delivery);
    state.listed.log = true;
    showError($('log-error'), '');
    renderLog();
    renderEndpoints();
  } catch (e) {
    if (thread === state.thread) showError($('log-error'), `Could not load the deliveries: ${errorText(e)}`);
  }
}

const STATUS_ORDER = { pending: 0, retrying: 1, success: 2, failed: 2 };
const progress = (d) => num(d.attempts) * 10 + (STATUS_ORDER[statusOf(d)] || 0);

// A delivery from a call's answer (a list, a retry, a test) replaces the
// one known unless the live log already brought a later state of it; the
// live log's own updates come in order and always replace it.
function isNewer(delivery) {
  const known = state.deliveries.get(delivery.id);
  return !known || progress(delivery) >= progress(known);
}

function mergeListed(delivery) {
  if (isNewer(delivery)) state.deliveries.set(delivery.id, delivery);
}

function upsertDelivery(delivery, live) {
  if (!live && !isNewer(delivery)) return;
  const listed = Object.assign({}, delivery);
  delete listed.payload;
  delete listed.attemptHistory;
  state.deliveries.set(delivery.id, listed);
  forgetOldDeliveries();
  noticeEndpoint(delivery.endpointId);
  renderLog();
  if (delivery.endpointId) {
    refreshStatsSoon(delivery.endpointId);
    const card = cardOf(delivery.endpointId);
    if (card) card.querySelector('.chart-slot').replaceChildren(chartsOf(delivery.endpointId));
  }
  if (state.detailId === delivery.id && $('detail-dialog').open) loadDetail(delivery.id);
}

// A page left open keeps the newest deliveries only (the log shows
// LOG_PAGE_SIZE of them; the charts read them too).
function forgetOldDeliveries() {
  const keep = 5 * LOG_PAGE_SIZE;
  if (state.deliveries.size <= keep + LOG_PAGE_SIZE) return;
  const newest = [...state.deliveries.values()]
    .sort((a, b) => String(b.createTime).localeCompare(String(a.createTime)))
    .slice(0, keep);
  state.deliveries = new Map(newest.map((d) => [d.id, d]));
}

// A delivery for an endpoint the page does not show: made (or deleted)
// elsewhere. Listing the endpoints again shows its card, or confirms it gone.
function noticeEndpoint(id) {
  if (!id || state.endpoints.has(id) || state.lookedUp.has(id) || !state.listed.endpoints) return;
  state.lookedUp.add(id);
  loadEndpoints();
}

function endpointLabel(id) {
  const name = state.names.get(id);
  if (state.endpoints.has(id)) return name;
  return name ? `${name} (deleted)` : `${id.slice(0, 11)}… (deleted)`;
}

// Rows are replaced only when their delivery changed; a focused button of
// a replaced row hands the focus to its twin in the new row.
function renderLog() {
  const body = $('log-body');
  const rows = [...state.deliveries.values()]
    .sort((a, b) => String(b.createTime).localeCompare(String(a.createTime)) ||
                    b.id.localeCompare(a.id))
    .slice(0, LOG_PAGE_SIZE)
    .map((d) => {
      const shown = body.querySelector(`tr[data-id="${CSS.escape(d.id)}"]`);
      const row = logRow(d);
      if (!shown || shown.dataset.version !== row.dataset.version) {
        if (shown) handFocus(shown, row);
        return row;
      }
      return shown;
    });
  rows.forEach((row, i) => {
    if (body.children[i] !== row) body.insertBefore(row, body.children[i] || null);
  });
  while (body.children.length > rows.length) body.lastElementChild.remove();
  $('log').hidden = rows.length === 0;
  $('log-empty').hidden = !state.listed.log || rows.length > 0;
}

function handFocus(from, to) {
  const focused = document.activeElement;
  if (!from.contains(focused)) return;
  from.replaceWith(to);
  const twin = [...focused.classList].map((c) => to.querySelector(`.${c}`)).find(Boolean);
  (twin || to.querySelector('button')).focus();
}

function logRow(d) {
  const cell = (label, ...content) => el('td', { dataset: { label } }, ...content);
  const status = statusOf(d);
  // The deliveries of a disabled endpoint are held: webhookd refuses to
  // retry them until it is enabled again.
  const endpoint = state.endpoints.get(d.endpointId || '');
  const held = Boolean(endpoint) && !endpoint.enabled;
  const retryable = status === 'retrying' && num(d.attempts) < num(d.maxAttempts) &&
                    !d.test && !held;
  const error = el('span', { className: 'error', role: 'alert', hidden: true });
  const actions = el('td', { className: 'row-actions', dataset: { label: '' } },
    button('Details', () => openDetail(d.id), { className: 'quiet d-details', ariaLabel: `Details of delivery ${d.id}` }));
  if (retryable) {
    actions.append(button('Retry', (event) => retry(d.id, event.target, error),
                          { className: 'd-retry', ariaLabel: `Retry delivery ${d.id} now` }));
  }
  actions.append(error);
  const version = [d.status, d.attempts, d.maxAttempts, d.responseCode, d.responseTimeMs,
                   endpointLabel(d.endpointId || ''), held].join('|');
  return el('tr', { dataset: { id: d.id, status, version }, className: `status-${status}` },
    cell('Status', statusBadge(d), d.test ? el('span', { className: 'tag' }, 'test') : null),
    cell('Endpoint', endpointLabel(d.endpointId || '')),
    cell('Response code', num(d.responseCode) ? String(d.responseCode) : (num(d.attempts) ? 'none' : '–')),
    cell('Response time', num(d.attempts) ? `${num(d.responseTimeMs)} ms` : '–'),
    cell('Attempts', `${num(d.attempts)} / ${num(d.maxAttempts)}`),
    cell('Timestamp', timeElement(d.createTime)),
    actions);
}

async function retry(id, retryButton, error) {
  retryButton.disabled = true;
  try {
    const answer = await api('POST', `/v1/deliveries/${encodeURIComponent(id)}:retry`, {});
    upsertDelivery(answer.delivery);
  } catch (e) {
    // The row stays until the log changes: say why here.
    retryButton.disabled = false;
    showError(error, errorText(e));
  }
}

// ---------------------------------------------------------------- live log

function setLive(text, kind) {
  $('live').textContent = text;
  $('live').dataset.state = kind;
}

// The live log (GET /v1/deliveries:stream). It reconnects after an error,
// and then lists the deliveries again to catch up, as it does when
// `catchUp` is set.
function startStream(catchUp) {
  stopStream();
  const controller = new AbortController();
  state.stream = controller;
  let delay = 500;
  const run = async (listAgain) => {
    if (controller.signal.aborted) return;
    setLive('Connecting…', 'connecting');
    try {
      const opened = () => {
        setLive('Live', 'live');
        delay = 500;
        if (listAgain) loadDeliveries();
      };
      await streamDeliveries(new URLSearchParams({ threadId: state.thread }), controller.signal,
                             opened, (delivery) => upsertDelivery(delivery, true));
    } catch (e) {
      if (controller.signal.aborted) return;
      if (e instanceof ApiError && e.httpStatus === 401) {
        setLive('Needs an API key', 'down');
        return;  // openThread() starts again once a key is given
      }
      setLive(`Reconnecting (${errorText(e)})`, 'down');
      setTimeout(() => run(true), delay);
      delay = Math.min(delay * 2, 10000);
    }
  };
  run(catchUp);
}

function stopStream() {
  if (state.stream) state.stream.abort();
  state.stream = null;
}

// Pause holds the log still (to read it, or to act on a row); resuming
// catches up with what happened meanwhile.
$('live-toggle').addEventListener('click', () => {
  state.paused = !state.paused;
  if (state.paused) {
    stopStream();
    setLive('Paused', 'paused');
  } else {
    startStream(true);
  }
  $('live-toggle').setAttribute('aria-pressed', String(state.paused));
});

// ---------------------------------------------------------------- attempt detail

// An attempt's error, unless it only repeats the status code shown beside it.
function attemptError(error, code) {
  return error && error !== `HTTP ${num(code)}` ? el('p', { className: 'error' }, error) : null;
}

function openDetail(id) {
  state.detailId = id;
  $('detail-dialog-title').textContent = 'Delivery';
  $('detail-summary').replaceChildren();
  $('detail-attempts').replaceChildren();
  $('detail-payload').textContent = '';
  showError($('detail-error'), '');
  openDialog($('detail-dialog'), $('detail-dialog').querySelector('[data-close]'));
  loadDetail(id);
}

async function loadDetail(id) {
  try {
    const { delivery: d } = await api('GET', `/v1/deliveries/${encodeURIComponent(id)}`);
    if (state.detailId !== id) return;
    $('detail-dialog-title').textContent = `Delivery ${d.id}`;
    const item = (name, ...value) => [el('dt', {}, name), el('dd', {}, ...value)];
    $('detail-summary').replaceChildren(
      ...item('Status', statusBadge(d), d.test ? ' (test)' : ''),
      ...item('Endpoint', endpointLabel(d.endpointId || '')),
      ...item('Event', d.eventType || '', d.eventId ? ` (${d.eventId})` : ''),
      ...item('Attempts', `${num(d.attempts)} / ${num(d.maxAttempts)}`),
      ...item('Created', timeElement(d.createTime)),
      ...(d.nextAttemptTime ? item('Next attempt', timeElement(d.nextAttemptTime)) : []),
      ...(d.resentFrom ? item('Resends', d.resentFrom) : []),
      ...(d.resentBy ? item('Resent by', d.resentBy) : []));
    const attempts = d.attemptHistory || [];
    $('detail-no-attempts').hidden = attempts.length > 0;
    $('detail-attempts').replaceChildren(...attempts.map((a) => el('li', { className: 'attempt' },
      el('p', {},
        el('strong', {}, `Attempt ${num(a.attempt)}`), a.manual ? ' (manual retry) ' : ' ',
        timeElement(a.startTime), ' · ',
        el('span', { className: `code ${num(a.responseCode) >= 200 && num(a.responseCode) < 300 ? 'ok' : 'bad'}` },
           num(a.responseCode) ? `HTTP ${a.responseCode}` : 'no response'),
        ` · ${num(a.responseTimeMs)} ms`),
      attemptError(a.error, a.responseCode),
      a.responseBody ? el('pre', { className: 'code', ariaLabel: 'Response excerpt' }, a.responseBody) : null)));
    $('detail-payload').textContent = d.payload || '';
  } catch (e) {
    showError($('detail-error'), errorText(e));
  }
}

$('detail-dialog').addEventListener('close', () => { state.detailId = ''; });

// ---------------------------------------------------------------- start

setUpDialogs();
updateKeyButton();
openThread();
