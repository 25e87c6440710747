//! Send events to outputs (event hubs) the operator configured for this plugin's event hub
//! (`[[eventhub.output]]`).
//!
//! Guarantee: at least once, tied to the checkpoint. Sent events are queued during the call and
//! the host sends them after the call succeeds; the source partition's checkpoint moves past an
//! event only once everything emitted on its behalf was acknowledged by the output. Events
//! emitted by a call that fails are not sent (the call is made again). Each sent event carries
//! the message id `<event hub>/<partition>/<source sequence number>/<n>` (`n` counts the events
//! emitted for that source event, from 0), so a downstream consumer can drop the replays that
//! follow a crash.
//!
//! ```no_run
//! # use hubwasm_guest::{emit::{self, Outgoing}, Event, EventError};
//! fn forward(event: Event<'_>) -> Result<(), EventError> {
//!     let mut out = Outgoing::new(event.body()).property("seen-by", "my-plugin");
//!     if let Some(key) = event.partition_key() {
//!         out = out.partition_key(key);
//!     }
//!     emit::send("alerts", event, out)?; // an `EmitError` becomes a `rejected` verdict
//!     Ok(())
//! }
//! ```

use crate::bindings::hubwasm::plugin::emit as wit;
use crate::bindings::hubwasm::plugin::types::Property;
use crate::{reject, Event, EventError, Value};

pub use crate::bindings::hubwasm::plugin::types::PropertyValue;
pub use wit::EmitError;

/// An event to send, built up from its body.
#[derive(Debug, Clone)]
pub struct Outgoing {
    event: wit::OutgoingEvent,
}

impl Outgoing {
    /// An event with `body`, no partition key, content type or properties.
    pub fn new(body: impl Into<Vec<u8>>) -> Self {
        Self {
            event: wit::OutgoingEvent {
                body: body.into(),
                partition_key: None,
                content_type: None,
                properties: Vec::new(),
            },
        }
    }

    /// Events with one partition key land in one partition of the output, in order; without
    /// one, Event Hubs picks the partition.
    pub fn partition_key(mut self, key: impl Into<String>) -> Self {
        self.event.partition_key = Some(key.into());
        self
    }

    /// The MIME content type.
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        self.event.content_type = Some(content_type.into());
        self
    }

    /// Add an application property (after those added before). `value` is anything convertible
    /// into a [`PropertyValue`]: a [`Value`] read from an event, `bool`, `i64`, `f64`, `&str`,
    /// `String` or `Vec<u8>`.
    pub fn property(mut self, name: impl Into<String>, value: impl Into<PropertyValue>) -> Self {
        self.event.properties.push(Property {
            key: name.into(),
            value: value.into(),
        });
        self
    }
}

/// The event an emitted event is sent on behalf of: an [`Event`] of the current call, or its
/// sequence number.
pub trait Source {
    /// The source event's sequence number.
    fn sequence_number(&self) -> i64;
}

impl Source for i64 {
    fn sequence_number(&self) -> i64 {
        *self
    }
}

impl Source for Event<'_> {
    fn sequence_number(&self) -> i64 {
        Event::sequence_number(self)
    }
}

impl Source for &Event<'_> {
    fn sequence_number(&self) -> i64 {
        Event::sequence_number(self)
    }
}

/// Queue `event` for the output named `output`, on behalf of `source` (an event of the current
/// call). It is sent after the call succeeds, and `source`'s checkpoint waits for it.
///
/// An `Err` means nothing was queued (the source is not an event of this call, or a size limit
/// was hit); `?` turns it into a `rejected` verdict. An output name the operator did not
/// configure is not an `Err`: the host stops the call and pauses the partition until the
/// configuration is fixed.
pub fn send(output: &str, source: impl Source, event: Outgoing) -> Result<(), EmitError> {
    wit::send(output, source.sequence_number(), &event.event)
}

impl From<EmitError> for EventError {
    /// Both cases are about this event (its source or its size), so retrying cannot help.
    fn from(error: EmitError) -> Self {
        reject(match error {
            EmitError::InvalidSource(seq) => {
                format!("emit: source {seq} is not an event of the current call")
            }
            EmitError::TooLarge(limit) => format!("emit: too large: {limit}"),
        })
    }
}

impl From<Value<'_>> for PropertyValue {
    fn from(value: Value<'_>) -> Self {
        match value {
            Value::Null => PropertyValue::Null,
            Value::Bool(b) => PropertyValue::Boolean(b),
            Value::Int(i) => PropertyValue::Integer(i),
            Value::Double(d) => PropertyValue::Double(d),
            Value::Text(t) => PropertyValue::Text(t.into()),
            Value::Binary(b) => PropertyValue::Binary(b.into()),
            Value::Timestamp(t) => PropertyValue::Timestamp(t),
            Value::Uuid(u) => PropertyValue::Uuid(u.into()),
        }
    }
}

impl From<bool> for PropertyValue {
    fn from(b: bool) -> Self {
        PropertyValue::Boolean(b)
    }
}

impl From<i64> for PropertyValue {
    fn from(i: i64) -> Self {
        PropertyValue::Integer(i)
    }
}

impl From<f64> for PropertyValue {
    fn from(d: f64) -> Self {
        PropertyValue::Double(d)
    }
}

impl From<&str> for PropertyValue {
    fn from(t: &str) -> Self {
        PropertyValue::Text(t.into())
    }
}

impl From<String> for PropertyValue {
    fn from(t: String) -> Self {
        PropertyValue::Text(t)
    }
}

impl From<Vec<u8>> for PropertyValue {
    fn from(b: Vec<u8>) -> Self {
        PropertyValue::Binary(b)
    }
}
