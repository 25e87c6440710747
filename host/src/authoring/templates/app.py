"""{{name}}: a hubwasm plugin in Python.

Build: hubwasm plugin build .
Test:  hubwasm plugin test {{wasm}} --events events/sample.jsonl
"""

import hubwasm


@hubwasm.plugin
class Plugin:
    def __init__(self, config: hubwasm.Config) -> None:
        # `hubwasm run` passes [eventhub.plugin_config]; `plugin test` passes --config k=v.
        self.min_value = config.int("min_value", 0)
        self.kept = 0

    def handle(self, ctx: hubwasm.Context, event: hubwasm.Event) -> None:
        try:
            doc = event.json()
        except ValueError as e:
            # Poison: retrying will not help. The host dead-letters it (or halts).
            raise hubwasm.Reject(f"not JSON: {e}")
        if isinstance(doc, dict) and isinstance(doc.get("value"), int) and doc["value"] >= self.min_value:
            self.kept += 1
        # Returning normally lets the host checkpoint past the event. For a transient
        # failure (a service down), raise hubwasm.Retry("why", after_ms=1000).

    def closed(self, ctx: hubwasm.Context, reason: hubwasm.CloseReason) -> None:
        hubwasm.log.info("{{name}} summary", partition=ctx.partition_id, kept=self.kept)
