"""Print event hub and partition properties read through the official SDK's $management calls."""
from azure.eventhub import EventHubProducerClient
from eh_common import done, parser

args = parser(__doc__).parse_args()
client = EventHubProducerClient.from_connection_string(args.conn)
with client:
    hub = client.get_eventhub_properties()
    partitions = {pid: client.get_partition_properties(pid) for pid in hub["partition_ids"]}
done({"name": hub["eventhub_name"], "partition_ids": hub["partition_ids"], "partitions": partitions})
