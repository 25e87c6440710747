"""Receive events with the official consumer (EventHubConsumerClient.receive; its load balancer with
the default in-memory checkpoint store claims every partition, or only --partition-id).

Stops when --expect events arrived or after --timeout seconds. With --expect 0 it always listens for
the whole --timeout (to show that nothing arrives). Reaching the timeout is not an error (the result
says "timed_out": true) unless --strict is given, then fewer than --expect events exit with code 2.
The JSON result is printed either way:
{"received": n, "expected": N, "timed_out": bool, "seconds": s, "errors": ["partition P: Type: message", ...],
 "events": [{"partition", "sequence_number", "offset", "enqueued_time", "body", "properties",
             "partition_key", "system_properties"}]}
"""
import sys
import threading
import time

from azure.eventhub import EventHubConsumerClient

from eh_common import EXIT_UNMET, client_kwargs, describe, done, fail, jsonable, parser, run, start_watchdog


def position(text):
    """"-1" / "@latest" / other strings are offsets; integers are sequence numbers; ISO times are enqueued times."""
    if text in ("-1", "@latest"):
        return text
    try:
        return int(text)
    except ValueError:
        pass
    from datetime import datetime, timezone

    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def main():
    p = parser(__doc__.split("\n\n")[0], deadline=None)
    p.add_argument("--expect", type=int, required=True, help="stop after this many events")
    p.add_argument(
        "--starting-position",
        default="-1",
        help='"-1" (earliest, default), "@latest", a sequence number, or an ISO-8601 enqueued time',
    )
    p.add_argument("--inclusive", action="store_true", help="starting_position_inclusive=True")
    p.add_argument("--partition-id", help="receive from this partition only")
    p.add_argument("--consumer-group", default="$Default")
    p.add_argument("--timeout", type=float, default=30, help="seconds to wait for the events (default 30)")
    p.add_argument("--strict", action="store_true", help="exit 2 if fewer than --expect events arrived")
    p.add_argument("--prefetch", type=int, default=None, help="the SDK's prefetch (link credit; default 300)")
    p.add_argument("--owner-level", type=int, default=None, help="owner_level (sent as the com.microsoft:epoch link property)")
    p.add_argument(
        "--track-last-enqueued",
        action="store_true",
        help="track_last_enqueued_event_properties=True (desired capability com.microsoft:enable-receiver-runtime-metric)",
    )
    args = p.parse_args()
    # Leave time after --timeout for the SDK to detach and close every partition's connection.
    start_watchdog(args.deadline or min(args.timeout + 12, 58.0), "eh_receive")

    client = EventHubConsumerClient.from_connection_string(
        args.conn, consumer_group=args.consumer_group, **client_kwargs(args)
    )
    events = []
    errors = []
    lock = threading.Lock()
    finished = threading.Event()
    state = {"timed_out": False}

    def stop():
        if not finished.is_set():
            finished.set()
            threading.Thread(target=client.close, daemon=True).start()

    def on_event(context, event):
        with lock:
            events.append(
                {
                    "partition": context.partition_id,
                    "sequence_number": event.sequence_number,
                    "offset": event.offset,
                    "enqueued_time": event.enqueued_time,
                    "body": event.body_as_str(),
                    "partition_key": event.partition_key,
                    "properties": event.properties or {},
                    "system_properties": {
                        k: v for k, v in (event.system_properties or {}).items() if k != b"x-opt-partition-key"
                    },
                }
            )
            if args.track_last_enqueued:
                last = context.last_enqueued_event_properties or {}
                events[-1]["last_enqueued"] = {
                    "sequence_number": last.get("sequence_number"),
                    "offset": last.get("offset"),
                    "enqueued_time": last.get("enqueued_time"),
                    "retrieval_time": last.get("retrieval_time"),
                }
            if args.expect > 0 and len(events) >= args.expect:
                stop()

    def on_error(context, error):
        pid = getattr(context, "partition_id", None)
        errors.append(f"partition {pid}: {describe(error)}")
        print(f"on_error: partition {pid}: {describe(error)}", file=sys.stderr)

    def on_timeout():
        state["timed_out"] = not finished.is_set() and args.expect > 0
        stop()

    timer = threading.Timer(args.timeout, on_timeout)
    timer.daemon = True
    timer.start()
    kwargs = {
        "starting_position": position(args.starting_position),
        "starting_position_inclusive": args.inclusive,
        "on_error": on_error,
    }
    if args.partition_id is not None:
        kwargs["partition_id"] = args.partition_id
    if args.prefetch is not None:
        kwargs["prefetch"] = args.prefetch
    if args.owner_level is not None:
        kwargs["owner_level"] = args.owner_level
    if args.track_last_enqueued:
        kwargs["track_last_enqueued_event_properties"] = True
    started = time.time()
    with client:
        client.receive(on_event=on_event, **kwargs)
    timer.cancel()
    with lock:
        got = list(events)
    result = {
        "received": len(got),
        "expected": args.expect,
        "timed_out": state["timed_out"],
        "seconds": round(time.time() - started, 3),
        "errors": errors,
        "events": got,
    }
    if len(got) < args.expect and args.strict:
        fail(
            f"received {len(got)} of {args.expect} events in {args.timeout:.0f}s"
            + (f"; errors: {errors}" if errors else ""),
            code=EXIT_UNMET,
            result=jsonable(result),
        )
    done(result)


run(main)
