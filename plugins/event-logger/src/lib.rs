//! event-logger: a per-event (`event-plugin` world) plugin written directly against the WIT with
//! wit-bindgen, no helper crate. Prints one line per event to stdout and logs it through the
//! host's `log` import; rejects events with an empty body. Accepts any config.

wit_bindgen::generate!({ path: "../../wit/v0.2", world: "event-plugin" });

use exports::hubwasm::plugin::{event_handler, lifecycle};
use hubwasm::plugin::log::{log, Level};
use hubwasm::plugin::types::{CloseReason, Event, EventError, PartitionContext};

struct EventLogger;

impl lifecycle::Guest for EventLogger {
    fn init(_config: Vec<(String, String)>) -> Result<(), String> {
        Ok(())
    }
    fn partition_opened(_context: PartitionContext) {}
    fn partition_closed(_context: PartitionContext, _reason: CloseReason) {}
    fn partition_error(_context: PartitionContext, _message: String) {}
}

impl event_handler::Guest for EventLogger {
    fn handle_event(context: PartitionContext, event: Event) -> Result<(), EventError> {
        println!(
            "event seq={} offset={} bytes={}",
            event.sequence_number,
            event.offset,
            event.body.len()
        );
        log(
            Level::Info,
            "event received",
            &[
                ("sequence_number".into(), event.sequence_number.to_string()),
                ("partition".into(), context.partition_id),
            ],
        );
        if event.body.is_empty() {
            return Err(EventError::Rejected("empty body".into()));
        }
        Ok(())
    }
}

export!(EventLogger);
