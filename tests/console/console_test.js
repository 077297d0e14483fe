#!/usr/bin/env node
// The web console in a real browser: Debian's Chromium, headless, driven by
// puppeteer-core, against a real webhookd (LevelDB in a temp dir, the
// HTTP/JSON API on a free loopback port) and a real receiver on loopback
// that checks each delivery's X-Hub-Signature-256 with node's crypto.
//
// Through the page, as a person would: create an endpoint with the form,
// edit it (a masked header value kept), send a test delivery with an edited
// payload (the receiver must get exactly those bytes, signed), watch a live
// delivery fail and then succeed without a reload, retry a delivery with the
// button, read the attempt detail, disable and re-enable, delete (the log
// stays), and, on a second webhookd with --api_keys_file, give the key the
// page asks for. Every wait is on an event (a page condition, a receiver
// count), never a fixed sleep. Screenshots of each screen go to SHOT_DIR.
//
// Usage: node tests/console/console_test.js WEBHOOKD [SHOT_DIR]
'use strict';

const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const { EventEmitter } = require('node:events');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const puppeteer = require('puppeteer-core');

const WEBHOOKD = process.argv[2];
const SHOT_DIR = process.argv[3] || path.join(os.tmpdir(), 'webhookd-console-shots');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TIMEOUT = 30000;
const SECRET = 'console-test-secret';
const API_KEY = 'console-test-key-5f4e3d2c1b';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'webhookd-console-'));
const children = [];
// Script errors and refused resources of every page (see newPage).
const problems = [];

function log(...args) { console.log(`[${(process.uptime()).toFixed(1)}s]`, ...args); }

// ------------------------------------------------------------ processes

// Resolves once `check()` returns a truthy value (polled every 25 ms), or
// rejects after `timeout` naming `what`.
async function until(what, check, timeout = TIMEOUT) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

// A webhookd on free loopback ports with its data in the work directory;
// resolves to its HTTP/JSON API's base URL.
async function startWebhookd(name, extraArgs = []) {
  const dir = path.join(work, name);
  fs.mkdirSync(dir);
  const portFile = path.join(dir, 'http_port');
  const logFile = fs.openSync(path.join(dir, 'webhookd.log'), 'w');
  const child = spawn(WEBHOOKD, [
    '--listen=127.0.0.1:0', `--data_dir=${path.join(dir, 'data')}`,
    '--http_listen=127.0.0.1:0', `--http_port_file=${portFile}`,
    '--allow_insecure_targets',
    // A first retry after 1 s, the second an hour later: a failure is
    // seen, then retried; a delivery that fails twice waits for Retry.
    '--retry_schedule=1s,1h',
    ...extraArgs,
  ], { stdio: ['ignore', logFile, logFile] });
  children.push(child);
  let exited = null;
  child.on('exit', (code) => { exited = code; });
  const port = await until(`${name} to serve HTTP`, () => {
    if (exited !== null) throw new Error(`${name} exited with ${exited}: ${readLog(name)}`);
    const text = fs.existsSync(portFile) ? fs.readFileSync(portFile, 'utf8').trim() : '';
    return /^\d+$/.test(text) ? text : null;
  });
  return `http://127.0.0.1:${port}`;
}

function readLog(name) {
  const file = path.join(work, name, 'webhookd.log');
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').slice(-30).join('\n') : '';
}

// A receiver on a free loopback port: records every request, with whether
// its X-Hub-Signature-256 is the HMAC of its exact body under SECRET, and
// answers `receiver.status` (200 unless a test changes it).
async function startReceiver() {
  const receiver = new EventEmitter();
  receiver.requests = [];
  receiver.status = 200;
  const server = http.createServer((request, response) => {
    const chunks = [];
    request.on('data', (chunk) => chunks.push(chunk));
    request.on('end', () => {
      const body = Buffer.concat(chunks);
      const expected = crypto.createHmac('sha256', SECRET).update(body).digest('hex');
      const signature = String(request.headers['x-hub-signature-256'] || '');
      const signed = signature.length === expected.length &&
          crypto.timingSafeEqual(Buffer.from(signature), Buffer.from(expected));
      const status = receiver.status;
      receiver.requests.push({ headers: request.headers, body: body.toString('utf8'), signed, status });
      response.writeHead(status, { 'Content-Type': 'application/json' });
      response.end(JSON.stringify({ received: true, answered: status }));
      receiver.emit('request');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${server.address().port}/hook`;
  receiver.close = () => server.close();
  // Resolves once `count` requests have arrived.
  receiver.waitFor = (count) => until(`${count} requests at the receiver`,
                                      () => receiver.requests.length >= count);
  return receiver;
}

// A call of the HTTP/JSON API from node (what another service would do).
async function call(base, method, route, body, key) {
  const headers = { 'Content-Type': 'application/json' };
  if (key) headers.Authorization = `Bearer ${key}`;
  const response = await fetch(base + route, { method, headers, body: body && JSON.stringify(body) });
  const json = await response.json();
  assert.equal(response.status, 200, `${method} ${route}: ${JSON.stringify(json)}`);
  return json;
}

// ------------------------------------------------------------ page helpers

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOT_DIR, `${name}.png`) });
}

// Waits until the delivery's row in the log matches `fields` (status,
// attempts "n / max", response code), with no reload.
async function waitForRow(page, id, fields) {
  await page.waitForFunction((id, fields) => {
    const row = document.querySelector(`#log-body tr[data-id="${id}"]`);
    if (!row) return false;
    const text = (label) => row.querySelector(`td[data-label="${label}"]`).textContent.trim();
    return (!fields.status || row.dataset.status === fields.status) &&
           (!fields.attempts || text('Attempts') === fields.attempts) &&
           (!fields.code || text('Response code') === fields.code);
  }, { timeout: TIMEOUT }, id, fields);
}

function card(id) { return `#endpoints > li[data-id="${id}"]`; }

// The text of `selector`, white space folded.
async function text(page, selector) {
  return page.$eval(selector, (node) => node.textContent.replace(/\s+/g, ' ').trim());
}

// Presses Tab `times` times; every focused element must be inside `dialog`.
async function expectFocusTrapped(page, dialog, times) {
  for (let i = 0; i < times; i++) {
    await page.keyboard.press('Tab');
    const inside = await page.$eval(dialog, (d) => d.contains(document.activeElement));
    assert.ok(inside, `focus left ${dialog} after ${i + 1} Tab presses`);
  }
}

// ------------------------------------------------------------ the scenarios

async function consoleWithoutKeys(browser) {
  const base = await startWebhookd('open');
  const receiver = await startReceiver();
  const page = await newPage(browser);
  log('webhookd at', base, 'receiver at', receiver.url);

  // "/" leads to the console; no thread yet.
  await page.goto(`${base}/`, { waitUntil: 'load' });
  assert.equal(new URL(page.url()).pathname, '/console/');
  await page.waitForSelector('#no-thread', { visible: true });
  await shot(page, '01-no-thread');

  // The page's Server-Sent Events parser (api.js), in this browser, on
  // chunks that split lines and line ends anywhere.
  const events = await page.evaluate(async () => {
    const { readEvents } = await import('./api.js');
    const chunks = ['event: delivery\r', '\ndata: {"a":1}\r\n\r\n: heartbeat\n\n',
                    'data: one\ndata: two\r\rev', 'ent: error\ndata: {"x"', ':2}\n\nevent: empty\n\n'];
    const encoder = new TextEncoder();
    const body = new ReadableStream({
      start(controller) {
        for (const chunk of chunks) controller.enqueue(encoder.encode(chunk));
        controller.close();
      },
    });
    const seen = [];
    await readEvents(body, (event, data) => seen.push([event, data]));
    return seen;
  });
  assert.deepEqual(events, [['delivery', '{"a":1}'], ['message', 'one\ntwo'], ['error', '{"x":2}']]);

  // Open a thread: its (empty) Webhooks tab, kept in the URL.
  await page.type('#thread-input', 'console-thread');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#endpoints-empty', { visible: true });
  assert.match(await text(page, '#endpoints-empty'), /No endpoints yet: create one/);
  assert.equal(new URL(page.url()).hash, '#thread=console-thread');
  await page.waitForFunction(() => document.getElementById('live').dataset.state === 'live');
  // Marks this document: any reload would lose it.
  await page.evaluate(() => { window.loadedOnce = true; });
  await shot(page, '02-empty-thread');

  // By keyboard alone: Tab from the thread field reaches "+ New endpoint",
  // Enter opens the form, Escape closes it and the focus comes back.
  await page.focus('#thread-input');
  const order = [];
  for (let i = 0; i < 3; i++) {
    await page.keyboard.press('Tab');
    order.push(await page.evaluate(() => document.activeElement.id));
  }
  assert.deepEqual(order, ['thread-open', 'key-button', 'new-endpoint']);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#endpoint-dialog[open]');
  await page.keyboard.press('Escape');
  await page.waitForSelector('#endpoint-dialog:not([open])');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'new-endpoint');

  // Create an endpoint through the form, with a secret and two headers.
  await page.click('#create-first');
  await page.waitForSelector('#endpoint-dialog[open]');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'ep-name');
  await page.type('#ep-name', 'Order service');
  await page.type('#ep-url', receiver.url);
  await page.type('#ep-secret', SECRET);
  for (const [name, value] of [['X-Source', 'webhookd-console'], ['Authorization', 'Bearer tok-123']]) {
    await page.click('#add-header');
    await page.keyboard.type(name);  // the new row's name field has focus
    await page.keyboard.press('Tab');
    await page.keyboard.type(value);
  }
  await shot(page, '03-create-form');
  await page.click('#endpoint-submit');
  await page.waitForSelector('#endpoint-dialog:not([open])');
  const id = await page.$eval('#endpoints > li', (li) => li.dataset.id);
  assert.match(id, /^ep_[0-9a-f]{32}$/);
  assert.equal(await text(page, `${card(id)} .ep-status`), 'enabled');
  assert.match(await text(page, card(id)), /Signed \(secret set\)/);
  await page.waitForFunction((sel) => document.querySelector(`${sel} .stat-total dd`).textContent === '0',
                             { timeout: TIMEOUT }, card(id));

  // Edit: the secret is never shown, the sensitive header comes back masked
  // and is kept as stored when saved unchanged.
  await page.click(`${card(id)} .ep-edit`);
  await page.waitForSelector('#endpoint-dialog[open]');
  assert.equal(await page.$eval('#ep-secret', (i) => i.value), '');
  assert.match(await text(page, '#secret-state'), /A secret is set/);
  const headerValues = await page.$$eval('#header-rows .header-value', (inputs) => inputs.map((i) => i.value));
  assert.deepEqual(headerValues, ['webhookd-console', '********']);
  await page.$eval('#ep-name', (input) => input.select());
  await page.keyboard.type('Order service (EU)');
  await page.click('#endpoint-submit');
  await page.waitForFunction((sel) => document.querySelector(`${sel} h3`).textContent === 'Order service (EU)',
                             { timeout: TIMEOUT }, card(id));

  // Test delivery from the modal, with its payload edited by keyboard.
  await page.click(`${card(id)} .ep-test`);
  await page.waitForSelector('#test-dialog[open]');
  assert.equal(await text(page, '#test-url'), receiver.url);
  assert.match(await text(page, '#test-signature'), /X-Hub-Signature-256/);
  await page.$eval('#test-payload', (area) => {
    const start = area.value.indexOf('Daily Report Schedule');
    area.focus();
    area.setSelectionRange(start, start + 'Daily Report Schedule'.length);
  });
  await page.keyboard.type('Edited in the browser');
  const payload = await page.$eval('#test-payload', (area) => area.value);
  assert.match(payload, /"triggerName": "Edited in the browser"/);
  assert.match(payload, /"threadId": "console-thread"/);
  await expectFocusTrapped(page, '#test-dialog', 6);
  await page.click('#test-send');
  await page.waitForSelector('#test-result[data-status="success"]', { timeout: TIMEOUT });
  await shot(page, '04-test-delivery');
  await receiver.waitFor(1);
  const test = receiver.requests[0];
  assert.equal(test.body, payload, 'the receiver got exactly the edited payload');
  assert.ok(test.signed, 'the test delivery was signed with the secret');
  assert.equal(test.headers['x-source'], 'webhookd-console');
  assert.equal(test.headers.authorization, 'Bearer tok-123', 'the masked header kept its value');
  // Escape closes the modal and gives focus back to the Test button.
  await page.keyboard.press('Escape');
  await page.waitForSelector('#test-dialog:not([open])');
  assert.ok(await page.evaluate(() => document.activeElement.classList.contains('ep-test')));
  // The test delivery is in the log (live), marked as a test.
  await page.waitForSelector('#log-body tr[data-status="success"] .tag');

  // A live delivery: the receiver fails the first attempt, then succeeds.
  receiver.status = 500;
  const first = await call(base, 'POST', '/v1/events', { threadId: 'console-thread', userId: 42 });
  const live = first.deliveryIds[0];
  await waitForRow(page, live, { status: 'retrying', attempts: '1 / 3', code: '500' });
  await shot(page, '05-live-retrying');
  receiver.status = 200;
  await waitForRow(page, live, { status: 'success', attempts: '2 / 3', code: '200' });
  assert.ok(await page.evaluate(() => window.loadedOnce), 'the page was not reloaded');
  await page.waitForFunction((sel) => document.querySelector(`${sel} .stat-total dd`).textContent === '2',
                             { timeout: TIMEOUT }, card(id));

  // Retry with the button: two failed attempts, the next an hour away.
  receiver.status = 503;
  const second = await call(base, 'POST', '/v1/events', { threadId: 'console-thread', userId: 42 });
  const retried = second.deliveryIds[0];
  await waitForRow(page, retried, { status: 'retrying', attempts: '2 / 3', code: '503' });
  receiver.status = 200;
  const before = receiver.requests.length;
  await page.click(`#log-body tr[data-id="${retried}"] .d-retry`);
  await waitForRow(page, retried, { status: 'success', attempts: '3 / 3', code: '200' });
  assert.equal(receiver.requests.length, before + 1);
  const retriedBody = receiver.requests[receiver.requests.length - 1];
  assert.ok(retriedBody.signed);
  // A success has no Retry button.
  assert.equal(await page.$(`#log-body tr[data-id="${retried}"] .d-retry`), null);
  // Statistics (attempts: 2 + 3) and charts of the recent deliveries.
  await page.waitForFunction((sel) => document.querySelector(`${sel} .stat-total dd`).textContent === '5',
                             { timeout: TIMEOUT }, card(id));
  assert.equal(await text(page, `${card(id)} .stat-rate dd`), '40.0%');
  // Beside them, the deliveries themselves (of the two events).
  await page.waitForFunction(
    (sel) => document.querySelector(`${sel} .stat-deliveries`).textContent ===
             '2 events delivered here: 2 succeeded, 0 failed, 0 in progress',
    { timeout: TIMEOUT }, card(id));
  await page.waitForFunction((sel) => document.querySelectorAll(`${sel} svg.spark`).length === 2,
                             { timeout: TIMEOUT }, card(id));

  // Attempt detail: every attempt, and the exact payload.
  await page.click(`#log-body tr[data-id="${retried}"] .d-details`);
  await page.waitForFunction(() => document.querySelectorAll('#detail-attempts li').length === 3,
                             { timeout: TIMEOUT });
  const attempts = await page.$$eval('#detail-attempts li', (items) => items.map((li) => li.textContent));
  assert.match(attempts[0], /Attempt 1.*HTTP 503/s);
  assert.match(attempts[1], /Attempt 2.*HTTP 503/s);
  assert.match(attempts[2], /Attempt 3 \(manual retry\).*HTTP 200/s);
  assert.equal(await page.$eval('#detail-payload', (pre) => pre.textContent), retriedBody.body);
  await shot(page, '07-attempt-detail');
  await page.keyboard.press('Escape');
  await page.waitForSelector('#detail-dialog:not([open])');

  // A refused retry is explained in its row. With the live log paused, the
  // delivery is retried elsewhere and succeeds meanwhile, and the stale
  // row's Retry is then refused by the server. Resuming catches up.
  receiver.status = 500;
  const third = await call(base, 'POST', '/v1/events', { threadId: 'console-thread', userId: 42 });
  const stale = third.deliveryIds[0];
  await waitForRow(page, stale, { status: 'retrying', attempts: '2 / 3', code: '500' });
  await page.waitForFunction((sel) => document.querySelector(`${sel} .stat-total dd`).textContent === '7',
                             { timeout: TIMEOUT }, card(id));
  await shot(page, '06-endpoint-and-log');
  await page.click('#live-toggle');
  await page.waitForFunction(() => document.getElementById('live').dataset.state === 'paused');
  assert.equal(await page.$eval('#live-toggle', (b) => b.getAttribute('aria-pressed')), 'true');
  receiver.status = 200;
  await call(base, 'POST', `/v1/deliveries/${stale}:retry`, {});
  await until('the retried delivery to succeed', async () =>
    (await call(base, 'GET', `/v1/deliveries/${stale}`)).delivery.status === 'DELIVERY_STATUS_SUCCESS');
  await page.click(`#log-body tr[data-id="${stale}"] .d-retry`);
  await page.waitForSelector(`#log-body tr[data-id="${stale}"] .error:not([hidden])`);
  assert.match(await text(page, `#log-body tr[data-id="${stale}"] .error`),
               /FAILED_PRECONDITION: .*already succeeded/);
  await page.click('#live-toggle');
  await waitForRow(page, stale, { status: 'success', attempts: '3 / 3', code: '200' });
  await page.waitForFunction(() => document.getElementById('live').dataset.state === 'live');

  // An open attempt detail follows its delivery live: retried from
  // elsewhere, its new attempt shows up in the dialog.
  receiver.status = 500;
  const fourth = await call(base, 'POST', '/v1/events', { threadId: 'console-thread', userId: 42 });
  const followed = fourth.deliveryIds[0];
  await waitForRow(page, followed, { status: 'retrying', attempts: '2 / 3', code: '500' });
  await page.click(`#log-body tr[data-id="${followed}"] .d-details`);
  await page.waitForFunction(() => document.querySelectorAll('#detail-attempts li').length === 2);
  receiver.status = 200;
  await call(base, 'POST', `/v1/deliveries/${followed}:retry`, {});
  await page.waitForFunction(() => document.querySelectorAll('#detail-attempts li').length === 3);
  assert.match(await text(page, '#detail-attempts li:last-child'), /Attempt 3 \(manual retry\).*HTTP 200/);
  await page.keyboard.press('Escape');
  await page.waitForSelector('#detail-dialog:not([open])');

  // Disable, then enable again. A delivery waiting for its next attempt
  // is held meanwhile: its Retry goes while the endpoint is disabled
  // (webhookd would refuse it) and comes back with it.
  receiver.status = 500;
  const waiting = (await call(base, 'POST', '/v1/events', { threadId: 'console-thread', userId: 42 }))
    .deliveryIds[0];
  await waitForRow(page, waiting, { status: 'retrying', attempts: '2 / 3', code: '500' });
  receiver.status = 200;
  const retryOf = (deliveryId) => `#log-body tr[data-id="${deliveryId}"] .d-retry`;
  assert.notEqual(await page.$(retryOf(waiting)), null);
  await page.click(`${card(id)} .ep-toggle`);
  await page.waitForFunction((sel) => document.querySelector(`${sel} .ep-status`).textContent === 'disabled',
                             { timeout: TIMEOUT }, card(id));
  assert.equal(await text(page, `${card(id)} .ep-toggle`), 'Enable');
  await page.waitForFunction((sel) => document.querySelector(sel) === null, { timeout: TIMEOUT },
                             retryOf(waiting));
  const held = await call(base, 'POST', '/v1/events', { threadId: 'console-thread', userId: 42 });
  assert.equal((held.deliveryIds || []).length, 0, 'a disabled endpoint gets no delivery');
  await page.click(`${card(id)} .ep-toggle`);
  await page.waitForFunction((sel) => document.querySelector(`${sel} .ep-status`).textContent === 'enabled',
                             { timeout: TIMEOUT }, card(id));
  await page.waitForSelector(retryOf(waiting), { timeout: TIMEOUT });

  // Delete (confirmed in a dialog): the endpoint goes, its log stays.
  const rows = await page.$$eval('#log-body tr', (trs) => trs.length);
  await page.click(`${card(id)} .ep-delete`);
  await page.waitForSelector('#confirm-dialog[open]');
  await page.click('#confirm-yes');
  await page.waitForSelector('#endpoints-empty', { visible: true });
  assert.equal(await page.$$eval('#log-body tr', (trs) => trs.length), rows);
  assert.match(await text(page, `#log-body tr[data-id="${retried}"] td[data-label="Endpoint"]`), /\(deleted\)/);
  await shot(page, '08-deleted');

  // A phone-sized window: nothing wider than the screen.
  await page.setViewport({ width: 390, height: 844 });
  await page.waitForFunction(() => document.documentElement.scrollWidth <= 390, { timeout: TIMEOUT });
  await shot(page, '09-phone');
  await page.close();
  receiver.close();
}

async function consoleWithKeys(browser) {
  const keys = path.join(work, 'api_keys');
  fs.writeFileSync(keys, `${API_KEY} 7\n`, { mode: 0o600 });
  const base = await startWebhookd('keyed', [`--api_keys_file=${keys}`]);
  const page = await newPage(browser);
  // A link to a thread: the page asks for the key, then opens it.
  await page.goto(`${base}/console/#thread=keyed-thread`, { waitUntil: 'load' });
  await page.waitForSelector('#key-dialog[open]', { timeout: TIMEOUT });
  assert.match(await text(page, '#key-reason'), /UNAUTHENTICATED|key/i);
  await shot(page, '10-api-key');
  await page.type('#key-input', API_KEY);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#endpoints-empty', { visible: true, timeout: TIMEOUT });
  await page.waitForFunction(() => document.getElementById('live').dataset.state === 'live',
                             { timeout: TIMEOUT });
  assert.equal(await page.evaluate(() => sessionStorage.getItem('webhookd.apiKey')), API_KEY);
  assert.equal(await page.evaluate(() => localStorage.length), 0, 'the key is kept for the session only');
  // The live log reads the keyed stream: a delivery made from node shows.
  const receiver = await startReceiver();
  const endpoint = await call(base, 'POST', '/v1/endpoints', {
    endpoint: { threadId: 'keyed-thread', name: 'Keyed', url: receiver.url, secret: SECRET },
  }, API_KEY);
  const event = await call(base, 'POST', '/v1/events', { threadId: 'keyed-thread' }, API_KEY);
  await waitForRow(page, event.deliveryIds[0], { status: 'success' });
  // Its endpoint, made elsewhere, gets its card, statistics included.
  await page.waitForFunction((sel) => document.querySelector(`${sel} .stat-total dd`)?.textContent === '1',
                             { timeout: TIMEOUT }, card(endpoint.endpoint.id));
  // A 410 Gone makes webhookd disable the endpoint: the card says so live.
  receiver.status = 410;
  await call(base, 'POST', '/v1/events', { threadId: 'keyed-thread' }, API_KEY);
  await page.waitForFunction((sel) => document.querySelector(`${sel} .ep-status`).textContent === 'disabled: gone (410)',
                             { timeout: TIMEOUT }, card(endpoint.endpoint.id));
  assert.equal(await text(page, `${card(endpoint.endpoint.id)} .ep-toggle`), 'Enable');
  // The endpoint's card, too, fits a phone-sized window.
  await page.setViewport({ width: 390, height: 844 });
  await page.waitForFunction(() => document.documentElement.scrollWidth <= 390);
  await shot(page, '11-phone-endpoint');
  await page.close();
  receiver.close();
}

// The page of the scenario running, for a screenshot when it fails.
let currentPage = null;

async function newPage(browser) {
  const page = await browser.newPage();
  currentPage = page;
  await page.setViewport({ width: 1280, height: 800 });
  page.setDefaultTimeout(TIMEOUT);
  // Any script error or refused resource (a CSP violation included) fails
  // the test; the API's 401 (the key asked for) and 400 (the refused
  // retry) are expected, and shown by the page. So is a 404 for reading an
  // endpoint or its statistics: a read the page started just before the
  // endpoint was deleted (it then drops the endpoint).
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    const text = message.text();
    const url = (message.location() || {}).url || '';
    const endpointRead = /\/v1\/endpoints\/[^/]+(\/stats)?$/.test(new URL(url, 'http://x').pathname);
    if (message.type() !== 'error' || /status of 40[01] /.test(text)) return;
    if (/status of 404 /.test(text) && endpointRead) {
      log(`a read of a deleted endpoint: 404 ${url}`);
      return;
    }
    problems.push(`console: ${text} (${url})`);
  });
  return page;
}

async function main() {
  assert.ok(WEBHOOKD && fs.existsSync(WEBHOOKD), `usage: console_test.js WEBHOOKD [SHOT_DIR] (no ${WEBHOOKD})`);
  fs.mkdirSync(SHOT_DIR, { recursive: true });
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  try {
    for (const scenario of [consoleWithoutKeys, consoleWithKeys]) {
      log(`== ${scenario.name}`);
      try {
        await scenario(browser);
      } catch (error) {
        if (currentPage && !currentPage.isClosed()) {
          await shot(currentPage, `failed-${scenario.name}`).catch(() => {});
          const body = await currentPage.$eval('main', (m) => m.innerText).catch(() => '');
          console.error(`--- the page when ${scenario.name} failed:\n${body}`);
        }
        throw error;
      }
      log(`ok ${scenario.name}`);
    }
  } finally {
    await browser.close();
  }
  assert.deepEqual(problems, [], 'no script errors in the page');
  log(`screenshots in ${SHOT_DIR}`);
}

let failed = false;
main().catch((error) => {
  failed = true;
  console.error('FAIL:', error.stack || error);
  for (const name of ['open', 'keyed']) {
    const text = readLog(name);
    if (text) console.error(`--- ${name}/webhookd.log\n${text}`);
  }
}).finally(async () => {
  await Promise.all(children.map((child) => new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.on('exit', resolve);
    child.kill('SIGTERM');
  })));
  fs.rmSync(work, { recursive: true, force: true });
  if (!failed) log('PASS');
  // Receivers and keep-alive connections would keep node running.
  process.exit(failed ? 1 : 0);
});
