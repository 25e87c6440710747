//! test-first-seen: asks `dedupe.first-seen` about each event's body and prints the answer,
//! `first body=<body>` or `again body=<body>`, so tests can see what the consumer group has
//! seen. Config (optional): `fail_once` = a body whose first call asks `first-seen` and then
//! fails (retryable) once in this instance, to show that a failed call's keys are not recorded.

use std::time::Duration;

use hubwasm_guest::{
    dedupe, export_plugin, retry, Config, Event, EventError, PartitionContext, Plugin,
};

struct FirstSeen {
    fail_once: Option<String>,
}

impl Plugin for FirstSeen {
    fn init(config: Config) -> Result<Self, String> {
        Ok(Self {
            fail_once: config.get("fail_once").map(str::to_string),
        })
    }

    fn handle(&mut self, _ctx: &PartitionContext, event: Event<'_>) -> Result<(), EventError> {
        let body = String::from_utf8_lossy(event.body()).into_owned();
        let first = dedupe::first_seen(&body, Duration::from_secs(3600));
        if self.fail_once.as_deref() == Some(body.as_str()) {
            self.fail_once = None;
            println!("failing body={body} first={first}");
            return Err(retry("failing once after first-seen"));
        }
        println!("{} body={body}", if first { "first" } else { "again" });
        Ok(())
    }
}

export_plugin!(FirstSeen);
