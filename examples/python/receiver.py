#!/usr/bin/python3
"""A webhook receiver that verifies X-Hub-Signature-256 (the bare hex
HMAC-SHA256 of the raw body, keyed with the endpoint secret).

  /usr/bin/python3 examples/python/receiver.py --port 8080 --secret s3cret

Prints "listening on PORT" first (useful with --port 0), then one JSON line
per request. Answers 200, or 401 to a missing or wrong signature. With
--count N it exits (status 0) after N verified deliveries.
"""

import argparse
import hashlib
import hmac
import http.server
import json
import sys
import threading


def make_handler(secret, state):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as webhookd's curl likes
        disable_nagle_algorithm = True  # or each answer waits ~40 ms

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            given = self.headers.get("X-Hub-Signature-256", "")
            verified = hmac.compare_digest(given.encode(), expected.encode())
            self.send_response(200 if verified else 401)
            self.send_header("Content-Length", "0")
            self.end_headers()
            print(json.dumps({
                "delivery_id": self.headers.get("X-Webhook-Id"),
                "event": self.headers.get("X-Webhook-Event"),
                "attempt": self.headers.get("X-Webhook-Attempt"),
                "verified": verified,
                "body": json.loads(body) if verified else None,
            }), flush=True)
            if verified:
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
    parser.add_argument("--secret", required=True)
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
