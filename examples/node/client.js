#!/usr/bin/env node
// webhookd from Node.js: creates an endpoint, submits an event, and follows
// its delivery live through StreamDeliveries until it has ended. With
// --batch N it submits N events in one SubmitEvents call instead, each with
// its own idempotency key, and follows all N deliveries.
//
//   node examples/node/client.js --server 127.0.0.1:50051 \
//       --url http://127.0.0.1:8080/hook --secret s3cret
//
// Exits 0 once the deliveries have succeeded, 1 otherwise. It can be run again
// and again: each run uses a thread of its own (unless --thread names one),
// first deletes any endpoint an earlier run left in that thread, and always
// deletes the endpoint it created before it exits.
'use strict';

const {randomUUID} = require('crypto');
const {parseArgs} = require('util');
const {grpc, loadService} = require('./webhookd');

const {values: args} = parseArgs({
  options: {
    server: {type: 'string', default: '127.0.0.1:50051'},
    url: {type: 'string'},
    secret: {type: 'string', default: ''},
    // A new thread for each run: earlier runs' endpoints get no event.
    thread: {
      type: 'string',
      default: `node-example-${randomUUID().replace(/-/g, '').slice(0, 12)}`,
    },
    'api-key': {type: 'string', default: ''},
    timeout: {type: 'string', default: '30'},
    // Events to submit in one SubmitEvents call (0: one SubmitEvent).
    batch: {type: 'string', default: '0'},
  },
});
if (!args.url) {
  console.error('usage: client.js --url URL [--server HOST:PORT] [--secret S]');
  process.exit(2);
}

const WebhookService = loadService();
const client =
    new WebhookService(args.server, grpc.credentials.createInsecure());
const metadata = new grpc.Metadata();
if (args['api-key']) metadata.set('authorization', `Bearer ${args['api-key']}`);
const deadline = () => ({deadline: Date.now() + 10000});

// Promisified unary call with a 10 s deadline.
function call(method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, metadata, deadline(), (error, response) =>
      error ? reject(error) : resolve(response));
  });
}

const ENDPOINT_NAME = 'Node example';

// Deletes the endpoints an earlier run left in the thread.
async function deleteLeftovers() {
  let pageToken = '';
  do {
    const page =
        await call('ListEndpoints', {threadId: args.thread, pageToken});
    for (const endpoint of page.endpoints) {
      if (endpoint.name !== ENDPOINT_NAME) continue;
      await call('DeleteEndpoint', {id: endpoint.id});
      console.log('deleted leftover endpoint', endpoint.id);
    }
    pageToken = page.nextPageToken;
  } while (pageToken);
}

async function main() {
  await deleteLeftovers();
  const {endpoint} = await call('CreateEndpoint', {
    endpoint: {
      threadId: args.thread, userId: 42, name: ENDPOINT_NAME, url: args.url,
      secret: args.secret,
      headers: [{name: 'X-Source', value: 'node-example'}],
    },
  });
  console.log('created endpoint', endpoint.id);
  try {
    return await followDeliveries(endpoint);
  } finally {
    await call('DeleteEndpoint', {id: endpoint.id});
    console.log('deleted endpoint', endpoint.id);
  }
}

// An execution result as the workbench submits it.
function sampleEvent(runId) {
  return {
    threadId: args.thread, userId: 42,
    triggerId: '550e8400-e29b-41d4-a716-446655440000',
    triggerName: 'Daily Report Schedule',
    execution: {
      jobId: 'job-1', runId,
      prompt: "Generate today's sales summary",
      run: {
        totalCostUsd: 0.0342, totalTokens: 4521,
        // messagesJson: each message as JSON text, sent byte for byte
        // (key order and big numbers kept), unlike messages.
        messagesJson: [
          '{"role": "assistant", "content": "Sales were up 4%.", ' +
              '"request_id": 12345678901234567890}',
        ],
      },
    },
  };
}

// Submits the event(s); resolves to their delivery ids, or null.
async function submit() {
  const batch = Number(args.batch);
  if (batch <= 0) {
    const submitted = await call('SubmitEvent', sampleEvent('run-1'));
    console.log('submitted event', submitted.eventId, 'deliveries',
                submitted.deliveryIds);
    return submitted.deliveryIds;
  }
  // One call, one synced write; each event has its own idempotency key
  // (sending the batch again would replay, not duplicate) and result.
  const batchId = randomUUID();
  const events = Array.from({length: batch}, (_, i) => ({
    ...sampleEvent(`run-${i + 1}`), idempotencyKey: `${batchId}-${i}`,
  }));
  const {results} = await call('SubmitEvents', {events});
  const deliveryIds = [];
  for (const [i, result] of results.entries()) {
    if (result.code !== 0) {
      console.error('event', i, 'refused:', result.message);
      return null;
    }
    console.log('submitted event', result.response.eventId, 'deliveries',
                result.response.deliveryIds);
    deliveryIds.push(...result.response.deliveryIds);
  }
  return deliveryIds;
}

// Submits and follows the deliveries; resolves to the exit code.
async function followDeliveries(endpoint) {
  // Subscribe first, so that no update is missed.
  const stream = client.StreamDeliveries(
      {endpointId: endpoint.id}, metadata,
      {deadline: Date.now() + Number(args.timeout) * 1000});
  // Deliveries seen to succeed, and those the submit created (once known).
  const succeeded = new Set();
  let expected = null;
  let allSucceeded = () => {};
  const done = () => expected && expected.every((id) => succeeded.has(id));
  const outcome = new Promise((resolve) => {
    allSucceeded = () => done() && resolve(0);
    stream.on('data', ({delivery: d}) => {
      console.log('delivery', d.id, d.status, 'attempts', d.attempts,
                  'code', d.responseCode);
      if (d.status === 'DELIVERY_STATUS_SUCCESS') {
        succeeded.add(d.id);
        allSucceeded();
      }
      if (d.status === 'DELIVERY_STATUS_FAILED') {
        console.error('delivery failed:', d.lastError);
        resolve(1);
      }
    });
    stream.on('error', (error) => {
      if (error.code !== grpc.status.CANCELLED) console.error(error.message);
      resolve(1);
    });
    stream.on('end', () => resolve(1));
  });
  // The stream's headers arrive once the server has subscribed it.
  await new Promise((resolve) => stream.once('metadata', resolve));

  try {
    const deliveryIds = await submit();
    if (deliveryIds === null) return 1;
    if (deliveryIds.length !== Math.max(Number(args.batch), 1)) {
      console.error('expected one delivery per event');
      return 1;
    }
    expected = deliveryIds;
    allSucceeded();  // Some may have succeeded before the answer came.
    return await outcome;
  } finally {
    stream.cancel();
  }
}

main().then((code) => {
  client.close();
  process.exit(code);
}, (error) => {
  console.error(error.message);
  process.exit(1);
});
