"""fail-nth in Python: fails the event with one sequence number, succeeds on all others.

Config: `fail_at` (required, sequence number), `kind` = `retryable` (default) | `rejected` |
`raise` (an unexpected exception: a traceback in the host's log and a crash),
`retry_after_ms` (optional), `times` (optional: fail only the first N attempts of that event
within this instance, then succeed; default: always fail).
"""

import hubwasm


@hubwasm.plugin
class FailNth:
    def __init__(self, config: hubwasm.Config):
        self.kind = config.str("kind", "retryable")
        if self.kind not in ("retryable", "rejected", "raise"):
            raise hubwasm.ConfigError(
                f"config `kind` = `{self.kind}` is invalid: use `retryable`, `rejected` or `raise`"
            )
        self.fail_at = config.int("fail_at")
        if self.fail_at is None:
            raise hubwasm.ConfigError("config `fail_at` is required")
        self.retry_after_ms = config.int("retry_after_ms")
        self.times = config.int("times")
        self.attempts = 0

    def handle(self, ctx: hubwasm.Context, event: hubwasm.Event) -> None:
        if event.sequence_number != self.fail_at:
            return
        self.attempts += 1
        if self.times is not None and self.attempts > self.times:
            return
        message = f"configured to fail at sequence number {self.fail_at}"
        if self.kind == "rejected":
            raise hubwasm.Reject(message)
        if self.kind == "raise":
            check_order(event.sequence_number)
        raise hubwasm.Retry(message, after_ms=self.retry_after_ms)


def check_order(sequence_number: int) -> None:
    # A plugin bug, as the host sees one: an exception nobody catches.
    raise RuntimeError(f"unexpected event {sequence_number}")
