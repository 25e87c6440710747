"""An official Python EventProcessor (EventHubConsumerClient + BlobCheckpointStore) that shares a
consumer group and a Blob container with `hubwasm run`, driven by tests/host_run.rs: it resumes
from the checkpoints hubwasm wrote, and hubwasm resumes from the ones it writes.

    blob_consumer.py --conn <event hub connection string> --storage <storage connection string>
        --container C --consumer-group CG (--expect N | --duration S)

The official processors name their blobs by the endpoint's host *as written*; for an emulator
that includes the port (`localhost:5673`), while hubwasm, like every processor on the real
service, uses the host name alone (`localhost`) so a changing emulator port does not orphan the
checkpoints. To share the blobs, this script connects to the port through
`custom_endpoint_address` and keeps the host name alone in the connection string.

Checkpoints after every event; stops (releasing its ownerships) once it has received N events
and waited --settle seconds more to show that nothing else arrives, or after --duration seconds
(to run beside other processors of the group); then prints one JSON object:
{"namespace": ..., "events": [[partition, sequence_number], ...]}. Exits 2 if fewer than N
events arrived within --timeout, 3 if the watchdog fired.
"""
import argparse
import json
import os
import sys
import threading
import time

from azure.eventhub import EventHubConsumerClient
from azure.eventhub.extensions.checkpointstoreblob import BlobCheckpointStore


def without_port(conn):
    """The connection string with its endpoint's port removed, and the endpoint with the port."""
    parts = []
    endpoint = None
    for part in conn.split(";"):
        key, _, value = part.partition("=")
        if key.lower() == "endpoint":
            address = value.split("://", 1)[-1].rstrip("/")
            host, _, port = address.partition(":")
            if port:
                endpoint = f"sb://{host}:{port}"
            part = f"{key}=sb://{host}/"
        parts.append(part)
    return ";".join(parts), endpoint


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--conn", required=True)
    p.add_argument("--storage", required=True, help="storage connection string")
    p.add_argument("--container", required=True)
    p.add_argument("--consumer-group", default="$Default")
    p.add_argument("--expect", type=int, help="stop after this many events")
    p.add_argument("--duration", type=float, help="or stop after this many seconds")
    p.add_argument("--settle", type=float, default=2.0, help="seconds to wait for unexpected extra events")
    p.add_argument("--timeout", type=float, default=60.0)
    args = p.parse_args()

    def fire():
        sys.stderr.write("watchdog: still running\n")
        os._exit(3)

    watchdog = threading.Timer(args.timeout + args.settle + 30, fire)
    watchdog.daemon = True
    watchdog.start()

    store = BlobCheckpointStore.from_connection_string(args.storage, args.container)
    conn, endpoint = without_port(args.conn)
    client = EventHubConsumerClient.from_connection_string(
        conn,
        custom_endpoint_address=endpoint,
        consumer_group=args.consumer_group,
        checkpoint_store=store,
        load_balancing_interval=1,
        load_balancing_strategy="greedy",
    )
    events = []
    lock = threading.Lock()
    enough = threading.Event()

    def on_event(context, event):
        if event is None:
            return
        context.update_checkpoint(event)
        with lock:
            events.append([context.partition_id, event.sequence_number])
            if args.expect is not None and len(events) >= args.expect:
                enough.set()

    worker = threading.Thread(
        target=lambda: client.receive(on_event=on_event, starting_position="-1"),
        daemon=True,
    )
    worker.start()
    if args.expect is not None:
        if not enough.wait(args.timeout):
            sys.stderr.write(f"only {len(events)} of {args.expect} events in {args.timeout}s: {events}\n")
            sys.exit(2)
        time.sleep(args.settle)
    else:
        time.sleep(args.duration or args.timeout)
    namespace = client._address.hostname  # what the processor names its blobs by
    client.close()
    with lock:
        print(json.dumps({"namespace": namespace, "events": events}))


main()
