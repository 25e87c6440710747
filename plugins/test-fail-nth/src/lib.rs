//! test-fail-nth: fails the event with one given sequence number, succeeds on all others.
//!
//! Config: `fail_at` (required, sequence number), `kind` = `retryable` (default) | `rejected`,
//! `retry_after_ms` (optional u32), `times` (optional u32: fail only the first N attempts of that
//! event within this instance, then succeed; default: always fail).

use hubwasm_guest::{
    export_plugin, reject, retry, retry_after, Config, Event, EventError, PartitionContext, Plugin,
};

struct FailNth {
    fail_at: i64,
    rejected: bool,
    retry_after_ms: Option<u32>,
    times: Option<u32>,
    attempts: u32,
}

impl Plugin for FailNth {
    fn init(config: Config) -> Result<Self, String> {
        let rejected = match config.get("kind").unwrap_or("retryable") {
            "retryable" => false,
            "rejected" => true,
            other => {
                return Err(format!(
                    "config `kind` = `{other}` is invalid: use `retryable` or `rejected`"
                ))
            }
        };
        Ok(Self {
            fail_at: config.require("fail_at")?,
            rejected,
            retry_after_ms: config.parse("retry_after_ms")?,
            times: config.parse("times")?,
            attempts: 0,
        })
    }

    fn handle(&mut self, _ctx: &PartitionContext, event: Event<'_>) -> Result<(), EventError> {
        if event.sequence_number() != self.fail_at {
            return Ok(());
        }
        self.attempts += 1;
        if self.times.is_some_and(|times| self.attempts > times) {
            return Ok(());
        }
        let message = format!("configured to fail at sequence number {}", self.fail_at);
        Err(match (self.rejected, self.retry_after_ms) {
            (true, _) => reject(message),
            (false, Some(ms)) => retry_after(message, ms),
            (false, None) => retry(message),
        })
    }
}

export_plugin!(FailNth);
