#!/usr/bin/env node
// A webhook receiver that verifies X-Hub-Signature-256 as the product
// documentation shows: the hex HMAC-SHA256 of the raw body, compared in
// constant time. During a secret rotation's grace, X-Hub-Signature-256 is
// signed with the previous secret and X-Hub-Signature-256-Next with the new
// one: a delivery is genuine when either matches the secret given here.
//
//   node examples/node/receiver.js --port 8080 --secret s3cret
//
// Prints "listening on PORT" first (useful with --port 0), then one JSON line
// per request, whose "signature" is "valid", "invalid", "unsigned" (no
// signature header: the endpoint has no secret) or "unchecked" (signed, but
// no --secret given). Answers 200, or 401 to a wrong signature and, when
// --secret is given, to an unsigned delivery. With --count N it exits
// (status 0) after N accepted deliveries.
'use strict';

const crypto = require('crypto');
const http = require('http');
const {parseArgs} = require('util');

const {values: args} = parseArgs({
  options: {
    host: {type: 'string', default: '127.0.0.1'},
    port: {type: 'string', default: '8080'},
    secret: {type: 'string'},
    count: {type: 'string', default: '0'},
  },
});

function matches(rawBody, signature) {
  const expected = crypto.createHmac('sha256', args.secret)
                       .update(rawBody).digest('hex');
  const given = Buffer.from(signature);
  return given.length === expected.length &&
         crypto.timingSafeEqual(given, Buffer.from(expected));
}

// "valid", "invalid", "unsigned" or "unchecked".
function check(rawBody, headers) {
  const signatures = [headers['x-hub-signature-256'],
                      headers['x-hub-signature-256-next']]
                         .filter((s) => s !== undefined);
  if (signatures.length === 0) return 'unsigned';
  if (!args.secret) return 'unchecked';
  return signatures.some((s) => matches(rawBody, s)) ? 'valid' : 'invalid';
}

let verified = 0;
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    const signature = check(body, req.headers);
    const ok = signature === 'valid' || signature === 'unchecked' ||
               (signature === 'unsigned' && !args.secret);
    res.writeHead(ok ? 200 : 401, {'Content-Length': 0});
    res.end();
    console.log(JSON.stringify({
      delivery_id: req.headers['x-webhook-id'],
      event: req.headers['x-webhook-event'],
      attempt: req.headers['x-webhook-attempt'],
      signature,
      verified: signature === 'valid',
      body: ok ? JSON.parse(body.toString()) : null,
    }));
    if (ok && ++verified === Number(args.count)) {
      server.close();
      server.closeAllConnections();
    }
  });
});
server.listen(Number(args.port), args.host, () => {
  console.log('listening on', server.address().port);
});
process.on('SIGINT', () => process.exit(0));
