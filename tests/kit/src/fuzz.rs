//! Strategies shared by the property tests (`hub/tests/fuzz_*.rs`).

use hubwasm_hub::amqp::Value;
use proptest::collection::vec;
use proptest::prelude::*;

/// 256 cases unless PROPTEST_CASES says otherwise.
pub fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

pub fn text() -> impl Strategy<Value = String> {
    // Mostly short, sometimes over 255 bytes (the 32-bit encodings).
    prop_oneof![4 => ".{0,12}", 1 => ".{200,300}"]
}

pub fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![4 => vec(any::<u8>(), 0..16), 1 => vec(any::<u8>(), 250..400)]
}

/// Every scalar type. Floats include NaN unless `comparable`: values with NaN are compared by
/// their Debug text, not `==`.
fn scalar(comparable: bool) -> BoxedStrategy<Value> {
    let (f32s, f64s) = floats(comparable);
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u8>().prop_map(Value::Ubyte),
        any::<u16>().prop_map(Value::Ushort),
        any::<u32>().prop_map(Value::Uint),
        any::<u64>().prop_map(Value::Ulong),
        any::<i8>().prop_map(Value::Byte),
        any::<i16>().prop_map(Value::Short),
        any::<i32>().prop_map(Value::Int),
        any::<i64>().prop_map(Value::Long),
        f32s.prop_map(Value::Float),
        f64s.prop_map(Value::Double),
        any::<char>().prop_map(Value::Char),
        any::<i64>().prop_map(Value::Timestamp),
        any::<[u8; 16]>().prop_map(Value::Uuid),
        bytes().prop_map(Value::Binary),
        text().prop_map(Value::String),
        text().prop_map(Value::Symbol),
    ]
    .boxed()
}

/// A descriptor as AMQP uses them: a numeric code or a symbol.
/// Floats, NaN only if not `comparable`.
fn floats(comparable: bool) -> (BoxedStrategy<f32>, BoxedStrategy<f64>) {
    if comparable {
        (
            any::<f32>().prop_filter("not NaN", |f| !f.is_nan()).boxed(),
            any::<f64>().prop_filter("not NaN", |f| !f.is_nan()).boxed(),
        )
    } else {
        (any::<f32>().boxed(), any::<f64>().boxed())
    }
}

pub fn descriptor() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u64>().prop_map(Value::Ulong),
        "[a-z.:-]{1,30}".prop_map(Value::Symbol)
    ]
}

/// Array elements: all of one type (an array has one constructor). Not null: null elements
/// take no bytes, and the decoder refuses more of them than the array has bytes.
fn same_type(inner: BoxedStrategy<Value>, comparable: bool) -> BoxedStrategy<Vec<Value>> {
    let n = || 0..5usize;
    let (f32s, f64s) = floats(comparable);
    prop_oneof![
        vec(any::<bool>().prop_map(Value::Bool), n()),
        vec(any::<u8>().prop_map(Value::Ubyte), n()),
        vec(any::<u16>().prop_map(Value::Ushort), n()),
        vec(any::<u32>().prop_map(Value::Uint), n()),
        vec(any::<u64>().prop_map(Value::Ulong), n()),
        vec(any::<i8>().prop_map(Value::Byte), n()),
        vec(any::<i16>().prop_map(Value::Short), n()),
        vec(any::<i32>().prop_map(Value::Int), n()),
        vec(any::<i64>().prop_map(Value::Long), n()),
        vec(f32s.prop_map(Value::Float), n()),
        vec(f64s.prop_map(Value::Double), n()),
        vec(any::<char>().prop_map(Value::Char), n()),
        vec(any::<i64>().prop_map(Value::Timestamp), n()),
        vec(any::<[u8; 16]>().prop_map(Value::Uuid), n()),
        vec(bytes().prop_map(Value::Binary), n()),
        vec(text().prop_map(Value::String), n()),
        vec(text().prop_map(Value::Symbol), n()),
        vec(vec(inner.clone(), 0..3).prop_map(Value::List), n()),
        vec(vec((inner.clone(), inner), 0..2).prop_map(Value::Map), n()),
    ]
    .boxed()
}

fn array(inner: BoxedStrategy<Value>, comparable: bool) -> BoxedStrategy<Value> {
    let plain = same_type(inner.clone(), comparable).prop_map(Value::Array);
    // Arrays of arrays (each inner array has its own element type).
    let nested = vec(
        same_type(inner.clone(), comparable).prop_map(Value::Array),
        0..3,
    )
    .prop_map(Value::Array);
    // A described element type: every element carries the same descriptor.
    let described = (descriptor(), same_type(inner, comparable)).prop_map(|(d, items)| {
        Value::Array(
            items
                .into_iter()
                .map(|v| Value::Described(Box::new(d.clone()), Box::new(v)))
                .collect(),
        )
    });
    prop_oneof![3 => plain, 1 => nested, 1 => described].boxed()
}

/// Any value the encoder can write, nested a few levels; floats may be NaN.
pub fn value() -> BoxedStrategy<Value> {
    value_with(false)
}

/// Like [`value`], without NaN, so `==` compares.
pub fn comparable_value() -> BoxedStrategy<Value> {
    value_with(true)
}

/// Like [`value`], nested less: for generating many values at once (a message's sections).
pub fn small_value() -> BoxedStrategy<Value> {
    nested_value(false, 2, 12)
}

/// Like [`small_value`], without NaN.
pub fn small_comparable_value() -> BoxedStrategy<Value> {
    nested_value(true, 2, 12)
}

fn value_with(comparable: bool) -> BoxedStrategy<Value> {
    let long_list = vec(scalar(comparable), 250..300).prop_map(Value::List);
    let nested = nested_value(comparable, 3, 48);
    // Sometimes a long list (list32) of scalars.
    prop_oneof![20 => nested, 1 => long_list].boxed()
}

fn nested_value(comparable: bool, depth: u32, size: u32) -> BoxedStrategy<Value> {
    scalar(comparable)
        .prop_recursive(depth, size, 5, move |inner| {
            prop_oneof![
                vec(inner.clone(), 0..6).prop_map(Value::List),
                vec((inner.clone(), inner.clone()), 0..4).prop_map(Value::Map),
                array(inner.clone(), comparable),
                (descriptor(), inner.clone())
                    .prop_map(|(d, v)| Value::Described(Box::new(d), Box::new(v))),
                (inner.clone(), inner)
                    .prop_map(|(d, v)| Value::Described(Box::new(d), Box::new(v))),
            ]
        })
        .boxed()
}
