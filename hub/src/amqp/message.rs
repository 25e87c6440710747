//! AMQP messages (part 3.2): sections, the Event Hubs annotations, and batched messages.

use super::codec::{CodecError, Value};

/// Section descriptor codes.
pub mod section {
    pub const HEADER: u64 = 0x70;
    pub const DELIVERY_ANNOTATIONS: u64 = 0x71;
    pub const MESSAGE_ANNOTATIONS: u64 = 0x72;
    pub const PROPERTIES: u64 = 0x73;
    pub const APPLICATION_PROPERTIES: u64 = 0x74;
    pub const DATA: u64 = 0x75;
    pub const AMQP_SEQUENCE: u64 = 0x76;
    pub const AMQP_VALUE: u64 = 0x77;
    pub const FOOTER: u64 = 0x78;
}

/// Message format of an Event Hubs batch: every data section of the outer message holds one
/// encoded event.
pub const BATCH_FORMAT: u32 = 0x8001_3700;

/// Event Hubs message annotations.
pub mod annotation {
    pub const SEQUENCE_NUMBER: &str = "x-opt-sequence-number";
    pub const OFFSET: &str = "x-opt-offset";
    pub const ENQUEUED_TIME: &str = "x-opt-enqueued-time";
    pub const PARTITION_KEY: &str = "x-opt-partition-key";
}

/// Why a message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("message section {index} is not a described section")]
    NotASection { index: usize },
    #[error("unknown message section code 0x{code:x}")]
    UnknownSection { code: u64 },
}

/// A message, section by section. Sections are kept as values so a message is forwarded
/// unchanged apart from the annotations the endpoint adds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Message {
    pub header: Option<Value>,
    pub delivery_annotations: Option<Value>,
    pub message_annotations: Vec<(Value, Value)>,
    /// The `properties` section's fields (message-id, user-id, to, subject, reply-to,
    /// correlation-id, content-type, ...), in order.
    pub properties: Option<Vec<Value>>,
    pub application_properties: Vec<(Value, Value)>,
    /// Body sections: data, amqp-sequence or amqp-value, as sent.
    pub body: Vec<Value>,
    pub footer: Option<Value>,
}

/// Positions in the properties section.
pub mod property {
    pub const MESSAGE_ID: usize = 0;
    pub const TO: usize = 2;
    pub const REPLY_TO: usize = 4;
    pub const CORRELATION_ID: usize = 5;
    pub const CONTENT_TYPE: usize = 6;
}

fn described_map(v: &Value) -> Vec<(Value, Value)> {
    match v {
        Value::Described(_, inner) => match inner.as_ref() {
            Value::Map(pairs) => pairs.clone(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

impl Message {
    /// A message with one data section.
    pub fn with_data(body: Vec<u8>) -> Self {
        Self {
            body: vec![Value::Described(
                Box::new(Value::Ulong(section::DATA)),
                Box::new(Value::Binary(body)),
            )],
            ..Self::default()
        }
    }

    /// A message whose body is one amqp-value section.
    pub fn with_value(value: Value) -> Self {
        Self {
            body: vec![Value::Described(
                Box::new(Value::Ulong(section::AMQP_VALUE)),
                Box::new(value),
            )],
            ..Self::default()
        }
    }

    /// Decode a message from a transfer's payload.
    pub fn decode(bytes: &[u8]) -> Result<Self, MessageError> {
        let mut msg = Message::default();
        for (index, value) in Value::decode_all(bytes)?.into_iter().enumerate() {
            let code = value
                .descriptor_code()
                .ok_or(MessageError::NotASection { index })?;
            match code {
                section::HEADER => msg.header = Some(value),
                section::DELIVERY_ANNOTATIONS => msg.delivery_annotations = Some(value),
                section::MESSAGE_ANNOTATIONS => msg.message_annotations = described_map(&value),
                section::PROPERTIES => {
                    msg.properties = match value {
                        Value::Described(_, inner) => match *inner {
                            Value::List(items) => Some(items),
                            _ => Some(Vec::new()),
                        },
                        _ => None,
                    }
                }
                section::APPLICATION_PROPERTIES => {
                    msg.application_properties = described_map(&value)
                }
                section::DATA | section::AMQP_SEQUENCE | section::AMQP_VALUE => {
                    msg.body.push(value)
                }
                section::FOOTER => msg.footer = Some(value),
                code => return Err(MessageError::UnknownSection { code }),
            }
        }
        Ok(msg)
    }

    /// Encode all sections in their standard order.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let described =
            |code: u64, v: Value| Value::Described(Box::new(Value::Ulong(code)), Box::new(v));
        if let Some(h) = &self.header {
            h.encode(out);
        }
        if let Some(d) = &self.delivery_annotations {
            d.encode(out);
        }
        if !self.message_annotations.is_empty() {
            described(
                section::MESSAGE_ANNOTATIONS,
                Value::Map(self.message_annotations.clone()),
            )
            .encode(out);
        }
        if let Some(p) = &self.properties {
            described(section::PROPERTIES, Value::List(p.clone())).encode(out);
        }
        if !self.application_properties.is_empty() {
            described(
                section::APPLICATION_PROPERTIES,
                Value::Map(self.application_properties.clone()),
            )
            .encode(out);
        }
        for b in &self.body {
            b.encode(out);
        }
        if let Some(f) = &self.footer {
            f.encode(out);
        }
    }

    /// The encoded bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// The payloads of the data sections.
    pub fn data_sections(&self) -> impl Iterator<Item = &[u8]> {
        self.body.iter().filter_map(|s| match s {
            Value::Described(d, inner) if d.as_u64() == Some(section::DATA) => match inner.as_ref()
            {
                Value::Binary(b) => Some(b.as_slice()),
                _ => None,
            },
            _ => None,
        })
    }

    /// The value of the single amqp-value body section, if that is the body.
    pub fn body_value(&self) -> Option<&Value> {
        self.body.iter().find_map(|s| match s {
            Value::Described(d, inner) if d.as_u64() == Some(section::AMQP_VALUE) => Some(&**inner),
            _ => None,
        })
    }

    /// A message annotation by symbol/string key.
    pub fn annotation(&self, key: &str) -> Option<&Value> {
        self.message_annotations
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// Set (or replace) a message annotation, keyed by symbol.
    pub fn set_annotation(&mut self, key: &str, value: Value) {
        match self
            .message_annotations
            .iter_mut()
            .find(|(k, _)| k.as_str() == Some(key))
        {
            Some((_, v)) => *v = value,
            None => self.message_annotations.push((Value::symbol(key), value)),
        }
    }

    /// The Event Hubs partition key annotation.
    pub fn partition_key(&self) -> Option<&str> {
        self.annotation(annotation::PARTITION_KEY)
            .and_then(Value::as_str)
    }

    /// A field of the properties section.
    pub fn property(&self, index: usize) -> Option<&Value> {
        self.properties
            .as_ref()
            .and_then(|p| p.get(index))
            .filter(|v| !v.is_null())
    }

    /// Set a field of the properties section, growing it with nulls as needed.
    pub fn set_property(&mut self, index: usize, value: Value) {
        let props = self.properties.get_or_insert_with(Vec::new);
        if props.len() <= index {
            props.resize(index + 1, Value::Null);
        }
        props[index] = value;
    }

    /// An application property by string key.
    pub fn application_property(&self, key: &str) -> Option<&Value> {
        self.application_properties
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_message_round_trips_and_keeps_section_order() {
        let mut msg = Message::with_data(b"{\"value\":10}".to_vec());
        msg.header = Some(Value::described(section::HEADER, vec![Value::Bool(true)]));
        msg.set_annotation(annotation::PARTITION_KEY, Value::string("device-1"));
        msg.set_property(property::MESSAGE_ID, Value::string("m-1"));
        msg.set_property(property::CONTENT_TYPE, Value::symbol("application/json"));
        msg.application_properties = vec![(Value::string("kind"), Value::string("reading"))];

        let bytes = msg.to_bytes();
        let back = Message::decode(&bytes).unwrap();
        assert_eq!(back, msg);
        assert_eq!(back.partition_key(), Some("device-1"));
        assert_eq!(
            back.property(property::CONTENT_TYPE)
                .and_then(Value::as_str),
            Some("application/json")
        );
        assert_eq!(back.property(property::CORRELATION_ID), None);
        assert_eq!(
            back.data_sections().collect::<Vec<_>>(),
            vec![&b"{\"value\":10}"[..]]
        );
        assert_eq!(
            back.application_property("kind").and_then(Value::as_str),
            Some("reading")
        );
    }

    #[test]
    fn annotations_are_replaced_not_duplicated() {
        let mut msg = Message::with_data(vec![]);
        msg.set_annotation(annotation::SEQUENCE_NUMBER, Value::Long(1));
        msg.set_annotation(annotation::SEQUENCE_NUMBER, Value::Long(2));
        assert_eq!(msg.message_annotations.len(), 1);
        assert_eq!(
            msg.annotation(annotation::SEQUENCE_NUMBER),
            Some(&Value::Long(2))
        );
    }

    #[test]
    fn a_batch_carries_one_encoded_event_per_data_section() {
        let events: Vec<Vec<u8>> = (0..3)
            .map(|i| Message::with_data(format!("event {i}").into_bytes()).to_bytes())
            .collect();
        let mut batch = Message::default();
        for e in &events {
            batch.body.push(Value::Described(
                Box::new(Value::Ulong(section::DATA)),
                Box::new(Value::Binary(e.clone())),
            ));
        }
        let back = Message::decode(&batch.to_bytes()).unwrap();
        let inner: Vec<Message> = back
            .data_sections()
            .map(|d| Message::decode(d).unwrap())
            .collect();
        assert_eq!(inner.len(), 3);
        assert_eq!(inner[2].data_sections().next(), Some(&b"event 2"[..]));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(
            Message::decode(&[0x40]).is_err(),
            "a bare null is no section"
        );
        assert!(Message::decode(&[0x00, 0x53, 0x99, 0x40]).is_err());
        assert!(Message::decode(&[0x00, 0x53, 0x75, 0xa0, 9]).is_err());
    }
}
