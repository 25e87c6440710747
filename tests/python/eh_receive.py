"""Receive events with the official consumer (its load balancer claims every partition)."""
import threading

from azure.eventhub import EventHubConsumerClient
from eh_common import done, parser

p = parser(__doc__)
p.add_argument("--expect", type=int, required=True, help="stop after this many events")
p.add_argument("--starting-position", default="-1", help='"-1", "@latest" or a sequence number')
p.add_argument("--inclusive", action="store_true")
p.add_argument("--partition-id")
p.add_argument("--consumer-group", default="$Default")
p.add_argument("--timeout", type=float, default=30)
p.add_argument("--owner-level", type=int, help="epoch: a higher one takes the partition over")
args = p.parse_args()

position = args.starting_position
if position not in ("-1", "@latest"):
    position = int(position)

client = EventHubConsumerClient.from_connection_string(args.conn, consumer_group=args.consumer_group)
events = []
errors = []
lock = threading.Lock()


def text(v):
    return v.decode() if isinstance(v, bytes) else v


def on_event(context, event):
    with lock:
        events.append(
            {
                "partition": context.partition_id,
                "sequence_number": event.sequence_number,
                "offset": event.offset,
                "body": event.body_as_str(),
                "partition_key": text(event.partition_key),
                "properties": {text(k): text(v) for k, v in (event.properties or {}).items()},
                "enqueued_time": event.enqueued_time,
            }
        )
        if len(events) >= args.expect:
            threading.Thread(target=client.close).start()


def on_error(context, error):
    errors.append(repr(error))


timer = threading.Timer(args.timeout, client.close)
timer.start()
kwargs = {"starting_position": position, "starting_position_inclusive": args.inclusive}
if args.partition_id is not None:
    kwargs["partition_id"] = args.partition_id
if args.owner_level is not None:
    kwargs["owner_level"] = args.owner_level
with client:
    client.receive(on_event=on_event, on_error=on_error, **kwargs)
timer.cancel()
done({"received": len(events), "events": events, "errors": errors})
