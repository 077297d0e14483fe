#!/usr/bin/python3
"""webhookd from Python: creates an endpoint, submits an event, and follows
its delivery live through StreamDeliveries until it has ended. With
--batch N it submits N events in one SubmitEvents call instead, each with
its own idempotency key, and follows all N deliveries.

It can be run again and again: each run uses a thread of its own (unless
--thread names one), first deletes any endpoint an earlier run left in that
thread, and always deletes the endpoint it created before it exits.

  /usr/bin/python3 examples/python/client.py --server 127.0.0.1:50051 \
      --url http://127.0.0.1:8080/hook --secret s3cret

Exits 0 once the deliveries have succeeded, 1 otherwise.
"""

import argparse
import sys
import uuid

import grpc

sys.dont_write_bytecode = True  # No __pycache__ beside the example.
import webhookd_stubs  # noqa: E402

pb2, pb2_grpc = webhookd_stubs.load()

ENDPOINT_NAME = "Python example"


def delete_leftovers(stub, thread, metadata):
    """Deletes the endpoints an earlier run left in `thread`."""
    token = ""
    while True:
        page = stub.ListEndpoints(
            pb2.ListEndpointsRequest(thread_id=thread, page_token=token),
            timeout=10, metadata=metadata)
        for endpoint in page.endpoints:
            if endpoint.name == ENDPOINT_NAME:
                stub.DeleteEndpoint(pb2.DeleteEndpointRequest(id=endpoint.id),
                                    timeout=10, metadata=metadata)
                print("deleted leftover endpoint", endpoint.id, flush=True)
        token = page.next_page_token
        if not token:
            return


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="127.0.0.1:50051")
    parser.add_argument("--url", required=True, help="where deliveries go")
    parser.add_argument("--secret", default="", help="endpoint secret")
    parser.add_argument("--thread",
                        default="python-example-" + uuid.uuid4().hex[:12],
                        help="thread id (default: a new one for each run)")
    parser.add_argument("--api-key", default="", help="if the server needs one")
    parser.add_argument("--timeout", type=float, default=30,
                        help="seconds to wait for the deliveries")
    parser.add_argument("--batch", type=int, default=0,
                        help="submit this many events in one SubmitEvents "
                        "call (default: one SubmitEvent)")
    args = parser.parse_args()

    metadata = []
    if args.api_key:
        metadata.append(("authorization", "Bearer " + args.api_key))
    with grpc.insecure_channel(args.server) as channel:
        stub = pb2_grpc.WebhookServiceStub(channel)
        delete_leftovers(stub, args.thread, metadata)
        endpoint = stub.CreateEndpoint(
            pb2.CreateEndpointRequest(endpoint=pb2.Endpoint(
                thread_id=args.thread, user_id=42, name=ENDPOINT_NAME,
                url=args.url, secret=args.secret,
                headers=[pb2.Header(name="X-Source", value="python-example")])),
            timeout=10, metadata=metadata).endpoint
        print("created endpoint", endpoint.id, flush=True)
        try:
            return follow_deliveries(stub, args, endpoint, metadata)
        finally:
            stub.DeleteEndpoint(pb2.DeleteEndpointRequest(id=endpoint.id),
                                timeout=10, metadata=metadata)
            print("deleted endpoint", endpoint.id, flush=True)


def sample_event(args, run_id):
    """An execution result as the workbench submits it."""
    return pb2.SubmitEventRequest(
        thread_id=args.thread, user_id=42,
        trigger_id="550e8400-e29b-41d4-a716-446655440000",
        trigger_name="Daily Report Schedule",
        execution=pb2.Execution(
            job_id="job-1", run_id=run_id,
            prompt="Generate today's sales summary",
            # messages_json: each message as JSON text, sent byte for byte
            # (key order and big numbers kept), unlike messages.
            run=pb2.Run(total_cost_usd=0.0342, total_tokens=4521,
                        messages_json=[
                            '{"role": "assistant", "content": '
                            '"Sales were up 4%.", '
                            '"request_id": 12345678901234567890}'])))


def submit(stub, args, metadata):
    """Submits the event(s); returns their delivery ids, or None."""
    if args.batch <= 0:
        submitted = stub.SubmitEvent(sample_event(args, "run-1"), timeout=10,
                                     metadata=metadata)
        print("submitted event", submitted.event_id, "deliveries",
              list(submitted.delivery_ids), flush=True)
        return list(submitted.delivery_ids)
    # One call, one synced write; each event has its own idempotency key
    # (sending the batch again would replay, not duplicate) and result.
    batch_id = uuid.uuid4().hex[:12]
    events = []
    for i in range(args.batch):
        event = sample_event(args, "run-%d" % (i + 1))
        event.idempotency_key = "%s-%d" % (batch_id, i)
        events.append(event)
    results = stub.SubmitEvents(pb2.SubmitEventsRequest(events=events),
                                timeout=10, metadata=metadata).results
    delivery_ids = []
    for i, result in enumerate(results):
        if result.code != 0:
            print("event", i, "refused:", result.message, file=sys.stderr)
            return None
        print("submitted event", result.response.event_id, "deliveries",
              list(result.response.delivery_ids), flush=True)
        delivery_ids.extend(result.response.delivery_ids)
    return delivery_ids


def follow_deliveries(stub, args, endpoint, metadata):
    """Submits and follows the deliveries; returns the exit code."""
    # Subscribe first, so that no update is missed.
    updates = stub.StreamDeliveries(
        pb2.StreamDeliveriesRequest(endpoint_id=endpoint.id),
        timeout=args.timeout, metadata=metadata)
    try:
        updates.initial_metadata()  # Sent once the server has subscribed.
        delivery_ids = submit(stub, args, metadata)
        if delivery_ids is None:
            return 1
        if len(delivery_ids) != max(args.batch, 1):
            print("expected one delivery per event", file=sys.stderr)
            return 1
        waiting = set(delivery_ids)
        for update in updates:
            d = update.delivery
            status = pb2.DeliveryStatus.Name(d.status)
            print("delivery", d.id, status, "attempts", d.attempts,
                  "code", d.response_code, flush=True)
            if status == "DELIVERY_STATUS_SUCCESS":
                waiting.discard(d.id)
                if not waiting:
                    return 0
            if status == "DELIVERY_STATUS_FAILED":
                print("delivery failed:", d.last_error, file=sys.stderr)
                return 1
    finally:
        updates.cancel()
    return 1


if __name__ == "__main__":
    sys.exit(main())
