//! json-filter: the sample plugin. Parses the seed's JSON events and keeps those whose `value`
//! lies in a range, counting kept and dropped events; a body that is not a seed event is
//! rejected (poison).
//!
//! Config: `min_value` (i64, default 50), `max_value` (i64, optional).

use hubwasm_guest::{
    export_plugin, log, reject, CloseReason, Config, Event, EventError, PartitionContext, Plugin,
};
use serde::Deserialize;

/// The seed producer's event: `{"event_id", "message_id", "timestamp", "value", "data"}`.
#[derive(Deserialize)]
#[allow(dead_code)]
struct SeedEvent<'a> {
    event_id: &'a str,
    message_id: i64,
    timestamp: &'a str,
    value: i64,
    data: &'a str,
}

struct JsonFilter {
    min_value: i64,
    max_value: Option<i64>,
    kept: u64,
    dropped: u64,
}

impl Plugin for JsonFilter {
    fn init(config: Config) -> Result<Self, String> {
        Ok(Self {
            min_value: config.parse("min_value")?.unwrap_or(50),
            max_value: config.parse("max_value")?,
            kept: 0,
            dropped: 0,
        })
    }

    fn handle(&mut self, _ctx: &PartitionContext, event: Event<'_>) -> Result<(), EventError> {
        let seed: SeedEvent = serde_json::from_slice(event.body())
            .map_err(|e| reject(format!("body is not a seed event: {e}")))?;
        let in_range =
            seed.value >= self.min_value && self.max_value.is_none_or(|max| seed.value <= max);
        // No per-event log call: a host call per event would cost more than the filter itself.
        if in_range {
            self.kept += 1;
        } else {
            self.dropped += 1;
        }
        Ok(())
    }

    fn closed(&mut self, ctx: &PartitionContext, _reason: CloseReason) {
        let (kept, dropped) = (self.kept.to_string(), self.dropped.to_string());
        log::log_with(
            log::Level::Info,
            "json-filter summary",
            &[
                ("partition", &ctx.partition_id),
                ("kept", &kept),
                ("dropped", &dropped),
            ],
        );
    }
}

export_plugin!(JsonFilter);
