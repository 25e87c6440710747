//! noop: accepts every batch without looking at it. Measures the pure cost of copying a batch
//! into a plugin and calling it. No config.

use hubwasm_guest::{
    export_plugin, Batch, BatchError, Config, Event, EventError, PartitionContext, Plugin,
};

struct Noop;

impl Plugin for Noop {
    fn init(_config: Config) -> Result<Self, String> {
        Ok(Noop)
    }

    fn handle(&mut self, _ctx: &PartitionContext, _event: Event<'_>) -> Result<(), EventError> {
        Ok(())
    }

    fn handle_batch(
        &mut self,
        _ctx: &PartitionContext,
        _batch: Batch<'_>,
    ) -> Result<(), BatchError> {
        Ok(())
    }
}

export_plugin!(Noop);
