"""json-filter in Python: the same semantics and config as the Rust json-filter.

Keeps the seed's events whose `value` lies in [min_value, max_value], counting kept and dropped
events; a body that is not a seed event is rejected (poison). A seed event is a UTF-8 JSON object
with string `event_id`, `timestamp` and `data` and integer `message_id` and `value` (no fraction
or exponent, within 64 bits); other fields are ignored; one of those five given twice, or
nesting deeper than 127 levels, is not.

Config: `min_value` (integer, default 50), `max_value` (integer, optional). The parsing lives
in seed.py.
"""

import hubwasm
from seed import seed_value


@hubwasm.plugin
class JsonFilter:
    def __init__(self, config: hubwasm.Config):
        self.min_value = config.int("min_value", 50)
        self.max_value = config.int("max_value")
        self.kept = 0
        self.dropped = 0

    def handle(self, ctx: hubwasm.Context, event: hubwasm.Event) -> None:
        try:
            value = seed_value(event.body)
        except (ValueError, UnicodeError, RecursionError) as e:
            raise hubwasm.Reject(f"body is not a seed event: {e}")
        if value >= self.min_value and (self.max_value is None or value <= self.max_value):
            self.kept += 1
        else:
            self.dropped += 1

    def closed(self, ctx: hubwasm.Context, reason: hubwasm.CloseReason) -> None:
        hubwasm.log.info(
            "json-filter summary",
            partition=ctx.partition_id,
            kept=self.kept,
            dropped=self.dropped,
        )
