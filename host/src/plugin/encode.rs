//! Turning host [`Event`]s into the WIT shapes plugins receive.
//!
//! The batch shape keeps every variable-length item in one buffer, so copying a batch into the
//! guest is two or three bulk copies instead of one allocation per string. The encoder keeps its
//! buffers between calls, so steady-state encoding allocates nothing.

use super::bindings::{v0_1, v0_2};
use crate::event::{Event, PropertyValue};

/// Reusable encoder for the batch record of each contract version.
#[derive(Default)]
pub(crate) struct BatchEncoder {
    v0_1: Option<v0_1::types::EventBatch>,
    v0_2: Option<v0_2::types::EventBatch>,
}

/// Spans per event in `event-batch.spans` (the cases of `span-field`).
const FIELDS: usize = 7;
/// Start of an absent optional field.
const ABSENT: u32 = u32::MAX;

impl BatchEncoder {
    /// Encode `events` into the reusable 0.1.0 batch and return it.
    pub(crate) fn v0_1(&mut self, events: &[Event]) -> &v0_1::types::EventBatch {
        reuse(&mut self.v0_1, events)
    }

    /// Encode `events` into the reusable 0.2.0 batch (little-endian byte columns) and return it.
    pub(crate) fn v0_2(&mut self, events: &[Event]) -> &v0_2::types::EventBatch {
        reuse(&mut self.v0_2, events)
    }
}

/// Fill the batch kept in `slot` (made on first use) with `events`.
fn reuse<'a, C: Columns>(slot: &'a mut Option<C>, events: &[Event]) -> &'a C {
    let batch = slot.get_or_insert_with(C::empty);
    fill(batch, events);
    batch
}

/// A property value whose variable-length part is already a range of `data`.
enum Slot {
    Null,
    Boolean(bool),
    Integer(i64),
    Double(f64),
    Text(u32, u32),
    Binary(u32, u32),
    Timestamp(i64),
    Uuid(u32, u32),
}

/// The columns of one contract version's batch record; [`fill`] walks the events once for all.
trait Columns {
    fn empty() -> Self;
    /// Empty every column, keeping the allocations.
    fn truncate(&mut self);
    /// Empty every column and make room for `events` events of `bytes` data.
    fn clear(&mut self, events: usize, bytes: usize);
    fn numbers(&mut self, sequence_number: i64, enqueued_time_ms: i64);
    fn span(&mut self, start: u32, len: u32);
    fn data(&mut self) -> &mut Vec<u8>;
    fn property(&mut self, key: (u32, u32), value: Slot);
    fn properties_len(&self) -> usize;
}

/// Lay `events` out in `columns`. A batch is bounded far below 4 GiB by the event size limit
/// times the batch size, so ranges fit in `u32`.
fn fill(columns: &mut impl Columns, events: &[Event]) {
    let bytes: usize = events.iter().map(|e| e.body.len() + e.offset.len()).sum();
    columns.clear(events.len(), bytes);
    for event in events {
        columns.numbers(event.sequence_number, event.enqueued_time_ms);
        push(columns, Some(&event.body));
        push(columns, Some(event.offset.as_bytes()));
        for optional in [
            &event.partition_key,
            &event.content_type,
            &event.correlation_id,
            &event.message_id,
        ] {
            push(columns, optional.as_deref().map(str::as_bytes));
        }
        let first_property = columns.properties_len();
        for (key, value) in &event.properties {
            let key = append(columns.data(), key.as_bytes());
            let value = match value {
                PropertyValue::Null => Slot::Null,
                PropertyValue::Bool(b) => Slot::Boolean(*b),
                PropertyValue::Int(i) => Slot::Integer(*i),
                PropertyValue::Double(d) => Slot::Double(*d),
                PropertyValue::Text(s) => {
                    let (start, len) = append(columns.data(), s.as_bytes());
                    Slot::Text(start, len)
                }
                PropertyValue::Binary(b) => {
                    let (start, len) = append(columns.data(), b);
                    Slot::Binary(start, len)
                }
                PropertyValue::Timestamp(t) => Slot::Timestamp(*t),
                PropertyValue::Uuid(s) => {
                    let (start, len) = append(columns.data(), s.as_bytes());
                    Slot::Uuid(start, len)
                }
            };
            columns.property(key, value);
        }
        let count = columns.properties_len() - first_property;
        columns.span(first_property as u32, count as u32);
    }
}

/// Append `bytes` to the data and record its range; `None` records an absent field.
fn push(columns: &mut impl Columns, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => {
            let (start, len) = append(columns.data(), bytes);
            columns.span(start, len);
        }
        None => columns.span(ABSENT, 0),
    }
}

fn append(data: &mut Vec<u8>, bytes: &[u8]) -> (u32, u32) {
    let start = data.len() as u32;
    data.extend_from_slice(bytes);
    (start, bytes.len() as u32)
}

/// The members of [`Columns`] written alike for each contract version's `event-batch` (the
/// generated types have the same fields, but are distinct types).
macro_rules! alike_in_every_version {
    () => {
        fn empty() -> Self {
            Self {
                sequence_numbers: Vec::new(),
                enqueued_times_ms: Vec::new(),
                spans: Vec::new(),
                data: Vec::new(),
                properties: Vec::new(),
            }
        }
        fn truncate(&mut self) {
            self.sequence_numbers.clear();
            self.enqueued_times_ms.clear();
            self.spans.clear();
            self.data.clear();
            self.properties.clear();
        }
        fn data(&mut self) -> &mut Vec<u8> {
            &mut self.data
        }
    };
}

impl Columns for v0_1::types::EventBatch {
    alike_in_every_version!();
    fn clear(&mut self, events: usize, bytes: usize) {
        self.truncate();
        self.data.reserve(bytes);
        self.spans.reserve(events * FIELDS * 2);
    }
    fn numbers(&mut self, sequence_number: i64, enqueued_time_ms: i64) {
        self.sequence_numbers.push(sequence_number);
        self.enqueued_times_ms.push(enqueued_time_ms);
    }
    fn span(&mut self, start: u32, len: u32) {
        self.spans.push(start);
        self.spans.push(len);
    }
    fn property(&mut self, (start, len): (u32, u32), value: Slot) {
        use v0_1::types::{PropertySlot as P, Span};
        let span = |start, len| Span { start, len };
        let value = match value {
            Slot::Null => P::Null,
            Slot::Boolean(b) => P::Boolean(b),
            Slot::Integer(i) => P::Integer(i),
            Slot::Double(d) => P::Double(d),
            Slot::Text(s, l) => P::Text(span(s, l)),
            Slot::Binary(s, l) => P::Binary(span(s, l)),
            Slot::Timestamp(t) => P::Timestamp(t),
            Slot::Uuid(s, l) => P::Uuid(span(s, l)),
        };
        let key = span(start, len);
        self.properties
            .push(v0_1::types::PropertyEntry { key, value });
    }
    fn properties_len(&self) -> usize {
        self.properties.len()
    }
}

/// Bytes per entry of 0.2.0's `event-batch.properties`.
const PROPERTY_ENTRY: usize = 24;

impl Columns for v0_2::types::EventBatch {
    alike_in_every_version!();
    fn clear(&mut self, events: usize, bytes: usize) {
        self.truncate();
        self.data.reserve(bytes);
        self.sequence_numbers.reserve(events * 8);
        self.enqueued_times_ms.reserve(events * 8);
        self.spans.reserve(events * FIELDS * 8);
    }
    fn numbers(&mut self, sequence_number: i64, enqueued_time_ms: i64) {
        self.sequence_numbers
            .extend_from_slice(&sequence_number.to_le_bytes());
        self.enqueued_times_ms
            .extend_from_slice(&enqueued_time_ms.to_le_bytes());
    }
    fn span(&mut self, start: u32, len: u32) {
        self.spans.extend_from_slice(&start.to_le_bytes());
        self.spans.extend_from_slice(&len.to_le_bytes());
    }
    fn property(&mut self, (start, len): (u32, u32), value: Slot) {
        use v0_2::types::PropertyKind as K;
        let range = |s: u32, l: u32| u64::from(s) | (u64::from(l) << 32);
        let (kind, word) = match value {
            Slot::Null => (K::Null, 0),
            Slot::Boolean(b) => (K::Boolean, u64::from(b)),
            Slot::Integer(i) => (K::Integer, i as u64),
            Slot::Double(d) => (K::Double, d.to_bits()),
            Slot::Text(s, l) => (K::Text, range(s, l)),
            Slot::Binary(s, l) => (K::Binary, range(s, l)),
            Slot::Timestamp(t) => (K::Timestamp, t as u64),
            Slot::Uuid(s, l) => (K::Uuid, range(s, l)),
        };
        let p = &mut self.properties;
        p.extend_from_slice(&start.to_le_bytes());
        p.extend_from_slice(&len.to_le_bytes());
        p.extend_from_slice(&(kind as u32).to_le_bytes());
        p.extend_from_slice(&[0; 4]);
        p.extend_from_slice(&word.to_le_bytes());
    }
    fn properties_len(&self) -> usize {
        self.properties.len() / PROPERTY_ENTRY
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Field `f` of event `i`, or `None` if absent.
    use v0_1::types as wit;

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
        encoder.v0_1(&events[1..]);
        let batch = encoder.v0_1(&events);

        assert_eq!(batch.sequence_numbers, vec![7, 8]);
        assert_eq!(batch.enqueued_times_ms, vec![0, 1_700_000_000_000]);
        assert_eq!(batch.spans.len(), 2 * FIELDS * 2);
        use wit::SpanField as F;
        // (event, field, what it holds): absent is `None`, an empty field `Some(b"")`.
        let expected: [(usize, F, Option<&[u8]>); 9] = [
            (0, F::Body, Some(b"{\"a\":1}")),
            (0, F::Offset, Some(b"0")),
            (0, F::PartitionKey, None),
            (0, F::Properties, Some(b"")), // zero properties
            (1, F::Body, Some(b"second body")),
            (1, F::Offset, Some(b"120")),
            (1, F::PartitionKey, Some(b"key-1")),
            (1, F::ContentType, None),
            (1, F::MessageId, Some(b"")), // empty but present
        ];
        for (i, f, holds) in expected {
            assert_eq!(field(batch, i, f), holds, "event {i}, field {f:?}");
        }
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

    fn words<const N: usize>(bytes: &[u8]) -> Vec<[u8; N]> {
        assert_eq!(bytes.len() % N, 0, "a whole number of {N}-byte words");
        bytes
            .chunks_exact(N)
            .map(|c| c.try_into().unwrap())
            .collect()
    }

    #[test]
    fn v0_2_byte_columns_hold_the_same_layout_as_v0_1() {
        let mut event = Event::new(b"body".to_vec(), -5, "77");
        event.enqueued_time_ms = 1_700_000_000_123;
        event.correlation_id = Some("c".into());
        event.properties = vec![
            ("t".into(), PropertyValue::Text("x".into())),
            ("i".into(), PropertyValue::Int(-2)),
            ("d".into(), PropertyValue::Double(1.5)),
            ("b".into(), PropertyValue::Bool(true)),
            ("z".into(), PropertyValue::Null),
            ("bin".into(), PropertyValue::Binary(vec![0, 255])),
            ("ts".into(), PropertyValue::Timestamp(42)),
            ("u".into(), PropertyValue::Uuid("0-1".into())),
        ];
        let events = vec![Event::new(Vec::new(), 9, "1"), event];
        let mut encoder = BatchEncoder::default();
        encoder.v0_2(&events[..1]);
        let old = encoder.v0_1(&events).clone();
        let new = encoder.v0_2(&events).clone();

        let seqs: Vec<i64> = words::<8>(&new.sequence_numbers)
            .into_iter()
            .map(i64::from_le_bytes)
            .collect();
        assert_eq!(seqs, old.sequence_numbers);
        let times: Vec<i64> = words::<8>(&new.enqueued_times_ms)
            .into_iter()
            .map(i64::from_le_bytes)
            .collect();
        assert_eq!(times, old.enqueued_times_ms);
        let spans: Vec<u32> = words::<4>(&new.spans)
            .into_iter()
            .map(u32::from_le_bytes)
            .collect();
        assert_eq!(spans, old.spans);
        assert_eq!(new.data, old.data);

        let entries = words::<PROPERTY_ENTRY>(&new.properties);
        assert_eq!(entries.len(), old.properties.len());
        for (entry, want) in entries.iter().zip(&old.properties) {
            let u32_at = |i: usize| u32::from_le_bytes(entry[i..i + 4].try_into().unwrap());
            let word = u64::from_le_bytes(entry[16..24].try_into().unwrap());
            assert_eq!((u32_at(0), u32_at(4)), (want.key.start, want.key.len));
            assert_eq!(u32_at(12), 0, "padding is zero");
            let range = |s: &wit::Span| u64::from(s.start) | (u64::from(s.len) << 32);
            let (kind, expected) = match &want.value {
                wit::PropertySlot::Null => (0, 0),
                wit::PropertySlot::Boolean(b) => (1, u64::from(*b)),
                wit::PropertySlot::Integer(i) => (2, *i as u64),
                wit::PropertySlot::Double(d) => (3, d.to_bits()),
                wit::PropertySlot::Text(s) => (4, range(s)),
                wit::PropertySlot::Binary(s) => (5, range(s)),
                wit::PropertySlot::Timestamp(t) => (6, *t as u64),
                wit::PropertySlot::Uuid(s) => (7, range(s)),
            };
            assert_eq!((u32_at(8), word), (kind, expected), "{want:?}");
        }
    }
}
