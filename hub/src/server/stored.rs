//! How a received event is kept in a partition log, so that delivering it only splices in the
//! service annotations (sequence number, offset, enqueued time) instead of re-encoding the
//! message.
//!
//! Payload layout: `[u32 head_len][head][u32 count][u32 pairs_len][pairs][tail]` where `head` is
//! the encoded header section, `pairs` the producer's own message annotations (encoded key/value
//! values, `count` values in all), and `tail` every later section (properties,
//! application-properties, body, footer) as received. The producer's delivery annotations are
//! for the hop to the service and are not kept.

use crate::amqp::message::{annotation, section, Message};
use crate::amqp::Value;

/// Annotation keys the service owns; a producer's values for them are dropped.
const SERVICE_ANNOTATIONS: [&str; 3] = [
    annotation::SEQUENCE_NUMBER,
    annotation::OFFSET,
    annotation::ENQUEUED_TIME,
];

/// Encode a received event message for storage.
pub fn encode(message: &Message) -> Vec<u8> {
    let mut head = Vec::new();
    if let Some(h) = &message.header {
        h.encode(&mut head);
    }
    let mut pairs = Vec::new();
    let mut count = 0u32;
    for (k, v) in &message.message_annotations {
        if k.as_str().is_some_and(|k| SERVICE_ANNOTATIONS.contains(&k)) {
            continue;
        }
        k.encode(&mut pairs);
        v.encode(&mut pairs);
        count += 2;
    }
    let tail = Message {
        header: None,
        delivery_annotations: None,
        message_annotations: Vec::new(),
        ..message.clone()
    }
    .to_bytes();

    let mut out = Vec::with_capacity(12 + head.len() + pairs.len() + tail.len());
    out.extend_from_slice(&(head.len() as u32).to_be_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&(pairs.len() as u32).to_be_bytes());
    out.extend_from_slice(&pairs);
    out.extend_from_slice(&tail);
    out
}

/// The service annotations added on delivery.
pub struct Annotations<'a> {
    pub sequence_number: i64,
    pub offset: i64,
    pub enqueued_time_ms: i64,
    pub partition_key: Option<&'a str>,
}

/// Build the wire message from a stored payload, with `delivery_annotations` (an encoded
/// section, or empty) in its place after the header; `None` if the payload is corrupt.
pub fn deliver(
    payload: &[u8],
    ann: &Annotations<'_>,
    delivery_annotations: &[u8],
    out: &mut Vec<u8>,
) -> Option<()> {
    let read_u32 = |at: usize| -> Option<u32> {
        Some(u32::from_be_bytes(
            payload.get(at..at + 4)?.try_into().ok()?,
        ))
    };
    let head_len = read_u32(0)? as usize;
    let head = payload.get(4..4 + head_len)?;
    let mut at = 4 + head_len;
    let count = read_u32(at)?;
    let pairs_len = read_u32(at + 4)? as usize;
    at += 8;
    let pairs = payload.get(at..at + pairs_len)?;
    let tail = payload.get(at + pairs_len..)?;

    let mut ours = Vec::with_capacity(96);
    let mut our_count = 6u32;
    Value::symbol(annotation::SEQUENCE_NUMBER).encode(&mut ours);
    Value::Long(ann.sequence_number).encode(&mut ours);
    Value::symbol(annotation::OFFSET).encode(&mut ours);
    Value::String(ann.offset.to_string()).encode(&mut ours);
    Value::symbol(annotation::ENQUEUED_TIME).encode(&mut ours);
    Value::Timestamp(ann.enqueued_time_ms).encode(&mut ours);
    if let Some(key) = ann.partition_key {
        // Producers usually send it already; only add it when they did not.
        let mut probe = Vec::new();
        Value::symbol(annotation::PARTITION_KEY).encode(&mut probe);
        if !contains(pairs, &probe) {
            our_count += 2;
            ours.extend_from_slice(&probe);
            Value::string(key).encode(&mut ours);
        }
    }

    out.extend_from_slice(head);
    out.extend_from_slice(delivery_annotations);
    // described(0x72, map32)
    out.extend_from_slice(&[0x00, 0x53, section::MESSAGE_ANNOTATIONS as u8, 0xd1]);
    let body_len = 4 + pairs.len() + ours.len();
    out.extend_from_slice(&(body_len as u32).to_be_bytes());
    out.extend_from_slice(&count.checked_add(our_count)?.to_be_bytes());
    out.extend_from_slice(pairs);
    out.extend_from_slice(&ours);
    out.extend_from_slice(tail);
    Some(())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amqp::message::property;

    #[test]
    fn delivery_adds_service_annotations_and_keeps_everything_else() {
        let mut msg = Message::with_data(b"body".to_vec());
        msg.set_annotation("x-custom", Value::Int(5));
        msg.set_annotation(annotation::PARTITION_KEY, Value::string("k"));
        msg.set_annotation(annotation::SEQUENCE_NUMBER, Value::Long(999)); // forged: dropped
        msg.set_property(property::MESSAGE_ID, Value::string("m"));
        msg.application_properties = vec![(Value::string("a"), Value::Bool(true))];

        let stored = encode(&msg);
        let mut wire = Vec::new();
        deliver(
            &stored,
            &Annotations {
                sequence_number: 7,
                offset: 1234,
                enqueued_time_ms: 1_764_000_000_000,
                partition_key: Some("k"),
            },
            &[],
            &mut wire,
        )
        .unwrap();
        let back = Message::decode(&wire).unwrap();
        assert_eq!(back.annotation("x-custom"), Some(&Value::Int(5)));
        assert_eq!(
            back.annotation(annotation::SEQUENCE_NUMBER),
            Some(&Value::Long(7))
        );
        assert_eq!(
            back.annotation(annotation::OFFSET),
            Some(&Value::string("1234"))
        );
        assert_eq!(
            back.annotation(annotation::ENQUEUED_TIME),
            Some(&Value::Timestamp(1_764_000_000_000))
        );
        assert_eq!(back.partition_key(), Some("k"));
        assert_eq!(
            back.message_annotations
                .iter()
                .filter(|(k, _)| k.as_str() == Some(annotation::PARTITION_KEY))
                .count(),
            1
        );
        assert_eq!(
            back.property(property::MESSAGE_ID),
            Some(&Value::string("m"))
        );
        assert_eq!(back.data_sections().next(), Some(&b"body"[..]));
        assert_eq!(back.application_properties, msg.application_properties);
    }

    #[test]
    fn an_annotation_count_that_would_overflow_is_corrupt_not_a_panic() {
        let ann = Annotations {
            sequence_number: 0,
            offset: 0,
            enqueued_time_ms: 0,
            partition_key: None,
        };
        // No header, u32::MAX annotation values, no pair bytes, no tail.
        let mut payload = 0u32.to_be_bytes().to_vec();
        payload.extend_from_slice(&u32::MAX.to_be_bytes());
        payload.extend_from_slice(&0u32.to_be_bytes());
        let mut out = Vec::new();
        assert!(deliver(&payload, &ann, &[], &mut out).is_none());
    }

    #[test]
    fn a_corrupt_payload_is_refused() {
        let mut out = Vec::new();
        let ann = Annotations {
            sequence_number: 0,
            offset: 0,
            enqueued_time_ms: 0,
            partition_key: None,
        };
        assert!(deliver(&[0, 0, 0, 9], &ann, &[], &mut out).is_none());
        assert!(deliver(&[], &ann, &[], &mut out).is_none());
    }
}
