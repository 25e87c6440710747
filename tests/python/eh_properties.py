"""Print event hub and partition properties read through the official SDK's $management calls.

Output: {"name": ..., "created_at": ..., "partition_ids": [...], "partitions": {id: {...}}}
where each partition is `get_partition_properties(id)` (eventhub_name, id, beginning_sequence_number,
last_enqueued_sequence_number, last_enqueued_offset, last_enqueued_time_utc, is_empty).
"""
from azure.eventhub import EventHubProducerClient

from eh_common import client_kwargs, done, parser, run, start_watchdog


def main():
    args = parser(__doc__.split("\n\n")[0]).parse_args()
    start_watchdog(args.deadline, "eh_properties")
    client = EventHubProducerClient.from_connection_string(args.conn, **client_kwargs(args))
    with client:
        hub = client.get_eventhub_properties()
        partitions = {pid: client.get_partition_properties(pid) for pid in hub["partition_ids"]}
    done(
        {
            "name": hub["eventhub_name"],
            "created_at": hub.get("created_at"),
            "partition_ids": hub["partition_ids"],
            "partitions": partitions,
        }
    )


run(main)
