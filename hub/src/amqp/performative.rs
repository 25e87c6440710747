//! Performatives, SASL frames and the types they carry, as plain structs.
//!
//! **Encoding is complete.** Every field up to the last one the spec defines is written, and a
//! field that has a default is written with that value, never as null. The spec allows both
//! shortcuts, but the Python SDK (`azure-eventhub`'s pyamqp) reads fields by position and breaks
//! on either. Decoding is lenient the other way: missing trailing fields and nulls take the
//! spec's defaults.

use super::codec::Value;

/// Descriptor codes (part 2.7, 2.8, 3.5, 5.3).
pub mod code {
    pub const OPEN: u64 = 0x10;
    pub const BEGIN: u64 = 0x11;
    pub const ATTACH: u64 = 0x12;
    pub const FLOW: u64 = 0x13;
    pub const TRANSFER: u64 = 0x14;
    pub const DISPOSITION: u64 = 0x15;
    pub const DETACH: u64 = 0x16;
    pub const END: u64 = 0x17;
    pub const CLOSE: u64 = 0x18;
    pub const ERROR: u64 = 0x1d;
    pub const RECEIVED: u64 = 0x23;
    pub const ACCEPTED: u64 = 0x24;
    pub const REJECTED: u64 = 0x25;
    pub const RELEASED: u64 = 0x26;
    pub const MODIFIED: u64 = 0x27;
    pub const SOURCE: u64 = 0x28;
    pub const TARGET: u64 = 0x29;
    pub const SASL_MECHANISMS: u64 = 0x40;
    pub const SASL_INIT: u64 = 0x41;
    pub const SASL_OUTCOME: u64 = 0x44;
}

/// Positional access to a described list's fields with spec defaults.
struct Fields<'a>(&'a [Value]);

impl<'a> Fields<'a> {
    fn of(value: &'a Value, expected: u64) -> Option<Fields<'a>> {
        match value {
            Value::Described(d, inner) if d.as_u64() == Some(expected) => match inner.as_ref() {
                Value::List(items) => Some(Fields(items)),
                _ => None,
            },
            _ => None,
        }
    }
    fn get(&self, i: usize) -> Option<&'a Value> {
        self.0.get(i).filter(|v| !v.is_null())
    }
    fn string(&self, i: usize) -> Option<String> {
        self.get(i).and_then(Value::as_str).map(str::to_string)
    }
    fn u32(&self, i: usize) -> Option<u32> {
        self.get(i)
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
    }
    fn u64(&self, i: usize) -> Option<u64> {
        self.get(i).and_then(Value::as_u64)
    }
    /// An optional number that must lie in `0..=max`: `Some(None)` when absent or null, and
    /// `None` when it is out of range or not a number, so the performative is malformed instead
    /// of carrying a truncated value.
    fn bounded<T: TryFrom<u64>>(&self, i: usize, max: u64) -> Option<Option<T>> {
        match self.get(i) {
            None => Some(None),
            Some(v) => v
                .as_u64()
                .filter(|n| *n <= max)
                .and_then(|n| T::try_from(n).ok())
                .map(Some),
        }
    }
    fn bool(&self, i: usize, default: bool) -> bool {
        self.get(i).and_then(Value::as_bool).unwrap_or(default)
    }
    fn map(&self, i: usize) -> Vec<(Value, Value)> {
        match self.get(i) {
            Some(Value::Map(pairs)) => pairs.clone(),
            _ => Vec::new(),
        }
    }
    /// A `multiple` symbol field: a single symbol or an array of them.
    fn symbols(&self, i: usize) -> Vec<String> {
        match self.get(i) {
            Some(Value::Array(items)) | Some(Value::List(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            Some(v) => v.as_str().map(|s| vec![s.to_string()]).unwrap_or_default(),
            None => Vec::new(),
        }
    }
}

fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> Value) -> Value {
    v.map(f).unwrap_or(Value::Null)
}

fn symbols(items: &[String]) -> Value {
    if items.is_empty() {
        Value::Null
    } else {
        Value::Array(items.iter().map(|s| Value::symbol(s.as_str())).collect())
    }
}

fn map_or_null(pairs: &[(Value, Value)]) -> Value {
    if pairs.is_empty() {
        Value::Null
    } else {
        Value::Map(pairs.to_vec())
    }
}

/// An AMQP error (part 2.8.14).
#[derive(Debug, Clone, PartialEq)]
pub struct AmqpError {
    pub condition: String,
    pub description: Option<String>,
    pub info: Vec<(Value, Value)>,
}

impl AmqpError {
    pub fn new(condition: &str, description: impl Into<String>) -> Self {
        Self {
            condition: condition.to_string(),
            description: Some(description.into()),
            info: Vec::new(),
        }
    }

    pub fn to_value(&self) -> Value {
        Value::described(
            code::ERROR,
            vec![
                Value::symbol(self.condition.as_str()),
                opt(self.description.clone(), Value::String),
                map_or_null(&self.info),
            ],
        )
    }

    pub fn from_value(v: &Value) -> Option<Self> {
        let f = Fields::of(v, code::ERROR)?;
        Some(Self {
            condition: f.string(0)?,
            description: f.string(1),
            info: f.map(2),
        })
    }
}

/// Error conditions used by the endpoint.
pub mod condition {
    pub const NOT_FOUND: &str = "amqp:not-found";
    pub const UNAUTHORIZED: &str = "amqp:unauthorized-access";
    pub const DECODE_ERROR: &str = "amqp:decode-error";
    pub const INTERNAL_ERROR: &str = "amqp:internal-error";
    pub const NOT_ALLOWED: &str = "amqp:not-allowed";
    pub const INVALID_FIELD: &str = "amqp:invalid-field";
    pub const RESOURCE_LIMIT: &str = "amqp:resource-limit-exceeded";
    pub const FRAMING_ERROR: &str = "amqp:connection:framing-error";
    pub const MESSAGE_SIZE_EXCEEDED: &str = "amqp:link:message-size-exceeded";
    pub const STOLEN: &str = "amqp:link:stolen";
    pub const DETACH_FORCED: &str = "amqp:link:detach-forced";
}

/// Role of a link endpoint: `false` sender, `true` receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Sender,
    Receiver,
}

impl Role {
    fn to_value(self) -> Value {
        Value::Bool(self == Role::Receiver)
    }
    fn from_bool(b: bool) -> Self {
        if b {
            Role::Receiver
        } else {
            Role::Sender
        }
    }
}

/// `open` (part 2.7.1).
#[derive(Debug, Clone, PartialEq)]
pub struct Open {
    pub container_id: String,
    pub hostname: Option<String>,
    pub max_frame_size: u32,
    pub channel_max: u16,
    /// Milliseconds; `None` means no idle timeout.
    pub idle_time_out: Option<u32>,
    pub offered_capabilities: Vec<String>,
    pub desired_capabilities: Vec<String>,
    pub properties: Vec<(Value, Value)>,
}

impl Open {
    pub fn to_value(&self) -> Value {
        Value::described(
            code::OPEN,
            vec![
                Value::string(self.container_id.as_str()),
                opt(self.hostname.clone(), Value::String),
                Value::Uint(self.max_frame_size),
                Value::Ushort(self.channel_max),
                opt(self.idle_time_out, Value::Uint),
                Value::Null, // outgoing-locales
                Value::Null, // incoming-locales
                symbols(&self.offered_capabilities),
                symbols(&self.desired_capabilities),
                map_or_null(&self.properties),
            ],
        )
    }

    pub fn from_value(v: &Value) -> Option<Self> {
        let f = Fields::of(v, code::OPEN)?;
        Some(Self {
            container_id: f.string(0)?,
            hostname: f.string(1),
            max_frame_size: f.u32(2).unwrap_or(u32::MAX),
            channel_max: f
                .u32(3)
                .map(|c| c.min(u16::MAX as u32) as u16)
                .unwrap_or(u16::MAX),
            idle_time_out: f.u32(4),
            offered_capabilities: f.symbols(7),
            desired_capabilities: f.symbols(8),
            properties: f.map(9),
        })
    }
}

/// `begin` (part 2.7.2).
#[derive(Debug, Clone, PartialEq)]
pub struct Begin {
    pub remote_channel: Option<u16>,
    pub next_outgoing_id: u32,
    pub incoming_window: u32,
    pub outgoing_window: u32,
    pub handle_max: u32,
    pub properties: Vec<(Value, Value)>,
}

impl Begin {
    pub fn to_value(&self) -> Value {
        Value::described(
            code::BEGIN,
            vec![
                opt(self.remote_channel, Value::Ushort),
                Value::Uint(self.next_outgoing_id),
                Value::Uint(self.incoming_window),
                Value::Uint(self.outgoing_window),
                Value::Uint(self.handle_max),
                Value::Null,
                Value::Null,
                map_or_null(&self.properties),
            ],
        )
    }

    pub fn from_value(v: &Value) -> Option<Self> {
        let f = Fields::of(v, code::BEGIN)?;
        Some(Self {
            remote_channel: f.bounded(0, u16::MAX.into())?,
            next_outgoing_id: f.u32(1)?,
            incoming_window: f.u32(2)?,
            outgoing_window: f.u32(3)?,
            handle_max: f.u32(4).unwrap_or(u32::MAX),
            properties: f.map(7),
        })
    }
}

/// A link's `source` (part 3.5.3).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Source {
    pub address: Option<String>,
    /// Filter set: filter name → described filter value.
    pub filter: Vec<(Value, Value)>,
}

impl Source {
    pub fn to_value(&self) -> Value {
        Value::described(
            code::SOURCE,
            vec![
                opt(self.address.clone(), Value::String),
                Value::Uint(0),               // durable: none
                Value::symbol("session-end"), // expiry-policy
                Value::Uint(0),               // timeout
                Value::Bool(false),           // dynamic
                Value::Null,                  // dynamic-node-properties
                Value::Null,                  // distribution-mode
                map_or_null(&self.filter),    // filter
                Value::Null,                  // default-outcome
                Value::Null,                  // outcomes
                Value::Null,                  // capabilities
            ],
        )
    }

    pub fn from_value(v: &Value) -> Option<Self> {
        let f = Fields::of(v, code::SOURCE)?;
        Some(Self {
            address: f.string(0),
            filter: f.map(7),
        })
    }
}

/// A link's `target` (part 3.5.4).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Target {
    pub address: Option<String>,
}

impl Target {
    pub fn to_value(&self) -> Value {
        Value::described(
            code::TARGET,
            vec![
                opt(self.address.clone(), Value::String),
                Value::Uint(0),
                Value::symbol("session-end"),
                Value::Uint(0),
                Value::Bool(false),
                Value::Null,
                Value::Null,
            ],
        )
    }

    pub fn from_value(v: &Value) -> Option<Self> {
        let f = Fields::of(v, code::TARGET)?;
        Some(Self {
            address: f.string(0),
        })
    }
}

/// Sender settle mode: 0 unsettled, 1 settled, 2 mixed (default).
pub const SND_SETTLE_MIXED: u8 = 2;
/// Receiver settle mode: 0 first (default), 1 second.
pub const RCV_SETTLE_FIRST: u8 = 0;
/// Highest valid sender settle mode (mixed).
const SND_SETTLE_MAX: u64 = 2;
/// Highest valid receiver settle mode (second).
const RCV_SETTLE_MAX: u64 = 1;

/// `attach` (part 2.7.3).
#[derive(Debug, Clone, PartialEq)]
pub struct Attach {
    pub name: String,
    pub handle: u32,
    pub role: Role,
    pub snd_settle_mode: u8,
    pub rcv_settle_mode: u8,
    pub source: Option<Source>,
    pub target: Option<Target>,
    pub initial_delivery_count: Option<u32>,
    pub max_message_size: Option<u64>,
    pub offered_capabilities: Vec<String>,
    pub desired_capabilities: Vec<String>,
    pub properties: Vec<(Value, Value)>,
}

impl Attach {
    pub fn to_value(&self) -> Value {
        Value::described(
            code::ATTACH,
            vec![
                Value::string(self.name.as_str()),
                Value::Uint(self.handle),
                self.role.to_value(),
                Value::Ubyte(self.snd_settle_mode),
                Value::Ubyte(self.rcv_settle_mode),
                opt(self.source.as_ref(), Source::to_value),
                opt(self.target.as_ref(), Target::to_value),
                Value::Null,        // unsettled
                Value::Bool(false), // incomplete-unsettled
                opt(self.initial_delivery_count, Value::Uint),
                opt(self.max_message_size, Value::Ulong),
                symbols(&self.offered_capabilities),
                symbols(&self.desired_capabilities),
                map_or_null(&self.properties),
            ],
        )
    }

    pub fn from_value(v: &Value) -> Option<Self> {
        let f = Fields::of(v, code::ATTACH)?;
        Some(Self {
            name: f.string(0)?,
            handle: f.u32(1)?,
            role: Role::from_bool(f.bool(2, false)),
            snd_settle_mode: f.bounded(3, SND_SETTLE_MAX)?.unwrap_or(SND_SETTLE_MIXED),
            rcv_settle_mode: f.bounded(4, RCV_SETTLE_MAX)?.unwrap_or(RCV_SETTLE_FIRST),
            source: f.get(5).and_then(Source::from_value),
            target: f.get(6).and_then(Target::from_value),
            initial_delivery_count: f.u32(9),
            max_message_size: f.u64(10),
            offered_capabilities: f.symbols(11),
            desired_capabilities: f.symbols(12),
            properties: f.map(13),
        })
    }
}

/// `flow` (part 2.7.4).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Flow {
    pub next_incoming_id: Option<u32>,
    pub incoming_window: u32,
    pub next_outgoing_id: u32,
    pub outgoing_window: u32,
    pub handle: Option<u32>,
    pub delivery_count: Option<u32>,
    pub link_credit: Option<u32>,
    pub available: Option<u32>,
    pub drain: bool,
    pub echo: bool,
    pub properties: Vec<(Value, Value)>,
}

impl Flow {
    pub fn to_value(&self) -> Value {
        Value::described(
            code::FLOW,
            vec![
                opt(self.next_incoming_id, Value::Uint),
                Value::Uint(self.incoming_window),
                Value::Uint(self.next_outgoing_id),
                Value::Uint(self.outgoing_window),
                opt(self.handle, Value::Uint),
                opt(self.delivery_count, Value::Uint),
                opt(self.link_credit, Value::Uint),
                opt(self.available, Value::Uint),
                Value::Bool(self.drain),
                Value::Bool(self.echo),
                map_or_null(&self.properties),
            ],
        )
    }

    pub fn from_value(v: &Value) -> Option<Self> {
        let f = Fields::of(v, code::FLOW)?;
        Some(Self {
            next_incoming_id: f.u32(0),
            incoming_window: f.u32(1)?,
            next_outgoing_id: f.u32(2)?,
            outgoing_window: f.u32(3)?,
            handle: f.u32(4),
            delivery_count: f.u32(5),
            link_credit: f.u32(6),
            available: f.u32(7),
            drain: f.bool(8, false),
            echo: f.bool(9, false),
            properties: f.map(10),
        })
    }
}

/// A delivery state / outcome (part 3.4).
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryState {
    Accepted,
    Rejected(Option<AmqpError>),
    Released,
    Modified,
    Received,
}

impl DeliveryState {
    pub fn to_value(&self) -> Value {
        match self {
            DeliveryState::Accepted => Value::described(code::ACCEPTED, vec![]),
            DeliveryState::Rejected(err) => {
                Value::described(code::REJECTED, vec![opt(err.as_ref(), AmqpError::to_value)])
            }
            DeliveryState::Released => Value::described(code::RELEASED, vec![]),
            DeliveryState::Modified => Value::described(
                code::MODIFIED,
                vec![Value::Bool(false), Value::Bool(false), Value::Null],
            ),
            DeliveryState::Received => {
                Value::described(code::RECEIVED, vec![Value::Uint(0), Value::Ulong(0)])
            }
        }
    }

    pub fn from_value(v: &Value) -> Option<Self> {
        Some(match v.descriptor_code()? {
            code::ACCEPTED => DeliveryState::Accepted,
            code::REJECTED => DeliveryState::Rejected(
                Fields::of(v, code::REJECTED)
                    .and_then(|f| f.get(0))
                    .and_then(AmqpError::from_value),
            ),
            code::RELEASED => DeliveryState::Released,
            code::MODIFIED => DeliveryState::Modified,
            code::RECEIVED => DeliveryState::Received,
            _ => return None,
        })
    }
}

/// `transfer` (part 2.7.5).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Transfer {
    pub handle: u32,
    pub delivery_id: Option<u32>,
    pub delivery_tag: Option<Vec<u8>>,
    pub message_format: Option<u32>,
    pub settled: Option<bool>,
    pub more: bool,
    pub rcv_settle_mode: Option<u8>,
    pub state: Option<DeliveryState>,
    pub resume: bool,
    pub aborted: bool,
    pub batchable: bool,
}

impl Transfer {
    pub fn to_value(&self) -> Value {
        Value::described(
            code::TRANSFER,
            vec![
                Value::Uint(self.handle),
                opt(self.delivery_id, Value::Uint),
                opt(self.delivery_tag.clone(), Value::Binary),
                opt(self.message_format, Value::Uint),
                opt(self.settled, Value::Bool),
                Value::Bool(self.more),
                opt(self.rcv_settle_mode, Value::Ubyte),
                opt(self.state.as_ref(), DeliveryState::to_value),
                Value::Bool(self.resume),
                Value::Bool(self.aborted),
                Value::Bool(self.batchable),
            ],
        )
    }

    pub fn from_value(v: &Value) -> Option<Self> {
        let f = Fields::of(v, code::TRANSFER)?;
        Some(Self {
            handle: f.u32(0)?,
            delivery_id: f.u32(1),
            delivery_tag: match f.get(2) {
                Some(Value::Binary(b)) => Some(b.clone()),
                _ => None,
            },
            message_format: f.u32(3),
            settled: f.get(4).and_then(Value::as_bool),
            more: f.bool(5, false),
            rcv_settle_mode: f.bounded(6, RCV_SETTLE_MAX)?,
            state: f.get(7).and_then(DeliveryState::from_value),
            resume: f.bool(8, false),
            aborted: f.bool(9, false),
            batchable: f.bool(10, false),
        })
    }
}

/// `disposition` (part 2.7.6).
#[derive(Debug, Clone, PartialEq)]
pub struct Disposition {
    pub role: Role,
    pub first: u32,
    pub last: Option<u32>,
    pub settled: bool,
    pub state: Option<DeliveryState>,
    pub batchable: bool,
}

impl Disposition {
    pub fn to_value(&self) -> Value {
        Value::described(
            code::DISPOSITION,
            vec![
                self.role.to_value(),
                Value::Uint(self.first),
                opt(self.last, Value::Uint),
                Value::Bool(self.settled),
                opt(self.state.as_ref(), DeliveryState::to_value),
                Value::Bool(self.batchable),
            ],
        )
    }

    pub fn from_value(v: &Value) -> Option<Self> {
        let f = Fields::of(v, code::DISPOSITION)?;
        Some(Self {
            role: Role::from_bool(f.bool(0, false)),
            first: f.u32(1)?,
            last: f.u32(2),
            settled: f.bool(3, false),
            state: f.get(4).and_then(DeliveryState::from_value),
            batchable: f.bool(5, false),
        })
    }
}

/// `detach` (part 2.7.7).
#[derive(Debug, Clone, PartialEq)]
pub struct Detach {
    pub handle: u32,
    pub closed: bool,
    pub error: Option<AmqpError>,
}

impl Detach {
    pub fn to_value(&self) -> Value {
        Value::described(
            code::DETACH,
            vec![
                Value::Uint(self.handle),
                Value::Bool(self.closed),
                opt(self.error.as_ref(), AmqpError::to_value),
            ],
        )
    }

    pub fn from_value(v: &Value) -> Option<Self> {
        let f = Fields::of(v, code::DETACH)?;
        Some(Self {
            handle: f.u32(0)?,
            closed: f.bool(1, false),
            error: f.get(2).and_then(AmqpError::from_value),
        })
    }
}

/// `end` (2.7.8) and `close` (2.7.9) carry only an optional error.
pub fn end(error: Option<&AmqpError>) -> Value {
    Value::described(code::END, vec![opt(error, AmqpError::to_value)])
}

/// See [`end`].
pub fn close(error: Option<&AmqpError>) -> Value {
    Value::described(code::CLOSE, vec![opt(error, AmqpError::to_value)])
}

/// The error of an `end` or `close`.
pub fn error_of(v: &Value) -> Option<AmqpError> {
    match v {
        Value::Described(_, inner) => match inner.as_ref() {
            Value::List(items) => items.first().and_then(AmqpError::from_value),
            _ => None,
        },
        _ => None,
    }
}

/// `sasl-mechanisms` (part 5.3.3.1).
pub fn sasl_mechanisms(mechanisms: &[&str]) -> Value {
    Value::described(
        code::SASL_MECHANISMS,
        vec![Value::Array(
            mechanisms.iter().map(|m| Value::symbol(*m)).collect(),
        )],
    )
}

/// `sasl-init` (part 5.3.3.2): the mechanism the client chose.
pub fn sasl_init_mechanism(v: &Value) -> Option<String> {
    Fields::of(v, code::SASL_INIT)?.string(0)
}

/// `sasl-outcome` (part 5.3.3.6): code 0 ok, 1 auth failed.
pub fn sasl_outcome(code_value: u8) -> Value {
    Value::described(
        code::SASL_OUTCOME,
        vec![Value::Ubyte(code_value), Value::Null],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(v: &Value) -> &[Value] {
        match v {
            Value::Described(_, inner) => match inner.as_ref() {
                Value::List(items) => items,
                _ => panic!("not a list"),
            },
            _ => panic!("not described"),
        }
    }

    #[test]
    fn encoded_performatives_carry_every_field_and_their_defaults() {
        let attach = Attach {
            name: "link".into(),
            handle: 0,
            role: Role::Sender,
            snd_settle_mode: SND_SETTLE_MIXED,
            rcv_settle_mode: RCV_SETTLE_FIRST,
            source: Some(Source::default()),
            target: Some(Target {
                address: Some("hub".into()),
            }),
            initial_delivery_count: Some(0),
            max_message_size: Some(1 << 20),
            offered_capabilities: vec![],
            desired_capabilities: vec![],
            properties: vec![],
        };
        let v = attach.to_value();
        let f = fields(&v);
        assert_eq!(f.len(), 14, "all attach fields present");
        assert_eq!(f[3], Value::Ubyte(2), "snd-settle-mode default written");
        assert_eq!(f[4], Value::Ubyte(0), "rcv-settle-mode default written");
        assert_eq!(
            f[8],
            Value::Bool(false),
            "incomplete-unsettled default written"
        );
        assert_eq!(fields(&Source::default().to_value()).len(), 11);
        assert_eq!(fields(&Target::default().to_value()).len(), 7);
        assert_eq!(fields(&Flow::default().to_value()).len(), 11);
        assert_eq!(fields(&Transfer::default().to_value()).len(), 11);
        let detach = Detach {
            handle: 1,
            closed: true,
            error: None,
        };
        assert_eq!(fields(&detach.to_value()).len(), 3);
        // And they survive the wire.
        let (back, _) = Value::decode(&v.to_bytes()).unwrap();
        assert_eq!(Attach::from_value(&back), Some(attach));
    }

    #[test]
    fn decoding_fills_in_defaults_for_omitted_fields() {
        // A minimal attach as a lenient client might send it: name, handle, role only.
        let v = Value::described(
            code::ATTACH,
            vec![Value::string("l"), Value::Uint(3), Value::Bool(true)],
        );
        let a = Attach::from_value(&v).unwrap();
        assert_eq!(a.role, Role::Receiver);
        assert_eq!(a.snd_settle_mode, SND_SETTLE_MIXED);
        assert_eq!(a.rcv_settle_mode, RCV_SETTLE_FIRST);
        assert_eq!(a.source, None);
        let open =
            Open::from_value(&Value::described(code::OPEN, vec![Value::string("c")])).unwrap();
        assert_eq!(open.max_frame_size, u32::MAX);
        assert_eq!(open.channel_max, u16::MAX);
        // Wrong descriptor or missing mandatory field: None, not a panic.
        assert!(Attach::from_value(&Value::described(code::OPEN, vec![])).is_none());
        assert!(Begin::from_value(&Value::described(code::BEGIN, vec![])).is_none());
    }

    #[test]
    fn out_of_range_numbers_make_a_performative_malformed_not_truncated() {
        let attach = |snd: Value, rcv: Value| {
            Attach::from_value(&Value::described(
                code::ATTACH,
                vec![
                    Value::string("l"),
                    Value::Uint(0),
                    Value::Bool(true),
                    snd,
                    rcv,
                ],
            ))
        };
        // 256 used to be truncated to 0: "unsettled" / "first".
        assert_eq!(attach(Value::Uint(256), Value::Null), None);
        assert_eq!(attach(Value::Null, Value::Uint(257)), None);
        assert_eq!(attach(Value::Ubyte(3), Value::Null), None);
        assert_eq!(attach(Value::Null, Value::Ubyte(2)), None);
        let a = attach(Value::Ubyte(1), Value::Ubyte(1)).unwrap();
        assert_eq!((a.snd_settle_mode, a.rcv_settle_mode), (1, 1));
        // A remote channel of 65536 used to become channel 0.
        let begin = |remote: Value| {
            Begin::from_value(&Value::described(
                code::BEGIN,
                vec![remote, Value::Uint(0), Value::Uint(1), Value::Uint(1)],
            ))
        };
        assert_eq!(begin(Value::Uint(65_536)), None);
        assert_eq!(begin(Value::Ushort(7)).unwrap().remote_channel, Some(7));
        let transfer = |rcv: Value| {
            Transfer::from_value(&Value::described(
                code::TRANSFER,
                vec![
                    Value::Uint(0),
                    Value::Null,
                    Value::Null,
                    Value::Null,
                    Value::Null,
                    Value::Null,
                    rcv,
                ],
            ))
        };
        assert_eq!(transfer(Value::Uint(256)), None);
        assert_eq!(transfer(Value::Ubyte(1)).unwrap().rcv_settle_mode, Some(1));
    }

    #[test]
    fn errors_and_outcomes_round_trip() {
        let err = AmqpError::new(condition::STOLEN, "a higher epoch took the partition");
        assert_eq!(AmqpError::from_value(&err.to_value()), Some(err.clone()));
        assert_eq!(error_of(&close(Some(&err))), Some(err.clone()));
        for state in [
            DeliveryState::Accepted,
            DeliveryState::Rejected(Some(err)),
            DeliveryState::Released,
        ] {
            assert_eq!(DeliveryState::from_value(&state.to_value()), Some(state));
        }
        let init = Value::described(
            code::SASL_INIT,
            vec![Value::symbol("ANONYMOUS"), Value::Null, Value::Null],
        );
        assert_eq!(sasl_init_mechanism(&init).as_deref(), Some("ANONYMOUS"));
    }
}
