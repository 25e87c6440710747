//! test-fail-all: every event fails as retryable, whatever the config. A broken new version
//! for the automatic-rollback tests (its failure rate is 100 %).

use hubwasm_guest::{export_plugin, retry, Config, Event, EventError, PartitionContext, Plugin};

struct FailAll;

impl Plugin for FailAll {
    fn init(_config: Config) -> Result<Self, String> {
        Ok(Self)
    }

    fn handle(&mut self, _ctx: &PartitionContext, event: Event<'_>) -> Result<(), EventError> {
        Err(retry(format!(
            "test-fail-all: failing sequence number {} on purpose",
            event.sequence_number()
        )))
    }
}

export_plugin!(FailAll);
