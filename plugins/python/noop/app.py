"""noop in Python: accepts every batch without looking at it (the cost of a call and its copy)."""

import hubwasm


@hubwasm.plugin
class Noop:
    def handle_batch(self, ctx: hubwasm.Context, batch: hubwasm.Batch) -> None:
        pass
