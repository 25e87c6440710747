"""test-describe in Python: rejects the event at index `at` of each batch with a message
describing every field the guest library read (the Rust test-describe's format), so tests can
check that the host's batch layout and this library agree. Config: `at` (default 0).
"""

from typing import Any

import hubwasm


def rust_debug(value: Any) -> str:
    # Rust's `{:?}` of an Option<String>, as the Rust plugin prints it.
    return "None" if value is None else f'Some("{value}")'


def describe_value(key: str, value: Any) -> str:
    if value is None:
        return f"{key}=null"
    if isinstance(value, bool):
        return f"{key}=bool:{str(value).lower()}"
    if isinstance(value, int):
        return f"{key}=int:{value}"
    if isinstance(value, float):
        return f"{key}=double:{value}"
    if isinstance(value, bytes):
        return f"{key}=binary:[{', '.join(str(b) for b in value)}]"
    return f"{key}=text:{value}"


def describe(ctx: hubwasm.Context, event: hubwasm.Event) -> str:
    properties = ",".join(describe_value(k, v) for k, v in event.properties.items())
    return (
        f"partition={ctx.namespace}/{ctx.event_hub}/{ctx.consumer_group}/{ctx.partition_id} "
        f"seq={event.sequence_number} offset={event.offset} enqueued={event.enqueued_time_ms} "
        f"body={event.body.decode('utf-8', 'replace')} key={rust_debug(event.partition_key)} "
        f"content_type={rust_debug(event.content_type)} "
        f"correlation_id={rust_debug(event.correlation_id)} "
        f"message_id={rust_debug(event.message_id)} properties=[{properties}]"
    )


@hubwasm.plugin
class Describe:
    def __init__(self, config: hubwasm.Config):
        self.at = config.int("at", 0)

    def handle_batch(self, ctx: hubwasm.Context, batch: hubwasm.Batch) -> None:
        if self.at < len(batch):
            error = hubwasm.Reject(describe(ctx, batch[self.at]))
            error.index = self.at  # type: ignore[attr-defined]
            raise error
