//! Property tests of the performatives: reading any value as any performative never panics, and
//! every performative the endpoint can write reads back the same, through the wire bytes too.
//!
//! Bounded to 256 cases per property so they take seconds in CI. To search longer:
//!
//! ```text
//! PROPTEST_CASES=100000 cargo test -p hubwasm-hub --test hub_fuzz_performatives --release
//! ```

use hubwasm_testkit::fuzz as fuzz_support;

use fuzz_support::{config, small_comparable_value, small_value, text, value};
use hubwasm_hub::amqp::performative::{
    code, error_of, sasl_init_mechanism, AmqpError, Attach, Begin, DeliveryState, Detach,
    Disposition, Flow, Open, Role, Source, Target, Transfer,
};
use hubwasm_hub::amqp::Value;
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;

fn symbols() -> impl Strategy<Value = Vec<String>> {
    vec("[a-z:.-]{1,20}", 0..3)
}

fn properties() -> impl Strategy<Value = Vec<(Value, Value)>> {
    vec(
        (
            "[a-z:.-]{1,20}".prop_map(Value::Symbol),
            small_comparable_value(),
        ),
        0..3,
    )
}

fn error() -> impl Strategy<Value = AmqpError> {
    ("[a-z:.-]{1,30}", of(text()), properties()).prop_map(|(condition, description, info)| {
        AmqpError {
            condition,
            description,
            info,
        }
    })
}

fn state() -> impl Strategy<Value = DeliveryState> {
    prop_oneof![
        Just(DeliveryState::Accepted),
        of(error()).prop_map(DeliveryState::Rejected),
        Just(DeliveryState::Released),
        Just(DeliveryState::Modified),
        Just(DeliveryState::Received),
    ]
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Sender), Just(Role::Receiver)]
}

fn open() -> impl Strategy<Value = Open> {
    (
        text(),
        of(text()),
        any::<u32>(),
        any::<u16>(),
        of(any::<u32>()),
        symbols(),
        symbols(),
        properties(),
    )
        .prop_map(
            |(container_id, hostname, max_frame_size, channel_max, idle, offered, desired, p)| {
                Open {
                    container_id,
                    hostname,
                    max_frame_size,
                    channel_max,
                    idle_time_out: idle,
                    offered_capabilities: offered,
                    desired_capabilities: desired,
                    properties: p,
                }
            },
        )
}

fn begin() -> impl Strategy<Value = Begin> {
    (
        of(any::<u16>()),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        properties(),
    )
        .prop_map(
            |(remote_channel, next, incoming, outgoing, handle_max, p)| Begin {
                remote_channel,
                next_outgoing_id: next,
                incoming_window: incoming,
                outgoing_window: outgoing,
                handle_max,
                properties: p,
            },
        )
}

fn attach() -> impl Strategy<Value = Attach> {
    let source =
        (of(text()), properties()).prop_map(|(address, filter)| Source { address, filter });
    let target = of(text()).prop_map(|address| Target { address });
    (
        (text(), any::<u32>(), role(), 0u8..=2, 0u8..=1),
        (of(source), of(target), of(any::<u32>()), of(any::<u64>())),
        (symbols(), symbols(), properties()),
    )
        .prop_map(
            |(
                (name, handle, role, snd, rcv),
                (source, target, initial_delivery_count, max_message_size),
                (offered, desired, p),
            )| Attach {
                name,
                handle,
                role,
                snd_settle_mode: snd,
                rcv_settle_mode: rcv,
                source,
                target,
                initial_delivery_count,
                max_message_size,
                offered_capabilities: offered,
                desired_capabilities: desired,
                properties: p,
            },
        )
}

fn flow() -> impl Strategy<Value = Flow> {
    (
        (of(any::<u32>()), any::<u32>(), any::<u32>(), any::<u32>()),
        (
            of(any::<u32>()),
            of(any::<u32>()),
            of(any::<u32>()),
            of(any::<u32>()),
        ),
        (any::<bool>(), any::<bool>(), properties()),
    )
        .prop_map(
            |(
                (next_incoming_id, incoming_window, next_outgoing_id, outgoing_window),
                (handle, delivery_count, link_credit, available),
                (drain, echo, p),
            )| Flow {
                next_incoming_id,
                incoming_window,
                next_outgoing_id,
                outgoing_window,
                handle,
                delivery_count,
                link_credit,
                available,
                drain,
                echo,
                properties: p,
            },
        )
}

fn transfer() -> impl Strategy<Value = Transfer> {
    (
        (any::<u32>(), of(any::<u32>()), of(vec(any::<u8>(), 0..32))),
        (
            of(any::<u32>()),
            of(any::<bool>()),
            any::<bool>(),
            of(0u8..=1),
        ),
        (of(state()), any::<bool>(), any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |(
                (handle, delivery_id, delivery_tag),
                (message_format, settled, more, rcv_settle_mode),
                (state, resume, aborted, batchable),
            )| Transfer {
                handle,
                delivery_id,
                delivery_tag,
                message_format,
                settled,
                more,
                rcv_settle_mode,
                state,
                resume,
                aborted,
                batchable,
            },
        )
}

fn disposition() -> impl Strategy<Value = Disposition> {
    (
        role(),
        any::<u32>(),
        of(any::<u32>()),
        any::<bool>(),
        of(state()),
        any::<bool>(),
    )
        .prop_map(
            |(role, first, last, settled, state, batchable)| Disposition {
                role,
                first,
                last,
                settled,
                state,
                batchable,
            },
        )
}

fn detach() -> impl Strategy<Value = Detach> {
    (any::<u32>(), any::<bool>(), of(error())).prop_map(|(handle, closed, error)| Detach {
        handle,
        closed,
        error,
    })
}

/// Through the wire: encode, then decode the bytes.
fn wire(v: &Value) -> Value {
    let bytes = v.to_bytes();
    let (back, used) = Value::decode(&bytes).expect("an encoded performative decodes");
    assert_eq!(used, bytes.len());
    back
}

/// Any value, often shaped like a performative: a described list under a performative's code.
fn performative_like() -> impl Strategy<Value = Value> {
    let codes = prop_oneof![
        (0x10u64..=0x18).boxed(),
        (0x1du64..=0x1d).boxed(),
        (0x23u64..=0x29).boxed(),
        (0x40u64..=0x44).boxed(),
        any::<u64>().boxed(),
    ];
    prop_oneof![
        value(),
        (codes, vec(small_value(), 0..16))
            .prop_map(|(code, fields)| Value::described(code, fields)),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_value_read_as_any_performative_never_panics(v in performative_like()) {
        let _ = Open::from_value(&v);
        let _ = Begin::from_value(&v);
        let _ = Attach::from_value(&v);
        let _ = Flow::from_value(&v);
        let _ = Transfer::from_value(&v);
        let _ = Disposition::from_value(&v);
        let _ = Detach::from_value(&v);
        let _ = AmqpError::from_value(&v);
        let _ = DeliveryState::from_value(&v);
        let _ = Source::from_value(&v);
        let _ = Target::from_value(&v);
        let _ = error_of(&v);
        let _ = sasl_init_mechanism(&v);
        let _ = v.descriptor_code();
    }

    #[test]
    fn opens_round_trip(p in open()) {
        prop_assert_eq!(Open::from_value(&wire(&p.to_value())), Some(p));
    }

    #[test]
    fn begins_round_trip(p in begin()) {
        prop_assert_eq!(Begin::from_value(&wire(&p.to_value())), Some(p));
    }

    #[test]
    fn attaches_round_trip(p in attach()) {
        let v = p.to_value();
        prop_assert_eq!(v.descriptor_code(), Some(code::ATTACH));
        prop_assert_eq!(Attach::from_value(&wire(&v)), Some(p));
    }

    #[test]
    fn flows_round_trip(p in flow()) {
        prop_assert_eq!(Flow::from_value(&wire(&p.to_value())), Some(p));
    }

    #[test]
    fn transfers_round_trip(p in transfer()) {
        prop_assert_eq!(Transfer::from_value(&wire(&p.to_value())), Some(p));
    }

    #[test]
    fn dispositions_round_trip(p in disposition()) {
        prop_assert_eq!(Disposition::from_value(&wire(&p.to_value())), Some(p));
    }

    #[test]
    fn detaches_round_trip(p in detach()) {
        prop_assert_eq!(Detach::from_value(&wire(&p.to_value())), Some(p));
    }
}
