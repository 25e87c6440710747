"""Send events in the seed's JSON shape with the official producer (like the seed's producer.py).

Each event body is {"event_id": uuid4, "message_id": n, "timestamp": iso, "value": n*10,
"data": "Test message #n"} with application properties kind="test" and n=<int>.
With --batch all events go in one send_batch (split only if they exceed the link's max message size);
without it every event is its own send_batch call.

Output: {"sent": N, "batches": B, "partition_ids": [the event hub's partition ids], "message_ids": [...],
"partition_id": P|null, "partition_key": K|null}
"""
import json
import uuid
from datetime import datetime, timezone

from azure.eventhub import EventData, EventHubProducerClient

from eh_common import client_kwargs, done, parser, run, start_watchdog


def event(n):
    body = {
        "event_id": str(uuid.uuid4()),
        "message_id": n,
        "timestamp": datetime.now(timezone.utc).isoformat(),
        "value": n * 10,
        "data": f"Test message #{n}",
    }
    data = EventData(json.dumps(body))
    data.properties = {"kind": "test", "n": n}
    return data


def main():
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=10, help="number of events (default 10)")
    p.add_argument("--start", type=int, default=1, help="first message_id (default 1)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--partition-id", help="send to this partition")
    group.add_argument("--partition-key", help="let the service pick the partition from this key")
    p.add_argument("--batch", action="store_true", help="one send_batch for all events")
    args = p.parse_args()
    start_watchdog(args.deadline, "eh_send")

    target = {}
    if args.partition_id is not None:
        target["partition_id"] = args.partition_id
    if args.partition_key is not None:
        target["partition_key"] = args.partition_key

    ids = list(range(args.start, args.start + args.count))
    batches = 0
    client = EventHubProducerClient.from_connection_string(args.conn, **client_kwargs(args))
    with client:
        if args.batch:
            batch = client.create_batch(**target)
            for n in ids:
                try:
                    batch.add(event(n))
                except ValueError:  # over the link's max message size: send what we have, go on
                    client.send_batch(batch)
                    batches += 1
                    batch = client.create_batch(**target)
                    batch.add(event(n))
            if len(batch):
                client.send_batch(batch)
                batches += 1
        else:
            for n in ids:
                batch = client.create_batch(**target)
                batch.add(event(n))
                client.send_batch(batch)
                batches += 1
        partition_ids = client.get_partition_ids()
    done(
        {
            "sent": len(ids),
            "batches": batches,
            "partition_ids": partition_ids,
            "message_ids": ids,
            "partition_id": args.partition_id,
            "partition_key": args.partition_key,
        }
    )


run(main)
