//! Decoding allocates at most a constant times the bytes received: a counting global allocator
//! measures the peak memory a decode holds on this thread.
//!
//! The contract (see `hubwasm_hub::amqp::codec`): decoded values take at most 64 bytes per input
//! byte plus 64 KiB. Before it was enforced, a described array of zero-width elements cloned its
//! descriptor into every element: one 40 KB SASL frame grew the endpoint by hundreds of MB.

use hubwasm_hub::amqp::frame::Frame;
use hubwasm_hub::amqp::message::Message;
use hubwasm_hub::amqp::Value;

use hubwasm_testkit::counting_alloc;

#[global_allocator]
static ALLOCATOR: counting_alloc::Counting = counting_alloc::Counting;
use counting_alloc::peak_during;

/// What a decode of `input` bytes may hold at its peak: the values' budget, plus one copy of
/// the input (a frame keeps the bytes after its performative as its payload).
fn allowed(input: usize) -> usize {
    64 * input + 64 * 1024 + input
}

/// An array32 of `count` elements whose constructor is a described null (no element takes a
/// byte), each repeating the descriptor, a list of `descriptor_nulls` nulls.
fn zero_width_described_array(descriptor_nulls: u32, count: u32) -> Vec<u8> {
    let mut body = count.to_be_bytes().to_vec();
    body.push(0x00);
    body.push(0xd0);
    body.extend_from_slice(&(descriptor_nulls + 4).to_be_bytes());
    body.extend_from_slice(&descriptor_nulls.to_be_bytes());
    body.extend(std::iter::repeat_n(0x40, descriptor_nulls as usize));
    body.push(0x40);
    if body.len() < count as usize {
        body.resize(count as usize, 0);
    }
    let mut out = vec![0xf0];
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// A SASL frame (as sent before any authentication) whose body is `value_bytes`.
fn sasl_frame(value_bytes: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(8 + value_bytes.len());
    frame.extend_from_slice(&((8 + value_bytes.len()) as u32).to_be_bytes());
    frame.extend_from_slice(&[2, 1, 0, 0]);
    frame.extend_from_slice(value_bytes);
    frame
}

#[test]
fn a_40_kb_sasl_frame_cannot_grow_the_endpoint_by_more_than_a_constant_factor() {
    // sasl-init whose mechanism field is the hostile array (the decoder sees it first anyway).
    let array = zero_width_described_array(100, 40_000);
    let mut list = vec![0xd0];
    list.extend_from_slice(&((array.len() + 4) as u32).to_be_bytes());
    list.extend_from_slice(&1u32.to_be_bytes());
    list.extend_from_slice(&array);
    let mut body = vec![0x00, 0x53, 0x41];
    body.extend_from_slice(&list);
    let frame = sasl_frame(&body);
    assert!(frame.len() < 41_000, "{}", frame.len());

    let (result, peak) = peak_during(|| Frame::decode(&frame).map(|_| ()));
    assert!(
        peak <= allowed(frame.len()),
        "decoding a {} byte frame held {peak} bytes (allowed {}); result {result:?}",
        frame.len(),
        allowed(frame.len())
    );
    assert!(result.is_err(), "the frame is refused");
}

#[test]
fn hostile_values_and_messages_stay_within_the_budget() {
    for (nulls, count) in [(0, 60_000), (1, 30_000), (500, 8_000), (2_000, 2_000)] {
        let buf = zero_width_described_array(nulls, count);
        let (result, peak) = peak_during(|| Value::decode(&buf).map(|_| ()));
        assert!(
            peak <= allowed(buf.len()),
            "{nulls} nulls x {count}: {} bytes held {peak} (allowed {}); {result:?}",
            buf.len(),
            allowed(buf.len())
        );
        // As a message section (a transfer's payload).
        let mut section = vec![0x00, 0x53, 0x77];
        section.extend_from_slice(&buf);
        let (_, peak) = peak_during(|| Message::decode(&section).map(|_| ()));
        assert!(peak <= allowed(section.len()), "message: {peak}");
    }
}

#[test]
fn ordinary_values_decode_within_the_budget() {
    // The densest honest encodings: lists and arrays of one-byte values, nested lists, maps.
    let nulls = Value::List(vec![Value::Null; 50_000]).to_bytes();
    let bools = Value::Array(vec![Value::Bool(true); 50_000]).to_bytes();
    let nested = Value::List(vec![Value::List(vec![Value::Null]); 10_000]).to_bytes();
    let map = Value::Map(vec![(Value::Null, Value::Bool(false)); 10_000]).to_bytes();
    let described = Value::List(vec![
        Value::Described(
            Box::new(Value::Null),
            Box::new(Value::Null)
        );
        10_000
    ])
    .to_bytes();
    for buf in [nulls, bools, nested, map, described] {
        let (result, peak) = peak_during(|| Value::decode(&buf).map(|_| ()));
        result.unwrap();
        assert!(
            peak <= allowed(buf.len()),
            "{} bytes held {peak}",
            buf.len()
        );
    }
}
