// A Standard Webhooks receiver for endpoints created with
// --signature-scheme standard-webhooks: each delivery is verified by the
// npm packages `standardwebhooks` and `svix` (their own verify(), which
// checks webhook-signature over "id.timestamp.body" and refuses a
// webhook-timestamp more than 5 minutes off). Answers 200 when both accept
// it with one of the --secret values (give two during a rotation), 401
// otherwise, and prints one JSON line per request with each verdict, the
// webhook-* headers and the body (base64), so that a request can be sent
// again by hand.
//
//   node examples/node/standard_receiver.mjs --port 8083 --secret whsec_...
//
// A request to a path with ?clock_offset_s=N is verified as if it arrived N
// seconds later: a replayed delivery, for tests.
import http from 'node:http';
import { Webhook as StandardWebhook } from 'standardwebhooks';
import { Webhook as SvixWebhook } from 'svix';

function parseArgs(argv) {
  const args = { port: 8083, host: '127.0.0.1', secrets: [] };
  for (let i = 0; i < argv.length; i += 2) {
    const [name, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${name}: missing value`);
    if (name === '--port') args.port = Number(value);
    else if (name === '--host') args.host = value;
    else if (name === '--secret') args.secrets.push(value);
    else throw new Error(`unknown option ${name}`);
  }
  return args;
}

// What one library says of a request: "ok" or its error message.
function verdict(verify) {
  try {
    verify();
    return 'ok';
  } catch (error) {
    return `rejected: ${error.message}`;
  }
}

// Runs `fn` with Date.now() moved `offsetSeconds` ahead.
function withClockOffset(offsetSeconds, fn) {
  const realNow = Date.now;
  Date.now = () => realNow() + offsetSeconds * 1000;
  try {
    return fn();
  } finally {
    Date.now = realNow;
  }
}

const args = parseArgs(process.argv.slice(2));
const verifiers = args.secrets.map((secret) => ({
  standardwebhooks: new StandardWebhook(secret),
  svix: new SvixWebhook(secret),
}));

const server = http.createServer((request, response) => {
  const chunks = [];
  request.on('data', (chunk) => chunks.push(chunk));
  request.on('end', () => {
    // The raw bytes: a signature covers the body exactly as sent.
    const body = Buffer.concat(chunks).toString('utf8');
    const url = new URL(request.url, 'http://receiver');
    const offset = Number(url.searchParams.get('clock_offset_s') ?? 0);
    const headers = {
      'webhook-id': request.headers['webhook-id'],
      'webhook-timestamp': request.headers['webhook-timestamp'],
      'webhook-signature': request.headers['webhook-signature'],
    };
    let signature;
    let verdicts = [];
    if (headers['webhook-signature'] === undefined) {
      // An endpoint without a secret sends no signature header at all.
      signature = 'unsigned';
    } else {
      verdicts = withClockOffset(offset, () =>
        verifiers.map((v) => ({
          standardwebhooks: verdict(() => v.standardwebhooks.verify(body, headers)),
          svix: verdict(() => v.svix.verify(body, headers)),
        })));
      const accepted = verdicts.some(
        (v) => v.standardwebhooks === 'ok' && v.svix === 'ok');
      signature = accepted ? 'valid' : 'invalid';
    }
    // Unsigned requests are refused too once secrets are configured.
    const status = signature === 'valid' ||
        (signature === 'unsigned' && verifiers.length === 0) ? 200 : 401;
    response.writeHead(status, { 'Content-Type': 'text/plain' });
    response.end(status === 200 ? 'ok\n' : `${signature}\n`);
    console.log(JSON.stringify({
      path: request.url,
      signature,
      status,
      verdicts,
      headers,
      delivery_id: request.headers['x-webhook-id'] ?? null,
      body_base64: Buffer.from(body, 'utf8').toString('base64'),
    }));
  });
});

server.listen(args.port, args.host, () => {
  console.log(`listening on ${server.address().port}`);
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
