//! test-loop: never returns from handling an event (an endless loop the host must interrupt).
//! No config.

use hubwasm_guest::{export_plugin, Config, Event, EventError, PartitionContext, Plugin};

struct Loop;

impl Plugin for Loop {
    fn init(_config: Config) -> Result<Self, String> {
        Ok(Loop)
    }

    fn handle(&mut self, _ctx: &PartitionContext, event: Event<'_>) -> Result<(), EventError> {
        let mut n = event.sequence_number();
        loop {
            n = std::hint::black_box(n.wrapping_mul(31).wrapping_add(7));
        }
    }
}

export_plugin!(Loop);
