#!/usr/bin/env node
// webhookd from Node.js: creates an endpoint, submits an event, and follows
// its delivery live through StreamDeliveries until it has ended.
//
//   node examples/node/client.js --server 127.0.0.1:50051 \
//       --url http://127.0.0.1:8080/hook --secret s3cret
//
// Exits 0 once the delivery has succeeded, 1 otherwise.
'use strict';

const {parseArgs} = require('util');
const {grpc, loadService} = require('./webhookd');

const {values: args} = parseArgs({
  options: {
    server: {type: 'string', default: '127.0.0.1:50051'},
    url: {type: 'string'},
    secret: {type: 'string', default: ''},
    thread: {type: 'string', default: 'node-example'},
    'api-key': {type: 'string', default: ''},
    timeout: {type: 'string', default: '30'},
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

async function main() {
  const {endpoint} = await call('CreateEndpoint', {
    endpoint: {
      threadId: args.thread, userId: 42, name: 'Node example', url: args.url,
      secret: args.secret,
      headers: [{name: 'X-Source', value: 'node-example'}],
    },
  });
  console.log('created endpoint', endpoint.id);

  // Subscribe first, so that no update is missed.
  const stream = client.StreamDeliveries(
      {endpointId: endpoint.id}, metadata,
      {deadline: Date.now() + Number(args.timeout) * 1000});
  const outcome = new Promise((resolve) => {
    stream.on('data', ({delivery: d}) => {
      console.log('delivery', d.id, d.status, 'attempts', d.attempts,
                  'code', d.responseCode);
      if (d.status === 'DELIVERY_STATUS_SUCCESS') resolve(0);
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

  const submitted = await call('SubmitEvent', {
    threadId: args.thread, userId: 42,
    triggerId: '550e8400-e29b-41d4-a716-446655440000',
    triggerName: 'Daily Report Schedule',
    execution: {
      jobId: 'job-1', runId: 'run-1', prompt: "Generate today's sales summary",
      run: {totalCostUsd: 0.0342, totalTokens: 4521},
    },
  });
  console.log('submitted event', submitted.eventId, 'deliveries',
              submitted.deliveryIds);
  const code = await outcome;
  stream.cancel();
  client.close();
  return code;
}

main().then((code) => process.exit(code), (error) => {
  console.error(error.message);
  process.exit(1);
});
