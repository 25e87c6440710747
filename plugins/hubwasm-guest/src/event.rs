//! Zero-copy views of an [`EventBatch`] of contract 0.2.0, whose columns are little-endian bytes.
//!
//! Nothing is decoded until an accessor reads it, and every read is bounds-checked: a column
//! that is too short or a range outside `data` reads as absent or empty, never as a panic.

use crate::bindings::hubwasm::plugin::types::{EventBatch, PropertyKind, SpanField};

/// Spans per event in `EventBatch::spans` (the cases of `SpanField`).
const FIELDS: usize = 7;
/// Bytes per span: a little-endian u32 start, then a u32 length.
const SPAN_BYTES: usize = 8;
/// Bytes per entry of `EventBatch::properties`: name start, name length, kind, zero (u32 each),
/// then the 8-byte value word.
const ENTRY_BYTES: usize = 24;
/// Start of an absent optional field.
const ABSENT: u32 = u32::MAX;

// `PropertyKind` discriminants as they appear in an entry's kind word.
const NULL: u32 = PropertyKind::Null as u32;
const BOOLEAN: u32 = PropertyKind::Boolean as u32;
const INTEGER: u32 = PropertyKind::Integer as u32;
const DOUBLE: u32 = PropertyKind::Double as u32;
const TEXT: u32 = PropertyKind::Text as u32;
const BINARY: u32 = PropertyKind::Binary as u32;
const TIMESTAMP: u32 = PropertyKind::Timestamp as u32;
const UUID: u32 = PropertyKind::Uuid as u32;

/// The little-endian u32 at byte `at`, if all 4 bytes are there.
#[inline]
fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    bytes
        .get(at..)?
        .first_chunk()
        .map(|w| u32::from_le_bytes(*w))
}

/// The little-endian u64 at byte `at`, if all 8 bytes are there.
#[inline]
fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    bytes
        .get(at..)?
        .first_chunk()
        .map(|w| u64::from_le_bytes(*w))
}

/// A (start, len) pair stored as one little-endian u64: start in the low 32 bits. Spans and the
/// value word of text/binary/uuid properties share this layout, so one read gets both.
#[inline]
fn range(word: u64) -> (u32, u32) {
    (word as u32, (word >> 32) as u32)
}

/// `len` bytes of `data` from `start`; empty if outside.
#[inline]
fn bytes(data: &[u8], (start, len): (u32, u32)) -> &[u8] {
    let start = start as usize;
    start
        .checked_add(len as usize)
        .and_then(|end| data.get(start..end))
        .unwrap_or(&[])
}

/// Like [`bytes`] as UTF-8; `""` if not UTF-8.
#[inline]
fn text(data: &[u8], range: (u32, u32)) -> &str {
    std::str::from_utf8(bytes(data, range)).unwrap_or_default()
}

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

    /// Number of events (8 bytes of `sequence_numbers` each).
    pub fn len(&self) -> usize {
        self.raw.sequence_numbers.len() / 8
    }

    /// True if the batch has no events.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

impl<'a> Event<'a> {
    /// (start, len) of `field`, `None` if absent or outside `spans`.
    #[inline]
    fn span(&self, field: SpanField) -> Option<(u32, u32)> {
        let at = (self
            .index
            .checked_mul(FIELDS)?
            .checked_add(field as usize)?)
        .checked_mul(SPAN_BYTES)?;
        let (start, len) = range(u64_at(&self.batch.spans, at)?);
        (start != ABSENT).then_some((start, len))
    }

    fn field_bytes(&self, field: SpanField) -> Option<&'a [u8]> {
        let data = &self.batch.data;
        self.span(field).map(|span| bytes(data, span))
    }

    fn field_text(&self, field: SpanField) -> Option<&'a str> {
        self.field_bytes(field)
            .map(|b| std::str::from_utf8(b).unwrap_or_default())
    }

    /// The 8-byte column value of this event (its index is below the batch size, so `at` cannot
    /// overflow; a short column reads as 0).
    fn column(&self, column: &[u8]) -> i64 {
        u64_at(column, self.index * 8).unwrap_or_default() as i64
    }

    /// The body, unchanged.
    pub fn body(&self) -> &'a [u8] {
        self.field_bytes(SpanField::Body).unwrap_or(&[])
    }

    /// Sequence number in the partition.
    pub fn sequence_number(&self) -> i64 {
        self.column(&self.batch.sequence_numbers)
    }

    /// Offset in the partition, as Event Hubs reports it.
    pub fn offset(&self) -> &'a str {
        self.field_text(SpanField::Offset).unwrap_or_default()
    }

    /// When Event Hubs accepted the event, milliseconds since the Unix epoch (UTC).
    pub fn enqueued_time_ms(&self) -> i64 {
        self.column(&self.batch.enqueued_times_ms)
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
        // The span counts entries; a range outside the column reads as no properties.
        let entries = self
            .span(SpanField::Properties)
            .and_then(|(start, len)| {
                let from = (start as usize).checked_mul(ENTRY_BYTES)?;
                let to = from.checked_add((len as usize).checked_mul(ENTRY_BYTES)?)?;
                batch.properties.get(from..to)
            })
            .unwrap_or(&[]);
        entries
            .chunks_exact(ENTRY_BYTES)
            .map(move |entry| property(&batch.data, entry))
    }

    /// The first property called `name`.
    pub fn property(&self, name: &str) -> Option<Value<'a>> {
        self.properties().find(|(k, _)| *k == name).map(|(_, v)| v)
    }
}

/// Decode one 24-byte property entry. The reads cannot miss (the chunk is 24 bytes), so the
/// optimiser drops their checks.
#[inline]
fn property<'a>(data: &'a [u8], entry: &[u8]) -> (&'a str, Value<'a>) {
    let name = range(u64_at(entry, 0).unwrap_or_default());
    let kind = u32_at(entry, 8).unwrap_or(NULL);
    let word = u64_at(entry, 16).unwrap_or_default();
    let value = match kind {
        BOOLEAN => Value::Bool(word != 0),
        INTEGER => Value::Int(word as i64),
        DOUBLE => Value::Double(f64::from_bits(word)),
        TEXT => Value::Text(text(data, range(word))),
        BINARY => Value::Binary(bytes(data, range(word))),
        TIMESTAMP => Value::Timestamp(word as i64),
        UUID => Value::Uuid(text(data, range(word))),
        // `NULL`, or a kind this contract version does not define.
        _ => Value::Null,
    };
    (text(data, name), value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: [u32; 2] = [u32::MAX, 0];

    fn le32(words: &[[u32; 2]]) -> Vec<u8> {
        words
            .iter()
            .flatten()
            .flat_map(|w| w.to_le_bytes())
            .collect()
    }

    fn le64(values: &[i64]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// One 24-byte property entry.
    fn entry(name: [u32; 2], kind: PropertyKind, word: u64) -> Vec<u8> {
        let mut e = le32(&[name, [kind as u32, 0]]);
        e.extend(word.to_le_bytes());
        e
    }

    fn sample() -> EventBatch {
        // data: "hello" "0" "key" "kind" "reading" "world" "5" "\xff" "flag" "n" "ts" "x"
        let data = b"hello0keykindreadingworld5\xffflagntsx".to_vec();
        #[rustfmt::skip]
        let spans = [
            // event 0: body, offset, key, content type, correlation id, message id, properties
            [0, 5], [5, 1], [6, 3], NONE, NONE, [26, 1], [0, 7],
            // event 1; its property range is outside the list: must read as none, not panic
            [20, 5], [25, 1], NONE, NONE, NONE, NONE, [7, 3],
        ];
        let properties = [
            entry([9, 4], PropertyKind::Text, 13 | (7 << 32)),
            entry([9, 4], PropertyKind::Integer, -3i64 as u64),
            entry([27, 4], PropertyKind::Boolean, 1),
            entry([31, 1], PropertyKind::Double, 2.5f64.to_bits()),
            entry([32, 2], PropertyKind::Timestamp, 1_700_000_000_000),
            entry([34, 1], PropertyKind::Binary, 26 | (1 << 32)),
            entry([34, 1], PropertyKind::Null, 0),
        ]
        .concat();
        EventBatch {
            sequence_numbers: le64(&[10, 11]),
            enqueued_times_ms: le64(&[1_700_000_000_000, 1_700_000_000_001]),
            spans: le32(&spans),
            data,
            properties,
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
            vec![
                ("kind", Value::Text("reading")),
                ("kind", Value::Int(-3)),
                ("flag", Value::Bool(true)),
                ("n", Value::Double(2.5)),
                ("ts", Value::Timestamp(1_700_000_000_000)),
                ("x", Value::Binary(b"\xff")),
                ("x", Value::Null),
            ]
        );
        assert_eq!(first.property("kind"), Some(Value::Text("reading")));
        assert_eq!(first.property("missing"), None);

        let second = batch.get(1).unwrap();
        assert_eq!(second.body(), b"world");
        assert_eq!(second.sequence_number(), 11);
        assert_eq!(second.enqueued_time_ms(), 1_700_000_000_001);
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
    fn out_of_range_spans_and_short_columns_read_as_empty() {
        let mut raw = sample();
        raw.spans[..4].copy_from_slice(&(u32::MAX - 1).to_le_bytes()); // body start outside `data`
        raw.spans.truncate(20 * 4 + 2); // event 1's later spans are missing, one is cut mid-word
        raw.enqueued_times_ms.truncate(12); // event 1's time is cut
        raw.properties.truncate(24 * 7 - 1); // the last entry is cut: the range reads as none
        raw.sequence_numbers.push(0); // a trailing partial number is not an event
        let batch = Batch::new(&raw);
        assert_eq!(batch.len(), 2);
        let (first, second) = (batch.get(0).unwrap(), batch.get(1).unwrap());
        assert_eq!(first.body(), b"");
        assert_eq!(first.properties().count(), 0);
        assert_eq!(second.enqueued_time_ms(), 0);
        assert_eq!(second.message_id(), None);
        assert_eq!(second.properties().count(), 0);
    }

    #[test]
    fn an_unknown_property_kind_reads_as_null() {
        let mut raw = sample();
        raw.properties[8..12].copy_from_slice(&99u32.to_le_bytes());
        let batch = Batch::new(&raw);
        assert_eq!(
            batch.get(0).unwrap().properties().next(),
            Some(("kind", Value::Null))
        );
    }
}
