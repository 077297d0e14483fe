#!/usr/bin/python3
"""A webhook receiver that verifies X-Hub-Signature-256 (the bare hex
HMAC-SHA256 of the raw body, keyed with the endpoint secret).

  /usr/bin/python3 examples/python/receiver.py --port 8080 --secret s3cret

During a secret rotation's grace, X-Hub-Signature-256 is signed with the
previous secret and X-Hub-Signature-256-Next with the new one: a delivery is
genuine when either matches the secret given here.

Prints "listening on PORT" first (useful with --port 0), then one JSON line
per request, whose "signature" is "valid", "invalid", "unsigned" (no
signature header: the endpoint has no secret) or "unchecked" (signed, but no
--secret given). Answers 200, or 401 to a wrong signature and, when --secret
is given, to an unsigned delivery. With --count N it exits (status 0) after
N accepted deliveries.
"""

import argparse
import hashlib
import hmac
import http.server
import json
import sys
import threading


def check(secret, body, headers):
    """ "valid", "invalid", "unsigned" or "unchecked"."""
    signatures = [headers.get(name) for name in
                  ("X-Hub-Signature-256", "X-Hub-Signature-256-Next")]
    signatures = [s for s in signatures if s is not None]
    if not signatures:
        return "unsigned"
    if not secret:
        return "unchecked"
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    for given in signatures:
        if hmac.compare_digest(given.encode(), expected.encode()):
            return "valid"
    return "invalid"


def make_handler(secret, state):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as webhookd's curl likes
        disable_nagle_algorithm = True  # or each answer waits ~40 ms

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            signature = check(secret, body, self.headers)
            accepted = signature in ("valid", "unchecked") or (
                signature == "unsigned" and not secret)
            self.send_response(200 if accepted else 401)
            self.send_header("Content-Length", "0")
            self.end_headers()
            print(json.dumps({
                "delivery_id": self.headers.get("X-Webhook-Id"),
                "event": self.headers.get("X-Webhook-Event"),
                "attempt": self.headers.get("X-Webhook-Attempt"),
                "signature": signature,
                "verified": signature == "valid",
                "body": json.loads(body) if accepted else None,
            }), flush=True)
            if accepted:
                with state["lock"]:
                    state["verified"] += 1
                    if state["verified"] == state["count"]:
                        state["done"].set()

        def log_message(self, *args):
            pass

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--secret", default="",
                        help="endpoint secret; without it nothing is verified")
    parser.add_argument("--count", type=int, default=0,
                        help="exit after this many verified deliveries")
    args = parser.parse_args()

    state = {"verified": 0, "count": args.count, "lock": threading.Lock(),
             "done": threading.Event()}
    server = http.server.ThreadingHTTPServer((args.host, args.port),
                                             make_handler(args.secret, state))
    server.daemon_threads = True
    print("listening on", server.server_address[1], flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        state["done"].wait()  # Forever unless --count.
    except KeyboardInterrupt:
        pass
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
