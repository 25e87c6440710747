//! filter-emit: json-filter's filter, forwarding what passes. Every seed event whose `value`
//! lies in the range is emitted to the output `output` with the same body, content type and
//! properties, under the source event's partition key (so per-key order carries over) and on
//! behalf of the source event (its checkpoint waits until the output acknowledged it). Events
//! out of range are handled without emitting; a body that is not a seed event is rejected, as
//! json-filter does (the parsing and range test are json-filter's own, `json-filter/src/seed.rs`).
//!
//! Config: `output` (required: the name of an output configured for the event hub in
//! `[[eventhub.output]]`), `min_value` (i64, default 50), `max_value` (i64, optional).

use hubwasm_guest::{
    emit::{self, Outgoing},
    export_plugin, log, reject, CloseReason, Config, Event, EventError, PartitionContext, Plugin,
};

#[path = "../../json-filter/src/seed.rs"]
mod seed;
use seed::{parse, ValueRange};

struct FilterEmit {
    output: String,
    range: ValueRange,
    emitted: u64,
    dropped: u64,
}

impl Plugin for FilterEmit {
    fn init(config: Config) -> Result<Self, String> {
        let output = match config.get("output") {
            Some(name) if !name.trim().is_empty() => name.to_owned(),
            _ => {
                return Err(
                    "config `output` is required: set it to the name of an output \
                            configured for this event hub in [[eventhub.output]]"
                        .into(),
                )
            }
        };
        Ok(Self {
            output,
            range: ValueRange::from_config(&config)?,
            emitted: 0,
            dropped: 0,
        })
    }

    fn handle(&mut self, _ctx: &PartitionContext, event: Event<'_>) -> Result<(), EventError> {
        let seed =
            parse(event.body()).map_err(|e| reject(format!("body is not a seed event: {e}")))?;
        if !self.range.contains(seed.value) {
            self.dropped += 1;
            return Ok(());
        }
        let mut out = Outgoing::new(event.body());
        if let Some(key) = event.partition_key() {
            out = out.partition_key(key);
        }
        if let Some(content_type) = event.content_type() {
            out = out.content_type(content_type);
        }
        for (name, value) in event.properties() {
            out = out.property(name, value);
        }
        emit::send(&self.output, event, out)?;
        self.emitted += 1;
        Ok(())
    }

    fn closed(&mut self, ctx: &PartitionContext, _reason: CloseReason) {
        let (emitted, dropped) = (self.emitted.to_string(), self.dropped.to_string());
        log::log_with(
            log::Level::Info,
            "filter-emit summary",
            &[
                ("partition", &ctx.partition_id),
                ("output", &self.output),
                ("emitted", &emitted),
                ("dropped", &dropped),
            ],
        );
    }
}

export_plugin!(FilterEmit);
