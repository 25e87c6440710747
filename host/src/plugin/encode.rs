//! Turning host [`Event`]s into the WIT shapes plugins receive.
//!
//! The batch shape keeps every variable-length item in one buffer, so copying a batch into the
//! guest is two or three bulk copies instead of one allocation per string. The encoder keeps its
//! buffers between calls, so steady-state encoding allocates nothing.

use super::bindings::types as wit;
use crate::event::{Event, PartitionContext, PropertyValue};

/// Reusable encoder for [`wit::EventBatch`].
#[derive(Default)]
pub(crate) struct BatchEncoder {
    batch: Option<wit::EventBatch>,
}

/// Spans per event in `event-batch.spans` (the cases of `span-field`).
const FIELDS: usize = 7;
/// Start of an absent optional field.
const ABSENT: u32 = u32::MAX;

impl BatchEncoder {
    /// Encode `events` into the reusable batch and return it.
    pub(crate) fn encode(&mut self, events: &[Event]) -> &wit::EventBatch {
        let batch = self.batch.get_or_insert_with(|| wit::EventBatch {
            sequence_numbers: Vec::new(),
            enqueued_times_ms: Vec::new(),
            spans: Vec::new(),
            data: Vec::new(),
            properties: Vec::new(),
        });
        batch.sequence_numbers.clear();
        batch.enqueued_times_ms.clear();
        batch.spans.clear();
        batch.data.clear();
        batch.properties.clear();
        let bytes: usize = events.iter().map(|e| e.body.len() + e.offset.len()).sum();
        batch.data.reserve(bytes);
        batch.spans.reserve(events.len() * FIELDS * 2);

        for event in events {
            batch.sequence_numbers.push(event.sequence_number);
            batch.enqueued_times_ms.push(event.enqueued_time_ms);
            let (data, spans) = (&mut batch.data, &mut batch.spans);
            push(data, spans, Some(&event.body));
            push(data, spans, Some(event.offset.as_bytes()));
            for optional in [
                &event.partition_key,
                &event.content_type,
                &event.correlation_id,
                &event.message_id,
            ] {
                push(data, spans, optional.as_deref().map(str::as_bytes));
            }
            let first_property = batch.properties.len();
            for (key, value) in &event.properties {
                let key = span(data, key.as_bytes());
                let value = match value {
                    PropertyValue::Null => wit::PropertySlot::Null,
                    PropertyValue::Bool(b) => wit::PropertySlot::Boolean(*b),
                    PropertyValue::Int(i) => wit::PropertySlot::Integer(*i),
                    PropertyValue::Double(d) => wit::PropertySlot::Double(*d),
                    PropertyValue::Text(s) => wit::PropertySlot::Text(span(data, s.as_bytes())),
                    PropertyValue::Binary(b) => wit::PropertySlot::Binary(span(data, b)),
                    PropertyValue::Timestamp(t) => wit::PropertySlot::Timestamp(*t),
                    PropertyValue::Uuid(s) => wit::PropertySlot::Uuid(span(data, s.as_bytes())),
                };
                batch.properties.push(wit::PropertyEntry { key, value });
            }
            spans.push(first_property as u32);
            spans.push((batch.properties.len() - first_property) as u32);
        }
        batch
    }
}

/// Append `bytes` to `data` and its (start, len) to `spans`; `None` records an absent field.
/// A batch is bounded far below 4 GiB by the event size limit times the batch size.
fn push(data: &mut Vec<u8>, spans: &mut Vec<u32>, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => {
            spans.push(data.len() as u32);
            spans.push(bytes.len() as u32);
            data.extend_from_slice(bytes);
        }
        None => {
            spans.push(ABSENT);
            spans.push(0);
        }
    }
}

fn span(data: &mut Vec<u8>, bytes: &[u8]) -> wit::Span {
    let start = data.len() as u32;
    data.extend_from_slice(bytes);
    wit::Span {
        start,
        len: bytes.len() as u32,
    }
}

/// The self-contained event record of the per-event world.
pub(crate) fn event_record(event: &Event) -> wit::Event {
    wit::Event {
        body: event.body.clone(),
        sequence_number: event.sequence_number,
        offset: event.offset.clone(),
        enqueued_time_ms: event.enqueued_time_ms,
        partition_key: event.partition_key.clone(),
        content_type: event.content_type.clone(),
        correlation_id: event.correlation_id.clone(),
        message_id: event.message_id.clone(),
        properties: event
            .properties
            .iter()
            .map(|(key, value)| wit::Property {
                key: key.clone(),
                value: match value {
                    PropertyValue::Null => wit::PropertyValue::Null,
                    PropertyValue::Bool(b) => wit::PropertyValue::Boolean(*b),
                    PropertyValue::Int(i) => wit::PropertyValue::Integer(*i),
                    PropertyValue::Double(d) => wit::PropertyValue::Double(*d),
                    PropertyValue::Text(s) => wit::PropertyValue::Text(s.clone()),
                    PropertyValue::Binary(b) => wit::PropertyValue::Binary(b.clone()),
                    PropertyValue::Timestamp(t) => wit::PropertyValue::Timestamp(*t),
                    PropertyValue::Uuid(s) => wit::PropertyValue::Uuid(s.clone()),
                },
            })
            .collect(),
    }
}

pub(crate) fn context_record(ctx: &PartitionContext) -> wit::PartitionContext {
    wit::PartitionContext {
        namespace: ctx.namespace.clone(),
        event_hub: ctx.event_hub.clone(),
        consumer_group: ctx.consumer_group.clone(),
        partition_id: ctx.partition_id.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Field `f` of event `i`, or `None` if absent.
    fn field(batch: &wit::EventBatch, i: usize, f: wit::SpanField) -> Option<&[u8]> {
        let at = (i * FIELDS + f as usize) * 2;
        let (start, len) = (batch.spans[at], batch.spans[at + 1]);
        (start != ABSENT).then(|| &batch.data[start as usize..(start + len) as usize])
    }

    fn slice<'a>(data: &'a [u8], span: &wit::Span) -> &'a [u8] {
        &data[span.start as usize..(span.start + span.len) as usize]
    }

    #[test]
    fn batch_columns_locate_each_events_fields() {
        let mut second = Event::new(b"second body".to_vec(), 8, "120");
        second.partition_key = Some("key-1".into());
        second.message_id = Some(String::new());
        second.enqueued_time_ms = 1_700_000_000_000;
        second.properties = vec![
            ("kind".into(), PropertyValue::Text("reading".into())),
            ("n".into(), PropertyValue::Int(3)),
        ];
        let events = vec![Event::new(b"{\"a\":1}".to_vec(), 7, "0"), second];

        let mut encoder = BatchEncoder::default();
        // Encode twice: the second run must not keep anything of the first.
        encoder.encode(&events[1..]);
        let batch = encoder.encode(&events);

        assert_eq!(batch.sequence_numbers, vec![7, 8]);
        assert_eq!(batch.enqueued_times_ms, vec![0, 1_700_000_000_000]);
        assert_eq!(batch.spans.len(), 2 * FIELDS * 2);
        use wit::SpanField as F;
        assert_eq!(field(batch, 0, F::Body), Some(&b"{\"a\":1}"[..]));
        assert_eq!(field(batch, 0, F::Offset), Some(&b"0"[..]));
        assert_eq!(field(batch, 0, F::PartitionKey), None);
        assert_eq!(
            field(batch, 0, F::Properties),
            Some(&b""[..]),
            "zero properties"
        );
        assert_eq!(field(batch, 1, F::Body), Some(&b"second body"[..]));
        assert_eq!(field(batch, 1, F::Offset), Some(&b"120"[..]));
        assert_eq!(field(batch, 1, F::PartitionKey), Some(&b"key-1"[..]));
        assert_eq!(field(batch, 1, F::ContentType), None);
        assert_eq!(
            field(batch, 1, F::MessageId),
            Some(&b""[..]),
            "empty but present"
        );
        let at = (FIELDS + F::Properties as usize) * 2;
        assert_eq!((batch.spans[at], batch.spans[at + 1]), (0, 2));
        let first = &batch.properties[0];
        assert_eq!(slice(&batch.data, &first.key), b"kind");
        match &first.value {
            wit::PropertySlot::Text(s) => assert_eq!(slice(&batch.data, s), b"reading"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            batch.properties[1].value,
            wit::PropertySlot::Integer(3)
        ));
    }
}
