//! Zero-copy views of an [`EventBatch`].

use crate::bindings::hubwasm::plugin::types::{EventBatch, PropertySlot, Span, SpanField};

/// Spans per event in `EventBatch::spans` (the cases of `SpanField`).
const FIELDS: usize = 7;

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
        self.raw.sequence_numbers.len()
    }

    /// True if the batch has no events.
    pub fn is_empty(&self) -> bool {
        self.raw.sequence_numbers.is_empty()
    }

    /// The event at `index`.
    pub fn get(&self, index: usize) -> Option<Event<'a>> {
        (index < self.len()).then_some(Event {
            batch: self.raw,
            index,
        })
    }

    /// The events in partition order.
    pub fn iter(&self) -> Events<'a> {
        Events {
            batch: self.raw,
            range: 0..self.len(),
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
    range: std::ops::Range<usize>,
}

impl<'a> Iterator for Events<'a> {
    type Item = Event<'a>;

    fn next(&mut self) -> Option<Event<'a>> {
        self.range.next().map(|index| Event {
            batch: self.batch,
            index,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.range.size_hint()
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
    index: usize,
}

fn bytes(data: &[u8], start: u32, len: u32) -> &[u8] {
    let start = start as usize;
    start
        .checked_add(len as usize)
        .and_then(|end| data.get(start..end))
        .unwrap_or(&[])
}

fn text<'a>(data: &'a [u8], span: &Span) -> &'a str {
    std::str::from_utf8(bytes(data, span.start, span.len)).unwrap_or_default()
}

impl<'a> Event<'a> {
    /// (start, len) of `field`, `None` if absent or missing.
    fn span(&self, field: SpanField) -> Option<(u32, u32)> {
        let at = (self.index * FIELDS + field as usize) * 2;
        match self.batch.spans.get(at..at + 2) {
            Some(&[start, len]) if start != u32::MAX => Some((start, len)),
            _ => None,
        }
    }

    fn field_bytes(&self, field: SpanField) -> Option<&'a [u8]> {
        let batch = self.batch;
        self.span(field)
            .map(|(start, len)| bytes(&batch.data, start, len))
    }

    fn field_text(&self, field: SpanField) -> Option<&'a str> {
        self.field_bytes(field)
            .map(|b| std::str::from_utf8(b).unwrap_or_default())
    }

    /// The body, unchanged.
    pub fn body(&self) -> &'a [u8] {
        self.field_bytes(SpanField::Body).unwrap_or(&[])
    }

    /// Sequence number in the partition.
    pub fn sequence_number(&self) -> i64 {
        self.batch.sequence_numbers[self.index]
    }

    /// Offset in the partition, as Event Hubs reports it.
    pub fn offset(&self) -> &'a str {
        self.field_text(SpanField::Offset).unwrap_or_default()
    }

    /// When Event Hubs accepted the event, milliseconds since the Unix epoch (UTC).
    pub fn enqueued_time_ms(&self) -> i64 {
        self.batch
            .enqueued_times_ms
            .get(self.index)
            .copied()
            .unwrap_or_default()
    }

    /// The producer's partition key, if any.
    pub fn partition_key(&self) -> Option<&'a str> {
        self.field_text(SpanField::PartitionKey)
    }

    /// The content type, if set.
    pub fn content_type(&self) -> Option<&'a str> {
        self.field_text(SpanField::ContentType)
    }

    /// The correlation id, if set.
    pub fn correlation_id(&self) -> Option<&'a str> {
        self.field_text(SpanField::CorrelationId)
    }

    /// The message id, if set.
    pub fn message_id(&self) -> Option<&'a str> {
        self.field_text(SpanField::MessageId)
    }

    /// Application properties in the order they were sent.
    pub fn properties(&self) -> impl Iterator<Item = (&'a str, Value<'a>)> + 'a {
        let batch = self.batch;
        let entries = self
            .span(SpanField::Properties)
            .and_then(|(start, len)| {
                let start = start as usize;
                batch
                    .properties
                    .get(start..start.checked_add(len as usize)?)
            })
            .unwrap_or(&[]);
        entries.iter().map(move |entry| {
            let data = &batch.data;
            let value = match &entry.value {
                PropertySlot::Null => Value::Null,
                PropertySlot::Boolean(b) => Value::Bool(*b),
                PropertySlot::Integer(i) => Value::Int(*i),
                PropertySlot::Double(d) => Value::Double(*d),
                PropertySlot::Text(s) => Value::Text(text(data, s)),
                PropertySlot::Binary(s) => Value::Binary(bytes(data, s.start, s.len)),
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

    const NONE: [u32; 2] = [u32::MAX, 0];

    fn sample() -> EventBatch {
        // data: "hello" "0" "key" "kind" "reading" "world" "5" "\xff"
        let data = b"hello0keykindreadingworld5\xff".to_vec();
        #[rustfmt::skip]
        let spans = [
            // event 0: body, offset, key, content type, correlation id, message id, properties
            [0, 5], [5, 1], [6, 3], NONE, NONE, [26, 1], [0, 2],
            // event 1; its property range is outside the list: must read as none, not panic
            [20, 5], [25, 1], NONE, NONE, NONE, NONE, [7, 3],
        ];
        EventBatch {
            sequence_numbers: vec![10, 11],
            enqueued_times_ms: vec![1_700_000_000_000, 1_700_000_000_001],
            spans: spans.concat(),
            data,
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
        assert_eq!(first.enqueued_time_ms(), 1_700_000_000_000);
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
        raw.spans[0] = u32::MAX - 1; // body start far outside `data`
        raw.spans.truncate(20); // event 1's later spans are missing
        let batch = Batch::new(&raw);
        assert_eq!(batch.get(0).unwrap().body(), b"");
        assert_eq!(batch.get(1).unwrap().message_id(), None);
        assert_eq!(batch.get(1).unwrap().properties().count(), 0);
    }
}
