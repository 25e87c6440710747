//! Where events leave the host. Today: dead-letter sinks, where an event goes when the plugin
//! keeps failing on it and the policy says move on; the checkpoint passes the event only after
//! the sink has it.
//!
//! - [`directory`]: one JSON line per letter in a file per partition, fsynced.
//! - [`blob`]: one JSON blob per letter in an Azure Blob container.
//! - [`eventhub`]: the event itself, with the failure as properties, to another event hub.

pub mod blob;
pub mod directory;
pub mod eventhub;

pub use blob::BlobSink;
pub use directory::DirectorySink;
pub use eventhub::EventHubSink;

use async_trait::async_trait;
use serde::Serialize;

use crate::event::{Event, PartitionContext, PropertyValue};

/// An event the plugin failed on, with everything needed to replay or investigate it.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub namespace: String,
    pub event_hub: String,
    pub consumer_group: String,
    pub partition_id: String,
    pub sequence_number: i64,
    pub offset: String,
    pub enqueued_time_ms: i64,
    pub partition_key: Option<String>,
    /// The body as text when it is UTF-8; otherwise `body_base64` carries it.
    pub body: Option<String>,
    pub body_base64: Option<String>,
    pub content_type: Option<String>,
    pub properties: serde_json::Map<String, serde_json::Value>,
    /// The last error, as the host reports it.
    pub error: String,
    /// `retryable`, `rejected`, `trapped`, `timed-out`, ...
    pub error_kind: String,
    pub attempts: u32,
    pub plugin: String,
    /// First 12 hex digits of the plugin component's SHA-256.
    pub plugin_version: String,
    /// When the host dead-lettered it (ms since the Unix epoch).
    pub dead_lettered_at_ms: i64,
}

impl DeadLetter {
    /// Build the record for `event` of `ctx`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ctx: &PartitionContext,
        event: &Event,
        error: String,
        error_kind: &str,
        attempts: u32,
        plugin: &str,
        plugin_version: &str,
    ) -> Self {
        let (body, body_base64) = match std::str::from_utf8(&event.body) {
            Ok(text) => (Some(text.to_string()), None),
            Err(_) => (None, Some(base64(&event.body))),
        };
        let properties = event
            .properties
            .iter()
            .map(|(k, v)| (k.clone(), property_json(v)))
            .collect();
        Self {
            namespace: ctx.namespace.clone(),
            event_hub: ctx.event_hub.clone(),
            consumer_group: ctx.consumer_group.clone(),
            partition_id: ctx.partition_id.clone(),
            sequence_number: event.sequence_number,
            offset: event.offset.clone(),
            enqueued_time_ms: event.enqueued_time_ms,
            partition_key: event.partition_key.clone(),
            body,
            body_base64,
            content_type: event.content_type.clone(),
            properties,
            error,
            error_kind: error_kind.to_string(),
            attempts,
            plugin: plugin.to_string(),
            plugin_version: plugin_version.to_string(),
            dead_lettered_at_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
        }
    }
}

fn property_json(v: &PropertyValue) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        PropertyValue::Null => J::Null,
        PropertyValue::Bool(b) => J::Bool(*b),
        PropertyValue::Int(i) => J::from(*i),
        PropertyValue::Double(d) => J::from(*d),
        PropertyValue::Text(s) | PropertyValue::Uuid(s) => J::String(s.clone()),
        PropertyValue::Binary(b) => J::String(base64(b)),
        PropertyValue::Timestamp(ms) => J::from(*ms),
    }
}

pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (chunk[0] as u32) << 16
            | (chunk.get(1).copied().unwrap_or(0) as u32) << 8
            | chunk.get(2).copied().unwrap_or(0) as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A dead letter could not be stored; the event is not passed (the host retries).
#[derive(Debug, thiserror::Error)]
#[error("dead-letter sink {sink}: {message}")]
pub struct DeadLetterError {
    pub sink: String,
    pub message: String,
}

/// Where dead letters go.
#[async_trait]
pub trait DeadLetterSink: Send + Sync {
    /// Store one dead letter durably; `Ok` means it may be checkpointed past.
    async fn write(&self, letter: &DeadLetter) -> Result<(), DeadLetterError>;
    fn describe(&self) -> String;
}

/// A name as one path segment (file or blob name part): no separators.
pub(crate) fn path_segment(name: &str) -> String {
    name.replace(['/', '\\'], "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet_and_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(&[0xff, 0xfe, 0x00, 0x01]), "//4AAQ==");
    }
}
