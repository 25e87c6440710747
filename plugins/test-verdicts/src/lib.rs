//! test-verdicts: each event carries its own verdict, so a test can script any sequence of
//! outcomes. The body is JSON `{"event_id": "<id>", "verdict": "<verdict>"}`:
//! - `ok`: adds 1 to the state key `handled/<id>` (so the partition's committed state says
//!   which events were handled, and how often) and succeeds;
//! - `flaky`: fails (retryable) on its first attempt in this instance, then acts as `ok`;
//! - `retry`: fails, retryable; `reject`: fails, rejected;
//! - `trap`: panics (a trap); `loop`: spins until the host's call deadline stops it.
//!
//! A body that is not such JSON is rejected. The event hub needs an `[eventhub.state]` store.

use std::collections::HashSet;

use hubwasm_guest::{
    export_plugin, reject, retry, state, Config, Event, EventError, PartitionContext, Plugin,
};

#[derive(serde::Deserialize)]
struct Scripted {
    event_id: String,
    verdict: String,
}

struct Verdicts {
    /// Sequence numbers of `flaky` events that failed once in this instance.
    failed_once: HashSet<i64>,
}

impl Plugin for Verdicts {
    fn init(_config: Config) -> Result<Self, String> {
        Ok(Self {
            failed_once: HashSet::new(),
        })
    }

    fn handle(&mut self, _ctx: &PartitionContext, event: Event<'_>) -> Result<(), EventError> {
        let scripted: Scripted = serde_json::from_slice(event.body())
            .map_err(|e| reject(format!("not a scripted event: {e}")))?;
        let seq = event.sequence_number();
        match scripted.verdict.as_str() {
            "ok" => {}
            "flaky" => {
                if self.failed_once.insert(seq) {
                    return Err(retry(format!("flaky event {seq}: first attempt")));
                }
            }
            "retry" => return Err(retry(format!("scripted retry at {seq}"))),
            "reject" => return Err(reject(format!("scripted reject at {seq}"))),
            "trap" => panic!("scripted trap at {seq}"),
            "loop" => {
                let mut n = seq;
                loop {
                    n = std::hint::black_box(n.wrapping_mul(31).wrapping_add(7));
                }
            }
            other => return Err(reject(format!("unknown verdict `{other}`"))),
        }
        state::add_u64(&format!("handled/{}", scripted.event_id), 1)?;
        Ok(())
    }
}

export_plugin!(Verdicts);
