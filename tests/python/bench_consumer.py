"""The baselines of the end-to-end benchmark: the official Python consumer doing hubwasm's
json-filter work (parse the seed event, keep value >= 50) with Blob checkpoints.

  --mode batch (default): `receive_batch`, batches of up to 1000, prefetch 3000, one checkpoint
                          per batch: the Python consumer tuned like hubwasm runs.
  --mode event:           `receive` with `on_event`, a checkpoint after every event: the seed's
                          eventprocessor_consumer.py.

Prints one JSON object: {"events": N, "kept": K, "seconds": S} where S runs from the first
event received to the last (start-up excluded, like the hubwasm side).
"""
import argparse
import json
import sys
import threading
import time

from azure.eventhub import EventHubConsumerClient
from azure.eventhub.extensions.checkpointstoreblob import BlobCheckpointStore
from azure.storage.blob import BlobServiceClient


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--conn", required=True)
    p.add_argument("--consumer-group", default="$Default")
    p.add_argument("--expect", type=int, required=True)
    p.add_argument("--storage", required=True, help="storage connection string (Azurite's, from the bench)")
    p.add_argument("--container", default="bench-checkpoints")
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--mode", choices=["batch", "event"], default="batch")
    args = p.parse_args()

    service = BlobServiceClient.from_connection_string(args.storage)
    try:
        service.create_container(args.container)
    except Exception:  # already there
        pass
    store = BlobCheckpointStore.from_connection_string(args.storage, args.container)
    client = EventHubConsumerClient.from_connection_string(
        args.conn, consumer_group=args.consumer_group, checkpoint_store=store
    )
    state = {"events": 0, "kept": 0, "first": None, "last": None}
    lock = threading.Lock()
    done = threading.Event()

    def on_event_batch(context, events):
        if not events:
            return
        kept = 0
        for event in events:
            try:
                body = json.loads(event.body_as_str())
            except ValueError:
                continue
            if body.get("value", 0) >= 50:
                kept += 1
        context.update_checkpoint(events[-1])
        count(len(events), kept)

    def on_event(context, event):
        if event is None:
            return
        kept = 0
        try:
            if json.loads(event.body_as_str()).get("value", 0) >= 50:
                kept = 1
        except ValueError:
            pass
        context.update_checkpoint(event)
        count(1, kept)

    def count(events, kept):
        now = time.time()
        with lock:
            if state["first"] is None:
                state["first"] = now
            state["last"] = now
            state["events"] += events
            state["kept"] += kept
            if state["events"] >= args.expect:
                done.set()

    if args.mode == "batch":
        target = lambda: client.receive_batch(  # noqa: E731
            on_event_batch=on_event_batch,
            max_batch_size=1000,
            max_wait_time=1,
            starting_position="-1",
            prefetch=3000,
        )
    else:
        target = lambda: client.receive(on_event=on_event, starting_position="-1")  # noqa: E731
    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    if not done.wait(args.timeout):
        print(f"only {state['events']} of {args.expect} events in {args.timeout}s", file=sys.stderr)
        sys.exit(2)
    client.close()
    print(
        json.dumps(
            {
                "events": state["events"],
                "kept": state["kept"],
                "seconds": round(state["last"] - state["first"], 3),
            }
        )
    )


main()
