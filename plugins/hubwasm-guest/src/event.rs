//! Zero-copy views of an [`EventBatch`].

use crate::bindings::hubwasm::plugin::types::{EventBatch, EventMeta, PropertySlot, Span};

/// A batch of consecutive events of one partition.
#[derive(Clone, Copy)]
pub struct Batch<'a> {
    raw: &'a EventBatch,
}

impl<'a> Batch<'a> {
    /// View a batch as the host sent it.
    pub fn new(raw: &'a EventBatch) -> Self {
        Self { raw }
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.raw.events.len()
    }

    /// True if the batch has no events.
    pub fn is_empty(&self) -> bool {
        self.raw.events.is_empty()
    }

    /// The event at `index`.
    pub fn get(&self, index: usize) -> Option<Event<'a>> {
        self.raw.events.get(index).map(|meta| Event {
            batch: self.raw,
            meta,
        })
    }

    /// The events in partition order.
    pub fn iter(&self) -> Events<'a> {
        Events {
            batch: self.raw,
            metas: self.raw.events.iter(),
        }
    }

    /// The raw WIT record.
    pub fn raw(&self) -> &'a EventBatch {
        self.raw
    }
}

impl<'a> IntoIterator for &Batch<'a> {
    type Item = Event<'a>;
    type IntoIter = Events<'a>;
    fn into_iter(self) -> Events<'a> {
        self.iter()
    }
}

/// Iterator over the events of a [`Batch`].
pub struct Events<'a> {
    batch: &'a EventBatch,
    metas: std::slice::Iter<'a, EventMeta>,
}

impl<'a> Iterator for Events<'a> {
    type Item = Event<'a>;

    fn next(&mut self) -> Option<Event<'a>> {
        self.metas.next().map(|meta| Event {
            batch: self.batch,
            meta,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.metas.size_hint()
    }
}

impl ExactSizeIterator for Events<'_> {}

/// A typed application property value, borrowed from the batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    Text(&'a str),
    Binary(&'a [u8]),
    /// Milliseconds since the Unix epoch (UTC).
    Timestamp(i64),
    /// Canonical hyphenated UUID text.
    Uuid(&'a str),
}

/// One event, borrowed from its batch.
///
/// Text accessors return `""` (or `None` for optional fields) if the host sent bytes that are
/// not UTF-8 or a range outside the batch; they never panic.
#[derive(Clone, Copy)]
pub struct Event<'a> {
    batch: &'a EventBatch,
    meta: &'a EventMeta,
}

fn bytes<'a>(data: &'a [u8], span: &Span) -> &'a [u8] {
    let start = span.start as usize;
    start
        .checked_add(span.len as usize)
        .and_then(|end| data.get(start..end))
        .unwrap_or(&[])
}

fn text<'a>(data: &'a [u8], span: &Span) -> &'a str {
    std::str::from_utf8(bytes(data, span)).unwrap_or_default()
}

impl<'a> Event<'a> {
    /// The body, unchanged.
    pub fn body(&self) -> &'a [u8] {
        bytes(&self.batch.data, &self.meta.body)
    }

    /// Sequence number in the partition.
    pub fn sequence_number(&self) -> i64 {
        self.meta.sequence_number
    }

    /// Offset in the partition, as Event Hubs reports it.
    pub fn offset(&self) -> &'a str {
        text(&self.batch.data, &self.meta.offset)
    }

    /// When Event Hubs accepted the event, milliseconds since the Unix epoch (UTC).
    pub fn enqueued_time_ms(&self) -> i64 {
        self.meta.enqueued_time_ms
    }

    fn optional(&self, span: &Option<Span>) -> Option<&'a str> {
        span.as_ref().map(|s| text(&self.batch.data, s))
    }

    /// The producer's partition key, if any.
    pub fn partition_key(&self) -> Option<&'a str> {
        self.optional(&self.meta.partition_key)
    }

    /// The content type, if set.
    pub fn content_type(&self) -> Option<&'a str> {
        self.optional(&self.meta.content_type)
    }

    /// The correlation id, if set.
    pub fn correlation_id(&self) -> Option<&'a str> {
        self.optional(&self.meta.correlation_id)
    }

    /// The message id, if set.
    pub fn message_id(&self) -> Option<&'a str> {
        self.optional(&self.meta.message_id)
    }

    /// Application properties in the order they were sent.
    pub fn properties(&self) -> impl Iterator<Item = (&'a str, Value<'a>)> + 'a {
        let batch = self.batch;
        let span = &self.meta.properties;
        let start = span.start as usize;
        let entries = start
            .checked_add(span.len as usize)
            .and_then(|end| batch.properties.get(start..end))
            .unwrap_or(&[]);
        entries.iter().map(move |entry| {
            let data = &batch.data;
            let value = match &entry.value {
                PropertySlot::Null => Value::Null,
                PropertySlot::Boolean(b) => Value::Bool(*b),
                PropertySlot::Integer(i) => Value::Int(*i),
                PropertySlot::Double(d) => Value::Double(*d),
                PropertySlot::Text(s) => Value::Text(text(data, s)),
                PropertySlot::Binary(s) => Value::Binary(bytes(data, s)),
                PropertySlot::Timestamp(t) => Value::Timestamp(*t),
                PropertySlot::Uuid(s) => Value::Uuid(text(data, s)),
            };
            (text(data, &entry.key), value)
        })
    }

    /// The first property called `name`.
    pub fn property(&self, name: &str) -> Option<Value<'a>> {
        self.properties().find(|(k, _)| *k == name).map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::hubwasm::plugin::types::PropertyEntry;

    fn span(start: u32, len: u32) -> Span {
        Span { start, len }
    }

    fn sample() -> EventBatch {
        // data: "hello" "0" "key" "kind" "reading" "world" "5" "\xff"
        let data = b"hello0keykindreadingworld5\xff".to_vec();
        EventBatch {
            data,
            events: vec![
                EventMeta {
                    sequence_number: 10,
                    enqueued_time_ms: 1_700_000_000_000,
                    body: span(0, 5),
                    offset: span(5, 1),
                    partition_key: Some(span(6, 3)),
                    content_type: None,
                    correlation_id: None,
                    message_id: Some(span(26, 1)),
                    properties: span(0, 2),
                },
                EventMeta {
                    sequence_number: 11,
                    enqueued_time_ms: 1_700_000_000_001,
                    body: span(20, 5),
                    offset: span(25, 1),
                    partition_key: None,
                    content_type: None,
                    correlation_id: None,
                    message_id: None,
                    // Out of range: must read as no properties, not panic.
                    properties: span(7, 3),
                },
            ],
            properties: vec![
                PropertyEntry {
                    key: span(9, 4),
                    value: PropertySlot::Text(span(13, 7)),
                },
                PropertyEntry {
                    key: span(9, 4),
                    value: PropertySlot::Integer(3),
                },
            ],
        }
    }

    #[test]
    fn events_borrow_their_fields_from_the_batch() {
        let raw = sample();
        let batch = Batch::new(&raw);
        assert_eq!(batch.len(), 2);
        assert!(!batch.is_empty());
        let first = batch.get(0).unwrap();
        assert_eq!(first.body(), b"hello");
        assert_eq!(first.offset(), "0");
        assert_eq!(first.sequence_number(), 10);
        assert_eq!(first.partition_key(), Some("key"));
        assert_eq!(first.content_type(), None);
        assert_eq!(first.message_id(), Some(""), "invalid UTF-8 reads as empty");
        let props: Vec<_> = first.properties().collect();
        assert_eq!(
            props,
            vec![("kind", Value::Text("reading")), ("kind", Value::Int(3))]
        );
        assert_eq!(first.property("kind"), Some(Value::Text("reading")));
        assert_eq!(first.property("missing"), None);

        let second = batch.get(1).unwrap();
        assert_eq!(second.body(), b"world");
        assert_eq!(second.properties().count(), 0);
        assert!(batch.get(2).is_none());
    }

    #[test]
    fn iteration_is_in_order_and_exact_size() {
        let raw = sample();
        let batch = Batch::new(&raw);
        let iter = batch.iter();
        assert_eq!(iter.len(), 2);
        let seqs: Vec<i64> = (&batch).into_iter().map(|e| e.sequence_number()).collect();
        assert_eq!(seqs, vec![10, 11]);
    }

    #[test]
    fn out_of_range_spans_read_as_empty() {
        let mut raw = sample();
        raw.events[0].body = span(u32::MAX, 10);
        let batch = Batch::new(&raw);
        assert_eq!(batch.get(0).unwrap().body(), b"");
    }
}
