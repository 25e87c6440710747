"""The official Python Blob checkpoint store (`azure-eventhub-checkpointstoreblob`), driven by
`tests/checkpoint_blob.rs` to check that hubwasm's Blob store and the official one read each
other's checkpoints and ownerships in a shared container.

    blob_checkpoints.py --conn <storage connection string> --container C \
        --namespace NS --hub H --consumer-group CG <command> [options]

Commands:
  list                                   checkpoints and ownerships, as the store lists them
  checkpoint --partition P --sequence-number N --offset O
                                         update_checkpoint
  claim --partition P --owner O [--etag E]
                                         claim_ownership (without --etag: a new claim)
  relinquish --partition P               claim with owner "" and the current etag, as the
                                         official processors do when they stop
  names                                  the raw blob names in the container

Prints exactly one JSON object as the last line of stdout; exits 0 on success, 1 on an error
(reason on stderr), 3 if the watchdog fired.
"""
import argparse
import json
import os
import sys
import threading
import traceback

from azure.eventhub.extensions.checkpointstoreblob import BlobCheckpointStore
from azure.storage.blob import ContainerClient

EXIT_ERROR = 1
EXIT_HUNG = 3


def watchdog(seconds):
    def fire():
        sys.stderr.write(f"watchdog: still running after {seconds:.0f}s\n")
        sys.stderr.flush()
        os._exit(EXIT_HUNG)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()


def ownership_json(o):
    return {
        "fully_qualified_namespace": o["fully_qualified_namespace"],
        "eventhub_name": o["eventhub_name"],
        "consumer_group": o["consumer_group"],
        "partition_id": o["partition_id"],
        "owner_id": o["owner_id"],
        "etag": o.get("etag"),
        "last_modified_time": o.get("last_modified_time"),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--conn", required=True, help="storage connection string")
    p.add_argument("--container", required=True)
    p.add_argument("--namespace", required=True, help="fully qualified Event Hubs namespace")
    p.add_argument("--hub", required=True, help="event hub name")
    p.add_argument("--consumer-group", required=True)
    p.add_argument("--deadline", type=float, default=50.0, help="watchdog, seconds")
    p.add_argument("command", choices=["list", "checkpoint", "claim", "relinquish", "names"])
    p.add_argument("--partition")
    p.add_argument("--sequence-number", type=int)
    p.add_argument("--offset")
    p.add_argument("--owner")
    p.add_argument("--etag")
    args = p.parse_args()
    watchdog(args.deadline)

    store = BlobCheckpointStore.from_connection_string(args.conn, args.container)
    names = {
        "fully_qualified_namespace": args.namespace,
        "eventhub_name": args.hub,
        "consumer_group": args.consumer_group,
    }
    scope = (args.namespace, args.hub, args.consumer_group)

    if args.command == "list":
        result = {
            "checkpoints": list(store.list_checkpoints(*scope)),
            "ownerships": [ownership_json(o) for o in store.list_ownership(*scope)],
        }
    elif args.command == "checkpoint":
        store.update_checkpoint(
            dict(names, partition_id=args.partition, sequence_number=args.sequence_number, offset=args.offset)
        )
        result = {"ok": True}
    elif args.command == "claim":
        ownership = dict(names, partition_id=args.partition, owner_id=args.owner)
        if args.etag:
            ownership["etag"] = args.etag
        result = {"claimed": [ownership_json(o) for o in store.claim_ownership([ownership])]}
    elif args.command == "relinquish":
        current = [o for o in store.list_ownership(*scope) if o["partition_id"] == args.partition]
        if not current:
            raise SystemExit(f"partition {args.partition} has no ownership blob")
        ownership = dict(current[0], owner_id="")
        result = {"claimed": [ownership_json(o) for o in store.claim_ownership([ownership])]}
    else:
        container = ContainerClient.from_connection_string(args.conn, args.container)
        result = {"names": sorted(b.name for b in container.list_blobs())}
    print(json.dumps(result))


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001 - report any SDK failure as one line
        traceback.print_exc(file=sys.stderr)
        sys.stderr.write(f"error: {type(e).__name__}: {e}\n")
        sys.exit(EXIT_ERROR)
