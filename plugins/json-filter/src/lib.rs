//! json-filter: the sample plugin. Parses the seed's JSON events and keeps those whose `value`
//! lies in a range, counting kept and dropped events; a body that is not a seed event is
//! rejected (poison). A seed event is a UTF-8 JSON object with string `event_id`, `timestamp`
//! and `data` and integer `message_id` and `value` (no fraction or exponent, within 64 bits);
//! other fields are ignored; one of those five given twice, or nesting deeper than 127 levels,
//! is not. The Python and JavaScript
//! twins (`plugins/python/json-filter`, `plugins/js/json-filter`) give the same verdicts.
//!
//! Config: `min_value` (i64, default 50), `max_value` (i64, optional).

use hubwasm_guest::{
    export_plugin, log, reject, CloseReason, Config, Event, EventError, PartitionContext, Plugin,
};

mod seed;
use seed::{parse, ValueRange};

struct JsonFilter {
    range: ValueRange,
    kept: u64,
    dropped: u64,
}

impl Plugin for JsonFilter {
    fn init(config: Config) -> Result<Self, String> {
        Ok(Self {
            range: ValueRange::from_config(&config)?,
            kept: 0,
            dropped: 0,
        })
    }

    fn handle(&mut self, _ctx: &PartitionContext, event: Event<'_>) -> Result<(), EventError> {
        let seed =
            parse(event.body()).map_err(|e| reject(format!("body is not a seed event: {e}")))?;
        // No per-event log call: a host call per event would cost more than the filter itself.
        if self.range.contains(seed.value) {
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
