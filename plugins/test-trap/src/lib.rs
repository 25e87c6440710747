//! test-trap: panics (a wasm trap) on an event whose body is exactly `trap`, or on sequence
//! number `trap_at` if configured; succeeds on everything else.
//!
//! Config: `trap_at` (optional sequence number).

use hubwasm_guest::{export_plugin, Config, Event, EventError, PartitionContext, Plugin};

struct Trap {
    trap_at: Option<i64>,
}

impl Plugin for Trap {
    fn init(config: Config) -> Result<Self, String> {
        Ok(Self {
            trap_at: config.parse("trap_at")?,
        })
    }

    fn handle(&mut self, _ctx: &PartitionContext, event: Event<'_>) -> Result<(), EventError> {
        if event.body() == b"trap" || self.trap_at == Some(event.sequence_number()) {
            panic!(
                "test-trap: asked to trap at sequence number {}",
                event.sequence_number()
            );
        }
        Ok(())
    }
}

export_plugin!(Trap);
