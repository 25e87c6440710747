"""Expect the endpoint to refuse a connection string with a wrong key (an authentication error)."""
import sys

from azure.eventhub import EventHubProducerClient
from azure.eventhub.exceptions import AuthenticationError, ClientClosedError, EventHubError
from eh_common import done, parser

args = parser(__doc__).parse_args()
client = EventHubProducerClient.from_connection_string(args.conn, retry_total=0)
try:
    with client:
        client.get_eventhub_properties()
except AuthenticationError as e:
    done({"error_type": type(e).__name__, "message": str(e)})
except (EventHubError, ClientClosedError) as e:
    print(f"expected an AuthenticationError, got {type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(1)
print("the wrong key was accepted", file=sys.stderr)
sys.exit(1)
