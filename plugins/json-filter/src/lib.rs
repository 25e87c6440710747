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
use serde::Deserialize;
use std::borrow::Cow;

/// The seed producer's event: `{"event_id", "message_id", "timestamp", "value", "data"}`.
/// Strings are borrowed unless they hold escapes.
#[derive(Deserialize)]
#[allow(dead_code)]
struct SeedEvent<'a> {
    #[serde(borrow)]
    event_id: Cow<'a, str>,
    message_id: i64,
    #[serde(borrow)]
    timestamp: Cow<'a, str>,
    value: i64,
    #[serde(borrow)]
    data: Cow<'a, str>,
}

/// Deeper nesting is not a seed event (the Python and JavaScript twins' parsers recurse).
const MAX_DEPTH: usize = 127;

/// Parse a seed event. Only an object counts (serde would also take a 5-element array), and the
/// whole body must be UTF-8 (serde checks only the strings it reads).
fn parse(body: &[u8]) -> Result<SeedEvent<'_>, String> {
    let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
    if too_deep(body) {
        return Err("nested deeper than 127 levels".into());
    }
    if !text
        .trim_start_matches([' ', '\t', '\r', '\n'])
        .starts_with('{')
    {
        return Err("not a JSON object".into());
    }
    serde_json::from_str(text).map_err(|e| e.to_string())
}

struct JsonFilter {
    min_value: i64,
    max_value: Option<i64>,
    kept: u64,
    dropped: u64,
}

/// Whether arrays and objects nest deeper than [`MAX_DEPTH`] (brackets inside strings aside).
fn too_deep(body: &[u8]) -> bool {
    if body.iter().filter(|&&c| c == b'[' || c == b'{').count() <= MAX_DEPTH {
        return false;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &c in body {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
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
        let seed =
            parse(event.body()).map_err(|e| reject(format!("body is not a seed event: {e}")))?;
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
