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

impl BatchEncoder {
    /// Encode `events` into the reusable batch and return it.
    pub(crate) fn encode(&mut self, events: &[Event]) -> &wit::EventBatch {
        let batch = self.batch.get_or_insert_with(|| wit::EventBatch {
            data: Vec::new(),
            events: Vec::new(),
            properties: Vec::new(),
        });
        batch.data.clear();
        batch.events.clear();
        batch.properties.clear();
        let bytes: usize = events.iter().map(|e| e.body.len() + e.offset.len()).sum();
        batch.data.reserve(bytes);
        batch.events.reserve(events.len());

        for event in events {
            let data = &mut batch.data;
            let body = push(data, &event.body);
            let offset = push(data, event.offset.as_bytes());
            let partition_key = event
                .partition_key
                .as_deref()
                .map(|s| push(data, s.as_bytes()));
            let content_type = event
                .content_type
                .as_deref()
                .map(|s| push(data, s.as_bytes()));
            let correlation_id = event
                .correlation_id
                .as_deref()
                .map(|s| push(data, s.as_bytes()));
            let message_id = event
                .message_id
                .as_deref()
                .map(|s| push(data, s.as_bytes()));
            let first_property = batch.properties.len();
            for (key, value) in &event.properties {
                let key = push(data, key.as_bytes());
                let value = match value {
                    PropertyValue::Null => wit::PropertySlot::Null,
                    PropertyValue::Bool(b) => wit::PropertySlot::Boolean(*b),
                    PropertyValue::Int(i) => wit::PropertySlot::Integer(*i),
                    PropertyValue::Double(d) => wit::PropertySlot::Double(*d),
                    PropertyValue::Text(s) => wit::PropertySlot::Text(push(data, s.as_bytes())),
                    PropertyValue::Binary(b) => wit::PropertySlot::Binary(push(data, b)),
                    PropertyValue::Timestamp(t) => wit::PropertySlot::Timestamp(*t),
                    PropertyValue::Uuid(s) => wit::PropertySlot::Uuid(push(data, s.as_bytes())),
                };
                batch.properties.push(wit::PropertyEntry { key, value });
            }
            batch.events.push(wit::EventMeta {
                sequence_number: event.sequence_number,
                enqueued_time_ms: event.enqueued_time_ms,
                body,
                offset,
                partition_key,
                content_type,
                correlation_id,
                message_id,
                properties: span(first_property, batch.properties.len() - first_property),
            });
        }
        batch
    }
}

fn span(start: usize, len: usize) -> wit::Span {
    // A batch is bounded far below 4 GiB by the event size limit times the batch size.
    wit::Span {
        start: start as u32,
        len: len as u32,
    }
}

fn push(data: &mut Vec<u8>, bytes: &[u8]) -> wit::Span {
    let start = data.len();
    data.extend_from_slice(bytes);
    span(start, bytes.len())
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

    fn slice<'a>(data: &'a [u8], span: &wit::Span) -> &'a [u8] {
        &data[span.start as usize..(span.start + span.len) as usize]
    }

    #[test]
    fn batch_spans_point_at_each_events_bytes() {
        let mut second = Event::new(b"second body".to_vec(), 8, "120");
        second.partition_key = Some("key-1".into());
        second.properties = vec![
            ("kind".into(), PropertyValue::Text("reading".into())),
            ("n".into(), PropertyValue::Int(3)),
        ];
        let events = vec![Event::new(b"{\"a\":1}".to_vec(), 7, "0"), second];

        let mut encoder = BatchEncoder::default();
        // Encode twice: the second run must not keep anything of the first.
        encoder.encode(&events[..1]);
        let batch = encoder.encode(&events);

        assert_eq!(batch.events.len(), 2);
        let (a, b) = (&batch.events[0], &batch.events[1]);
        assert_eq!(slice(&batch.data, &a.body), b"{\"a\":1}");
        assert_eq!(slice(&batch.data, &a.offset), b"0");
        assert!(a.partition_key.is_none());
        assert_eq!(a.properties.len, 0);
        assert_eq!(b.sequence_number, 8);
        assert_eq!(slice(&batch.data, &b.body), b"second body");
        assert_eq!(slice(&batch.data, &b.offset), b"120");
        assert_eq!(
            slice(&batch.data, b.partition_key.as_ref().unwrap()),
            b"key-1"
        );
        assert_eq!((b.properties.start, b.properties.len), (0, 2));
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
