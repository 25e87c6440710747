//! Dead-letter sinks: where an event goes when the plugin keeps failing on it and the policy
//! says move on. The checkpoint passes the event only after the sink has it.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use azure_messaging_eventhubs::models::{AmqpSimpleValue, EventData};
use azure_messaging_eventhubs::ProducerClient;
use serde::Serialize;

use crate::checkpoint::blob::BlobCheckpointStore;
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

fn base64(bytes: &[u8]) -> String {
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
fn path_segment(name: &str) -> String {
    name.replace(['/', '\\'], "_")
}

/// One JSON line per dead letter in `<root>/<eventhub>/<consumergroup>/<partition>.jsonl`,
/// fsynced before `write` returns.
pub struct DirectorySink {
    root: PathBuf,
    /// Serialises appends of this process.
    lock: tokio::sync::Mutex<()>,
}

impl DirectorySink {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The file holding a partition's dead letters.
    pub fn file(&self, event_hub: &str, consumer_group: &str, partition_id: &str) -> PathBuf {
        self.root
            .join(path_segment(event_hub))
            .join(path_segment(consumer_group))
            .join(format!("{}.jsonl", path_segment(partition_id)))
    }
}

#[async_trait]
impl DeadLetterSink for DirectorySink {
    async fn write(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        let path = self.file(
            &letter.event_hub,
            &letter.consumer_group,
            &letter.partition_id,
        );
        let mut line = serde_json::to_vec(letter).expect("dead letters serialize");
        line.push(b'\n');
        let _guard = self.lock.lock().await;
        let fail = |what: &str, e: std::io::Error| DeadLetterError {
            sink: self.describe(),
            message: format!("cannot {what} {}: {e}", path.display()),
        };
        let dir = path.parent().expect("a file in a directory");
        std::fs::create_dir_all(dir).map_err(|e| fail("create the directory of", e))?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| fail("open", e))?;
        file.write_all(&line).map_err(|e| fail("append to", e))?;
        file.sync_data().map_err(|e| fail("sync", e))?;
        Ok(())
    }

    fn describe(&self) -> String {
        format!("directory {}", self.root.display())
    }
}

/// One JSON blob per dead letter, `<eventhub>/<consumergroup>/<partition>/<sequence number>.json`
/// (the number zero-padded so names sort in partition order). A redelivered event that is
/// dead-lettered again overwrites its own blob instead of adding a duplicate.
pub struct BlobSink {
    container: BlobCheckpointStore,
}

impl BlobSink {
    pub fn new(container: BlobCheckpointStore) -> Self {
        Self { container }
    }

    /// The blob holding the dead letter of one event.
    pub fn blob_name(letter: &DeadLetter) -> String {
        format!(
            "{}/{}/{}/{:020}.json",
            path_segment(&letter.event_hub),
            path_segment(&letter.consumer_group),
            path_segment(&letter.partition_id),
            letter.sequence_number
        )
    }
}

#[async_trait]
impl DeadLetterSink for BlobSink {
    async fn write(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        let body = serde_json::to_vec(letter).expect("dead letters serialize");
        self.container
            .put(&Self::blob_name(letter), body, "application/json")
            .await
            .map_err(|e| DeadLetterError {
                sink: self.describe(),
                message: e.to_string(),
            })
    }

    fn describe(&self) -> String {
        use crate::checkpoint::Store;
        self.container.describe()
    }
}

/// Dead letters sent to another event hub: the original body, its properties, and the failure
/// as `hubwasm-*` properties; keyed by the original partition so one partition's dead letters
/// stay in order.
pub struct EventHubSink {
    producer: Arc<ProducerClient>,
    name: String,
}

impl EventHubSink {
    pub fn new(producer: ProducerClient, name: String) -> Self {
        Self {
            producer: Arc::new(producer),
            name,
        }
    }
}

#[async_trait]
impl DeadLetterSink for EventHubSink {
    async fn write(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        let body = match (&letter.body, &letter.body_base64) {
            (Some(text), _) => text.as_bytes().to_vec(),
            (None, Some(b64)) => b64.as_bytes().to_vec(),
            _ => Vec::new(),
        };
        let text = |s: &str| AmqpSimpleValue::String(s.to_string());
        let mut builder = EventData::builder()
            .with_body(body)
            .add_property(
                "hubwasm-source".into(),
                text(&format!(
                    "{}/{}/{}",
                    letter.event_hub, letter.consumer_group, letter.partition_id
                )),
            )
            .add_property(
                "hubwasm-sequence-number".into(),
                AmqpSimpleValue::Long(letter.sequence_number),
            )
            .add_property("hubwasm-offset".into(), text(&letter.offset))
            .add_property("hubwasm-error".into(), text(&letter.error))
            .add_property("hubwasm-error-kind".into(), text(&letter.error_kind))
            .add_property(
                "hubwasm-attempts".into(),
                AmqpSimpleValue::UInt(letter.attempts),
            )
            .add_property("hubwasm-plugin".into(), text(&letter.plugin))
            .add_property(
                "hubwasm-plugin-version".into(),
                text(&letter.plugin_version),
            );
        if let Some(ct) = &letter.content_type {
            builder = builder.with_content_type(ct.clone());
        }
        for (k, v) in &letter.properties {
            builder = builder.add_property(k.clone(), text(&v.to_string()));
        }
        self.producer
            .send_event(builder.build(), None)
            .await
            .map_err(|e| DeadLetterError {
                sink: self.describe(),
                message: e.to_string(),
            })
    }

    fn describe(&self) -> String {
        format!("event hub {}", self.name)
    }
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

    #[tokio::test]
    async fn the_directory_sink_appends_one_json_line_per_letter() {
        let dir = tempfile::tempdir().unwrap();
        let sink = DirectorySink::new(dir.path());
        let ctx = PartitionContext {
            namespace: "ns".into(),
            event_hub: "events".into(),
            consumer_group: "$Default".into(),
            partition_id: "2".into(),
        };
        let mut event = Event::new(&b"{\"a\":1}"[..], 7, "700");
        event
            .properties
            .push(("kind".into(), PropertyValue::Int(3)));
        for seq in [7, 9] {
            event.sequence_number = seq;
            let letter = DeadLetter::new(
                &ctx,
                &event,
                "boom".into(),
                "rejected",
                3,
                "filter",
                "abc123",
            );
            sink.write(&letter).await.unwrap();
        }
        let text = std::fs::read_to_string(sink.file("events", "$Default", "2")).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["sequence_number"], 7);
        assert_eq!(lines[1]["sequence_number"], 9);
        assert_eq!(lines[0]["body"], "{\"a\":1}");
        assert_eq!(lines[0]["error"], "boom");
        assert_eq!(lines[0]["attempts"], 3);
        assert_eq!(lines[0]["plugin_version"], "abc123");
        assert_eq!(lines[0]["properties"]["kind"], 3);
    }
}
