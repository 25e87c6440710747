//! The seed producer's events and json-filter's range test. Shared by `json-filter` and
//! `filter-emit` (included with `#[path]`: a cdylib cannot be a dependency without linking its
//! exports too), so both give the same verdicts.

use hubwasm_guest::Config;
use serde::Deserialize;
use std::borrow::Cow;

/// The seed producer's event: `{"event_id", "message_id", "timestamp", "value", "data"}`.
/// Strings are borrowed unless they hold escapes.
#[derive(Deserialize)]
#[allow(dead_code)]
pub struct SeedEvent<'a> {
    #[serde(borrow)]
    event_id: Cow<'a, str>,
    message_id: i64,
    #[serde(borrow)]
    timestamp: Cow<'a, str>,
    pub value: i64,
    #[serde(borrow)]
    data: Cow<'a, str>,
}

/// Deeper nesting is not a seed event (the Python and JavaScript twins' parsers recurse).
const MAX_DEPTH: usize = 127;

/// Parse a seed event. Only an object counts (serde would also take a 5-element array), and the
/// whole body must be UTF-8 (serde checks only the strings it reads).
pub fn parse(body: &[u8]) -> Result<SeedEvent<'_>, String> {
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

/// The range a seed event's `value` must lie in to be kept: config `min_value` (i64, default
/// 50) and `max_value` (i64, optional), both inclusive.
pub struct ValueRange {
    min_value: i64,
    max_value: Option<i64>,
}

impl ValueRange {
    pub fn from_config(config: &Config) -> Result<Self, String> {
        Ok(Self {
            min_value: config.parse("min_value")?.unwrap_or(50),
            max_value: config.parse("max_value")?,
        })
    }

    pub fn contains(&self, value: i64) -> bool {
        value >= self.min_value && self.max_value.is_none_or(|max| value <= max)
    }
}
