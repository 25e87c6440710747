//! Property tests of the AMQP value codec, frames and messages: arbitrary bytes never panic and
//! never decode into more memory than the decode budget (a counting allocator measures it), and
//! whatever the encoder writes decodes back to the same value.
//!
//! Bounded to 256 cases per property so they take seconds in CI. To search longer:
//!
//! ```text
//! PROPTEST_CASES=100000 cargo test -p hubwasm-hub --test hub_fuzz_codec --release
//! ```

use hubwasm_testkit::fuzz as fuzz_support;

use fuzz_support::{bytes, config, small_value, text, value};
use hubwasm_hub::amqp::frame::{Frame, FrameType};
use hubwasm_hub::amqp::message::{section, Message};
use hubwasm_hub::amqp::Value;
use hubwasm_hub::server::stored;
use proptest::collection::vec;
use proptest::prelude::*;

use hubwasm_testkit::counting_alloc;

#[global_allocator]
static ALLOCATOR: counting_alloc::Counting = counting_alloc::Counting;
use counting_alloc::peak_during;

/// The decode budget (64 bytes per input byte plus 64 KiB), plus one copy of the input (a
/// frame's payload, a message's data sections).
fn allowed(input: usize) -> usize {
    64 * input + 64 * 1024 + input
}

fn assert_round_trips(v: &Value) -> Result<(), TestCaseError> {
    let bytes = v.to_bytes();
    let (back, used) = Value::decode(&bytes)
        .map_err(|e| TestCaseError::fail(format!("{e} decoding {v:?} from {bytes:02x?}")))?;
    prop_assert_eq!(used, bytes.len());
    // Debug text: NaN equals itself there, and -0.0 differs from 0.0.
    prop_assert_eq!(format!("{back:?}"), format!("{v:?}"));
    prop_assert_eq!(back.to_bytes(), bytes);
    Ok(())
}

/// Mutate `bytes` at a few positions chosen by `edits` (position, new byte).
fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8)]) -> Vec<u8> {
    if !bytes.is_empty() {
        for &(at, b) in edits {
            let at = at % bytes.len();
            bytes[at] = b;
        }
    }
    bytes
}

fn message_section(code: u64, inner: Value) -> Value {
    Value::Described(Box::new(Value::Ulong(code)), Box::new(inner))
}

fn pairs() -> impl Strategy<Value = Vec<(Value, Value)>> {
    vec((text().prop_map(Value::Symbol), small_value()), 0..4)
}

/// A message with any of its sections; the body is data, amqp-sequence or amqp-value sections.
fn message() -> impl Strategy<Value = Message> {
    let body = prop_oneof![
        bytes().prop_map(|b| message_section(section::DATA, Value::Binary(b))),
        vec(small_value(), 0..3)
            .prop_map(|items| message_section(section::AMQP_SEQUENCE, Value::List(items))),
        small_value().prop_map(|v| message_section(section::AMQP_VALUE, v)),
    ];
    (
        proptest::option::of(vec(small_value(), 0..5)),
        proptest::option::of(pairs()),
        pairs(),
        proptest::option::of(vec(small_value(), 0..6)),
        pairs(),
        vec(body, 0..3),
        proptest::option::of(pairs()),
    )
        .prop_map(
            |(header, delivery, annotations, properties, app, body, footer)| Message {
                header: header.map(|h| message_section(section::HEADER, Value::List(h))),
                delivery_annotations: delivery
                    .map(|d| message_section(section::DELIVERY_ANNOTATIONS, Value::Map(d))),
                message_annotations: annotations,
                properties,
                application_properties: app,
                body,
                footer: footer.map(|f| message_section(section::FOOTER, Value::Map(f))),
            },
        )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_encodable_value_round_trips(v in value()) {
        assert_round_trips(&v)?;
    }

    #[test]
    fn arbitrary_bytes_decode_without_panic_within_the_budget(
        bytes in prop_oneof![vec(any::<u8>(), 0..64), vec(any::<u8>(), 0..4096)]
    ) {
        let (_, peak) = peak_during(|| {
            let _ = Value::decode(&bytes);
        });
        prop_assert!(peak <= allowed(bytes.len()), "{} bytes held {peak}", bytes.len());
        let (_, peak) = peak_during(|| {
            let _ = Value::decode_all(&bytes);
        });
        prop_assert!(peak <= allowed(bytes.len()), "{} bytes held {peak}", bytes.len());
    }

    #[test]
    fn mutated_values_decode_without_panic_within_the_budget(
        v in value(),
        edits in vec((any::<usize>(), any::<u8>()), 1..4),
    ) {
        let bytes = mutate(v.to_bytes(), &edits);
        let (result, peak) = peak_during(|| Value::decode(&bytes).map(|(_, used)| used));
        prop_assert!(peak <= allowed(bytes.len()), "{} bytes held {peak}", bytes.len());
        if let Ok(used) = result {
            prop_assert!(used <= bytes.len());
        }
    }

    #[test]
    fn frames_round_trip(
        amqp in any::<bool>(),
        channel in any::<u16>(),
        body in proptest::option::of(value()),
        payload in bytes(),
    ) {
        // A frame without a performative is empty (a heartbeat): no payload either.
        let payload = if body.is_some() { payload } else { Vec::new() };
        let frame = Frame {
            kind: if amqp { FrameType::Amqp } else { FrameType::Sasl },
            channel,
            body,
            payload,
        };
        let mut wire = Vec::new();
        frame.encode(&mut wire);
        prop_assert_eq!(Frame::peek_size(&wire, u32::MAX).unwrap(), Some(wire.len()));
        let back = Frame::decode(&wire).unwrap();
        prop_assert_eq!(format!("{back:?}"), format!("{frame:?}"));
    }

    #[test]
    fn arbitrary_frames_decode_without_panic_within_the_budget(
        header in any::<[u8; 8]>(),
        rest in vec(any::<u8>(), 0..2048),
        max in any::<u32>(),
    ) {
        let mut bytes = header.to_vec();
        bytes.extend_from_slice(&rest);
        let _ = Frame::peek_size(&bytes, max);
        let (_, peak) = peak_during(|| {
            let _ = Frame::decode(&bytes);
        });
        prop_assert!(peak <= allowed(bytes.len()), "{} bytes held {peak}", bytes.len());
    }

    #[test]
    fn messages_round_trip(m in message()) {
        let bytes = m.to_bytes();
        let back = Message::decode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(format!("{back:?}"), format!("{m:?}"));
    }

    #[test]
    fn arbitrary_and_mutated_messages_decode_without_panic_within_the_budget(
        m in message(),
        edits in vec((any::<usize>(), any::<u8>()), 0..4),
    ) {
        let bytes = mutate(m.to_bytes(), &edits);
        let (_, peak) = peak_during(|| {
            if let Ok(m) = Message::decode(&bytes) {
                // What the endpoint reads of a message.
                let _ = m.partition_key();
                let _ = m.data_sections().count();
                let _ = m.body_value();
            }
        });
        prop_assert!(peak <= allowed(bytes.len()), "{} bytes held {peak}", bytes.len());
    }

    /// What a partition stores and delivers: the message as sent, plus the service annotations.
    #[test]
    fn stored_events_deliver_the_message_with_the_service_annotations(
        m in message(),
        sequence_number in any::<i64>(),
        offset in any::<i64>(),
        enqueued_time_ms in any::<i64>(),
    ) {
        let stored = stored::encode(&m);
        let mut wire = Vec::new();
        stored::deliver(
            &stored,
            &stored::Annotations {
                sequence_number,
                offset,
                enqueued_time_ms,
                partition_key: None,
            },
            &[],
            &mut wire,
        )
        .expect("a stored payload delivers");
        let back = Message::decode(&wire).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(
            back.annotation("x-opt-sequence-number"),
            Some(&Value::Long(sequence_number))
        );
        prop_assert_eq!(
            back.annotation("x-opt-offset"),
            Some(&Value::string(offset.to_string()))
        );
        prop_assert_eq!(
            back.annotation("x-opt-enqueued-time"),
            Some(&Value::Timestamp(enqueued_time_ms))
        );
        // Everything else as sent (the producer's delivery annotations are not kept).
        prop_assert_eq!(format!("{:?}", back.header), format!("{:?}", m.header));
        prop_assert_eq!(format!("{:?}", back.properties), format!("{:?}", m.properties));
        prop_assert_eq!(
            format!("{:?}", back.application_properties),
            format!("{:?}", m.application_properties)
        );
        prop_assert_eq!(format!("{:?}", back.body), format!("{:?}", m.body));
        prop_assert_eq!(format!("{:?}", back.footer), format!("{:?}", m.footer));
    }

    #[test]
    fn corrupt_stored_payloads_never_panic(payload in vec(any::<u8>(), 0..256)) {
        let mut out = Vec::new();
        let _ = stored::deliver(
            &payload,
            &stored::Annotations {
                sequence_number: 1,
                offset: 2,
                enqueued_time_ms: 3,
                partition_key: Some("k"),
            },
            &[],
            &mut out,
        );
    }
}
