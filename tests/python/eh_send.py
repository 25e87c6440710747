"""Send events in the seed's JSON shape with the official producer (like the seed's producer.py)."""
import json
import uuid
from datetime import datetime, timezone

from azure.eventhub import EventData, EventHubProducerClient
from eh_common import done, parser

p = parser(__doc__)
p.add_argument("--count", type=int, default=10)
p.add_argument("--start", type=int, default=1, help="first message_id")
group = p.add_mutually_exclusive_group()
group.add_argument("--partition-id")
group.add_argument("--partition-key")
p.add_argument("--batch", action="store_true", help="one send_batch for all events")
args = p.parse_args()


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


target = {}
if args.partition_id is not None:
    target["partition_id"] = args.partition_id
if args.partition_key is not None:
    target["partition_key"] = args.partition_key

client = EventHubProducerClient.from_connection_string(args.conn)
with client:
    ids = range(args.start, args.start + args.count)
    if args.batch:
        batch = client.create_batch(**target)
        for n in ids:
            batch.add(event(n))
        client.send_batch(batch)
    else:
        for n in ids:
            batch = client.create_batch(**target)
            batch.add(event(n))
            client.send_batch(batch)
done({"sent": args.count})
