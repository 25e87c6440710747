//! {{name}}: a hubwasm plugin in Rust.
//!
//! Build: hubwasm plugin build .
//! Test:  hubwasm plugin test {{wasm}} --events events/sample.jsonl

use hubwasm_guest::{
    export_plugin, log, reject, CloseReason, Config, Event, EventError, PartitionContext, Plugin,
};

struct {{type}} {
    min_value: i64,
    kept: u64,
}

impl Plugin for {{type}} {
    fn init(config: Config) -> Result<Self, String> {
        // `hubwasm run` passes [eventhub.plugin_config]; `plugin test` passes --config k=v.
        Ok(Self {
            min_value: config.parse("min_value")?.unwrap_or(0),
            kept: 0,
        })
    }

    fn handle(&mut self, _ctx: &PartitionContext, event: Event<'_>) -> Result<(), EventError> {
        // Poison: retrying will not help. The host dead-letters it (or halts).
        let doc: serde_json::Value = serde_json::from_slice(event.body())
            .map_err(|e| reject(format!("not JSON: {e}")))?;
        if doc["value"].as_i64().is_some_and(|v| v >= self.min_value) {
            self.kept += 1;
        }
        // Ok lets the host checkpoint past the event. For a transient failure (a service
        // down), return Err(retry_after("why", 1000)).
        Ok(())
    }

    fn closed(&mut self, ctx: &PartitionContext, _reason: CloseReason) {
        let kept = self.kept.to_string();
        log::log_with(
            log::Level::Info,
            "{{name}} summary",
            &[("partition", &ctx.partition_id), ("kept", &kept)],
        );
    }
}

export_plugin!({{type}});
