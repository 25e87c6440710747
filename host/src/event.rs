//! The host's own event type: what a source hands to the processor and the plugin runtime.
//!
//! Kept free of wasmtime and of the Event Hubs SDK, so sources, the replay harness and tests can
//! build events without either.

/// A typed application property value (AMQP application property).
#[derive(Debug, Clone, PartialEq)]
pub enum PropertyValue {
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    Text(String),
    Binary(Vec<u8>),
    /// Milliseconds since the Unix epoch (UTC).
    Timestamp(i64),
    /// Canonical hyphenated UUID text.
    Uuid(String),
}

/// One event of a partition, as Event Hubs delivers it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Event {
    pub body: Vec<u8>,
    pub sequence_number: i64,
    /// Event Hubs reports offsets as strings.
    pub offset: String,
    /// Milliseconds since the Unix epoch (UTC).
    pub enqueued_time_ms: i64,
    pub partition_key: Option<String>,
    pub content_type: Option<String>,
    pub correlation_id: Option<String>,
    pub message_id: Option<String>,
    pub properties: Vec<(String, PropertyValue)>,
}

impl Event {
    /// An event with just a body and a position, the rest empty.
    pub fn new(body: impl Into<Vec<u8>>, sequence_number: i64, offset: impl Into<String>) -> Self {
        Self {
            body: body.into(),
            sequence_number,
            offset: offset.into(),
            ..Self::default()
        }
    }
}

/// Where a partition's events come from; given to plugins once per call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PartitionContext {
    /// Fully qualified namespace, e.g. `myns.servicebus.windows.net`.
    pub namespace: String,
    pub event_hub: String,
    pub consumer_group: String,
    pub partition_id: String,
}

impl PartitionContext {
    pub fn new(namespace: &str, event_hub: &str, consumer_group: &str, partition_id: &str) -> Self {
        PartitionContext {
            namespace: namespace.to_string(),
            event_hub: event_hub.to_string(),
            consumer_group: consumer_group.to_string(),
            partition_id: partition_id.to_string(),
        }
    }
}
