//! test-bad-verdict: answers every batch with a verdict the contract forbids (`failed-at` far
//! outside the batch), which the host must refuse rather than checkpoint. No config.

use hubwasm_guest::{
    export_plugin, reject, Batch, BatchError, Config, Event, EventError, PartitionContext, Plugin,
};

struct BadVerdict;

impl Plugin for BadVerdict {
    fn init(_config: Config) -> Result<Self, String> {
        Ok(BadVerdict)
    }

    fn handle(&mut self, _ctx: &PartitionContext, _event: Event<'_>) -> Result<(), EventError> {
        Ok(())
    }

    fn handle_batch(
        &mut self,
        _ctx: &PartitionContext,
        _batch: Batch<'_>,
    ) -> Result<(), BatchError> {
        Err(BatchError {
            failed_at: u32::MAX,
            error: reject("bad index"),
        })
    }
}

export_plugin!(BadVerdict);
