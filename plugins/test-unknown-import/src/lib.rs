//! test-unknown-import: implements hubwasm's `batch-plugin` world correctly but also imports
//! `test:unknown-import/vault`, which no host provides; the host must refuse it at load, naming
//! the import. No config.

wit_bindgen::generate!({
    path: ["../../wit/v0.2", "wit"],
    world: "test:unknown-import/plugin",
    generate_all,
});

use exports::hubwasm::plugin::{batch_handler, lifecycle};
use hubwasm::plugin::types::{BatchError, CloseReason, EventBatch, PartitionContext};

struct UnknownImport;

impl lifecycle::Guest for UnknownImport {
    fn init(_config: Vec<(String, String)>) -> Result<(), String> {
        Ok(())
    }
    fn partition_opened(_context: PartitionContext) {}
    fn partition_closed(_context: PartitionContext, _reason: CloseReason) {}
    fn partition_error(_context: PartitionContext, _message: String) {}
}

impl batch_handler::Guest for UnknownImport {
    fn handle_batch(_context: PartitionContext, _batch: EventBatch) -> Result<(), BatchError> {
        // Use the import, so it is part of what the component needs.
        let _ = test::unknown_import::vault::get("key");
        Ok(())
    }
}

export!(UnknownImport);
