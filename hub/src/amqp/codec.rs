//! The AMQP 1.0 type system (OASIS AMQP 1.0, part 1): one [`Value`] enum and its encoder and
//! decoder.
//!
//! Decoding never trusts a declared size or count: every length is checked against the bytes
//! actually present before anything is allocated, and nesting is bounded, so a malformed or
//! hostile frame yields a [`CodecError`] instead of a panic or a huge allocation.
//!
//! Checking lengths is not enough on its own: an array whose elements take no bytes (a null
//! element constructor, possibly described) yields one value per element without consuming
//! input, and a described array repeats its descriptor in every element. So each decode also
//! has a budget: the values it builds may take at most [`MAX_EXPANSION`] times the input's
//! length plus [`EXPANSION_SLACK`] bytes. Memory is charged before it is allocated:
//! `size_of::<Value>()` per slot of a list, map or array and per box of a described value, plus
//! the bytes of strings, symbols and binaries, and every copy of a repeated descriptor.

use std::fmt;

/// Nesting deeper than this is refused (real messages nest a few levels).
const MAX_DEPTH: usize = 32;

/// Decoded values may take at most this many bytes per input byte (plus [`EXPANSION_SLACK`]).
/// Ordinary encodings stay at or below `size_of::<Value>()` (32) per byte: a one-byte null or
/// boolean in a list is the densest input. Only arrays of zero-width described elements go
/// above it, and no real peer sends those.
pub const MAX_EXPANSION: usize = 64;
/// Extra decode budget, in bytes, whatever the input's length.
pub const EXPANSION_SLACK: usize = 64 * 1024;

/// What one slot of a decoded value costs the budget, before its variable-length contents.
const VALUE_COST: usize = std::mem::size_of::<Value>();

/// An AMQP 1.0 value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Ubyte(u8),
    Ushort(u16),
    Uint(u32),
    Ulong(u64),
    Byte(i8),
    Short(i16),
    Int(i32),
    Long(i64),
    Float(f32),
    Double(f64),
    Char(char),
    /// Milliseconds since the Unix epoch.
    Timestamp(i64),
    Uuid([u8; 16]),
    Binary(Vec<u8>),
    String(String),
    Symbol(String),
    List(Vec<Value>),
    /// Key/value pairs in wire order (AMQP maps keep order and may have any key type).
    Map(Vec<(Value, Value)>),
    /// Elements all of one type.
    Array(Vec<Value>),
    /// A described value: descriptor (usually a ulong code or a symbol) and the value.
    Described(Box<Value>, Box<Value>),
}

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("truncated AMQP value: needed {needed} more bytes at byte {at}")]
    Truncated { at: usize, needed: usize },
    #[error("unknown AMQP type constructor 0x{code:02x} at byte {at}")]
    UnknownConstructor { code: u8, at: usize },
    #[error("invalid AMQP value at byte {at}: {reason}")]
    Invalid { at: usize, reason: &'static str },
    #[error("AMQP value nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// The values would take more memory than the decode budget allows (see the module docs).
    #[error(
        "AMQP value at byte {at} expands too much: {input} bytes may decode to at most {limit} \
         bytes of values ({MAX_EXPANSION} per byte plus {EXPANSION_SLACK})"
    )]
    TooLarge {
        at: usize,
        input: usize,
        limit: usize,
    },
}

impl Value {
    /// A described list, the shape of every performative and message section.
    pub fn described(code: u64, fields: Vec<Value>) -> Value {
        Value::Described(Box::new(Value::Ulong(code)), Box::new(Value::List(fields)))
    }

    /// A symbol value.
    pub fn symbol(s: impl Into<String>) -> Value {
        Value::Symbol(s.into())
    }

    /// A string value.
    pub fn string(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The text of a string or symbol.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) | Value::Symbol(s) => Some(s),
            _ => None,
        }
    }

    /// Any unsigned or signed integer that fits in u64.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::Ubyte(v) => Some(v.into()),
            Value::Ushort(v) => Some(v.into()),
            Value::Uint(v) => Some(v.into()),
            Value::Ulong(v) => Some(v),
            Value::Byte(v) => u64::try_from(v).ok(),
            Value::Short(v) => u64::try_from(v).ok(),
            Value::Int(v) => u64::try_from(v).ok(),
            Value::Long(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any integer that fits in i64.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Byte(v) => Some(v.into()),
            Value::Short(v) => Some(v.into()),
            Value::Int(v) => Some(v.into()),
            Value::Long(v) => Some(v),
            Value::Timestamp(v) => Some(v),
            _ => self.as_u64().and_then(|v| i64::try_from(v).ok()),
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The descriptor code of a described value with a numeric descriptor.
    pub fn descriptor_code(&self) -> Option<u64> {
        match self {
            Value::Described(d, _) => d.as_u64(),
            _ => None,
        }
    }

    /// Look a key up in a map by string/symbol text.
    pub fn map_get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(pairs) => pairs
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Encode into `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Null => out.push(0x40),
            Value::Bool(true) => out.push(0x41),
            Value::Bool(false) => out.push(0x42),
            Value::Ubyte(v) => {
                out.push(0x50);
                out.push(*v);
            }
            Value::Ushort(v) => {
                out.push(0x60);
                out.extend_from_slice(&v.to_be_bytes());
            }
            Value::Uint(0) => out.push(0x43),
            Value::Uint(v) if *v <= 255 => {
                out.push(0x52);
                out.push(*v as u8);
            }
            Value::Uint(v) => {
                out.push(0x70);
                out.extend_from_slice(&v.to_be_bytes());
            }
            Value::Ulong(0) => out.push(0x44),
            Value::Ulong(v) if *v <= 255 => {
                out.push(0x53);
                out.push(*v as u8);
            }
            Value::Ulong(v) => {
                out.push(0x80);
                out.extend_from_slice(&v.to_be_bytes());
            }
            Value::Byte(v) => {
                out.push(0x51);
                out.push(*v as u8);
            }
            Value::Short(v) => {
                out.push(0x61);
                out.extend_from_slice(&v.to_be_bytes());
            }
            Value::Int(v) if i8::try_from(*v).is_ok() => {
                out.push(0x54);
                out.push(*v as i8 as u8);
            }
            Value::Int(v) => {
                out.push(0x71);
                out.extend_from_slice(&v.to_be_bytes());
            }
            Value::Long(v) if i8::try_from(*v).is_ok() => {
                out.push(0x55);
                out.push(*v as i8 as u8);
            }
            Value::Long(v) => {
                out.push(0x81);
                out.extend_from_slice(&v.to_be_bytes());
            }
            Value::Float(v) => {
                out.push(0x72);
                out.extend_from_slice(&v.to_bits().to_be_bytes());
            }
            Value::Double(v) => {
                out.push(0x82);
                out.extend_from_slice(&v.to_bits().to_be_bytes());
            }
            Value::Char(c) => {
                out.push(0x73);
                out.extend_from_slice(&(*c as u32).to_be_bytes());
            }
            Value::Timestamp(v) => {
                out.push(0x83);
                out.extend_from_slice(&v.to_be_bytes());
            }
            Value::Uuid(u) => {
                out.push(0x98);
                out.extend_from_slice(u);
            }
            Value::Binary(b) => encode_variable(out, 0xa0, 0xb0, b),
            Value::String(s) => encode_variable(out, 0xa1, 0xb1, s.as_bytes()),
            Value::Symbol(s) => encode_variable(out, 0xa3, 0xb3, s.as_bytes()),
            Value::List(items) if items.is_empty() => out.push(0x45),
            Value::List(items) => {
                let mut body = Vec::new();
                for item in items {
                    item.encode(&mut body);
                }
                encode_compound(out, 0xc0, 0xd0, items.len(), &body);
            }
            Value::Map(pairs) => {
                let mut body = Vec::new();
                for (k, v) in pairs {
                    k.encode(&mut body);
                    v.encode(&mut body);
                }
                encode_compound(out, 0xc1, 0xd1, pairs.len() * 2, &body);
            }
            Value::Array(items) => encode_array(out, items),
            Value::Described(descriptor, value) => {
                out.push(0x00);
                descriptor.encode(out);
                value.encode(out);
            }
        }
    }

    /// The encoded bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Decode one value from the start of `buf`; returns it and the bytes consumed.
    pub fn decode(buf: &[u8]) -> Result<(Value, usize), CodecError> {
        let mut reader = Reader::new(buf);
        let value = reader.value(0)?;
        Ok((value, reader.pos))
    }

    /// Decode values until `buf` is used up (e.g. the sections of a message).
    pub fn decode_all(buf: &[u8]) -> Result<Vec<Value>, CodecError> {
        let mut reader = Reader::new(buf);
        let mut values = Vec::new();
        while reader.pos < buf.len() {
            // The vector's slots, with room for its growth.
            reader.charge(2 * VALUE_COST, reader.pos)?;
            values.push(reader.value(0)?);
        }
        Ok(values)
    }
}

fn encode_variable(out: &mut Vec<u8>, small: u8, large: u8, bytes: &[u8]) {
    if bytes.len() <= 255 {
        out.push(small);
        out.push(bytes.len() as u8);
    } else {
        out.push(large);
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    }
    out.extend_from_slice(bytes);
}

fn encode_compound(out: &mut Vec<u8>, small: u8, large: u8, count: usize, body: &[u8]) {
    encode_sized(out, Some(small), large, count, body)
}

/// Write a size-and-count prefixed body; `small: None` forces the 32-bit form (array elements
/// share one constructor, so they cannot pick their width one by one).
fn encode_sized(out: &mut Vec<u8>, small: Option<u8>, large: u8, count: usize, body: &[u8]) {
    // The size counts the count field too.
    if let Some(small) = small.filter(|_| body.len() < 255 && count <= 255) {
        out.push(small);
        out.push((body.len() + 1) as u8);
        out.push(count as u8);
    } else {
        out.push(large);
        out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        out.extend_from_slice(&(count as u32).to_be_bytes());
    }
    out.extend_from_slice(body);
}

/// Arrays use one constructor for all elements, so elements are written in their widest form.
fn encode_array(out: &mut Vec<u8>, items: &[Value]) {
    encode_array_sized(out, Some(0xe0), items)
}

fn encode_array_sized(out: &mut Vec<u8>, small: Option<u8>, items: &[Value]) {
    let mut body = Vec::new();
    let constructor: Vec<u8> = match items.first() {
        None => vec![0x40],
        Some(first) => {
            let mut c = Vec::new();
            array_constructor(first, &mut c);
            c
        }
    };
    body.extend_from_slice(&constructor);
    for item in items {
        array_element(item, &mut body);
    }
    // The array's count sits before the element constructor, inside the size.
    let mut sized = Vec::new();
    encode_sized(&mut sized, small, 0xf0, items.len(), &body);
    out.extend_from_slice(&sized);
}

fn array_constructor(v: &Value, out: &mut Vec<u8>) {
    let code = match v {
        Value::Null => 0x40,
        Value::Bool(_) => 0x56,
        Value::Ubyte(_) => 0x50,
        Value::Ushort(_) => 0x60,
        Value::Uint(_) => 0x70,
        Value::Ulong(_) => 0x80,
        Value::Byte(_) => 0x51,
        Value::Short(_) => 0x61,
        Value::Int(_) => 0x71,
        Value::Long(_) => 0x81,
        Value::Float(_) => 0x72,
        Value::Double(_) => 0x82,
        Value::Char(_) => 0x73,
        Value::Timestamp(_) => 0x83,
        Value::Uuid(_) => 0x98,
        Value::Binary(_) => 0xb0,
        Value::String(_) => 0xb1,
        Value::Symbol(_) => 0xb3,
        Value::List(_) => 0xd0,
        Value::Map(_) => 0xd1,
        Value::Array(_) => 0xf0,
        Value::Described(descriptor, inner) => {
            out.push(0x00);
            descriptor.encode(out);
            array_constructor(inner, out);
            return;
        }
    };
    out.push(code);
}

fn array_element(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => {}
        Value::Bool(b) => out.push(*b as u8),
        Value::Ubyte(x) => out.push(*x),
        Value::Ushort(x) => out.extend_from_slice(&x.to_be_bytes()),
        Value::Uint(x) => out.extend_from_slice(&x.to_be_bytes()),
        Value::Ulong(x) => out.extend_from_slice(&x.to_be_bytes()),
        Value::Byte(x) => out.push(*x as u8),
        Value::Short(x) => out.extend_from_slice(&x.to_be_bytes()),
        Value::Int(x) => out.extend_from_slice(&x.to_be_bytes()),
        Value::Long(x) | Value::Timestamp(x) => out.extend_from_slice(&x.to_be_bytes()),
        Value::Float(x) => out.extend_from_slice(&x.to_bits().to_be_bytes()),
        Value::Double(x) => out.extend_from_slice(&x.to_bits().to_be_bytes()),
        Value::Char(c) => out.extend_from_slice(&(*c as u32).to_be_bytes()),
        Value::Uuid(u) => out.extend_from_slice(u),
        Value::Binary(b) => {
            out.extend_from_slice(&(b.len() as u32).to_be_bytes());
            out.extend_from_slice(b);
        }
        Value::String(s) | Value::Symbol(s) => {
            out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Value::List(items) => {
            let mut body = Vec::new();
            for item in items {
                item.encode(&mut body);
            }
            let mut full = Vec::new();
            encode_sized(&mut full, None, 0xd0, items.len(), &body);
            out.extend_from_slice(&full[1..]);
        }
        Value::Map(pairs) => {
            let mut body = Vec::new();
            for (k, val) in pairs {
                k.encode(&mut body);
                val.encode(&mut body);
            }
            let mut full = Vec::new();
            encode_sized(&mut full, None, 0xd1, pairs.len() * 2, &body);
            out.extend_from_slice(&full[1..]);
        }
        Value::Array(items) => {
            let mut full = Vec::new();
            encode_array_sized(&mut full, None, items);
            out.extend_from_slice(&full[1..]);
        }
        Value::Described(_, inner) => array_element(inner, out),
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Bytes of values this decode may still build (see the module docs).
    budget: usize,
    /// Length of the whole input (`buf` of a nested reader ends early), for error messages.
    input_len: usize,
}

/// The decode budget for `input_len` bytes.
fn budget_for(input_len: usize) -> usize {
    input_len
        .saturating_mul(MAX_EXPANSION)
        .saturating_add(EXPANSION_SLACK)
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            budget: budget_for(buf.len()),
            input_len: buf.len(),
        }
    }

    /// A reader of `self.buf[start..end]` (positions stay absolute) sharing this budget; give
    /// the budget back with [`Reader::rejoin`].
    fn nested(&mut self, start: usize, end: usize) -> Reader<'a> {
        Reader {
            buf: &self.buf[..end],
            pos: start,
            budget: std::mem::take(&mut self.budget),
            input_len: self.input_len,
        }
    }

    fn rejoin(&mut self, inner: Reader<'a>) {
        self.budget = inner.budget;
    }

    /// Take `cost` bytes from the budget, or fail naming the limit.
    fn charge(&mut self, cost: usize, at: usize) -> Result<(), CodecError> {
        match self.budget.checked_sub(cost) {
            Some(rest) => {
                self.budget = rest;
                Ok(())
            }
            None => Err(CodecError::TooLarge {
                at,
                input: self.input_len,
                limit: budget_for(self.input_len),
            }),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let available = self.buf.len() - self.pos;
        if n > available {
            return Err(CodecError::Truncated {
                at: self.pos,
                needed: n - available,
            });
        }
        let slice = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        Ok(self.take(N)?.try_into().expect("length checked"))
    }

    fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn value(&mut self, depth: usize) -> Result<Value, CodecError> {
        if depth > MAX_DEPTH {
            return Err(CodecError::TooDeep);
        }
        let at = self.pos;
        let code = self.u8()?;
        if code == 0x00 {
            // The two boxes.
            self.charge(2 * VALUE_COST, at)?;
            let descriptor = self.value(depth + 1)?;
            let value = self.value(depth + 1)?;
            return Ok(Value::Described(Box::new(descriptor), Box::new(value)));
        }
        self.body(code, at, depth)
    }

    /// The value after its constructor `code`.
    fn body(&mut self, code: u8, at: usize, depth: usize) -> Result<Value, CodecError> {
        Ok(match code {
            0x40 => Value::Null,
            0x41 => Value::Bool(true),
            0x42 => Value::Bool(false),
            0x56 => match self.u8()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                _ => {
                    return Err(CodecError::Invalid {
                        at,
                        reason: "boolean byte is neither 0 nor 1",
                    })
                }
            },
            0x50 => Value::Ubyte(self.u8()?),
            0x60 => Value::Ushort(u16::from_be_bytes(self.array()?)),
            0x70 => Value::Uint(self.u32()?),
            0x52 => Value::Uint(self.u8()?.into()),
            0x43 => Value::Uint(0),
            0x80 => Value::Ulong(u64::from_be_bytes(self.array()?)),
            0x53 => Value::Ulong(self.u8()?.into()),
            0x44 => Value::Ulong(0),
            0x51 => Value::Byte(self.u8()? as i8),
            0x61 => Value::Short(i16::from_be_bytes(self.array()?)),
            0x71 => Value::Int(i32::from_be_bytes(self.array()?)),
            0x54 => Value::Int((self.u8()? as i8).into()),
            0x81 => Value::Long(i64::from_be_bytes(self.array()?)),
            0x55 => Value::Long((self.u8()? as i8).into()),
            0x72 => Value::Float(f32::from_bits(self.u32()?)),
            0x82 => Value::Double(f64::from_bits(u64::from_be_bytes(self.array()?))),
            // Decimals are carried as their raw bytes; Event Hubs does not use them.
            0x74 => Value::Binary(self.fixed_bytes(4, at)?),
            0x84 => Value::Binary(self.fixed_bytes(8, at)?),
            0x94 => Value::Binary(self.fixed_bytes(16, at)?),
            0x73 => Value::Char(char::from_u32(self.u32()?).ok_or(CodecError::Invalid {
                at,
                reason: "char is not a Unicode scalar value",
            })?),
            0x83 => Value::Timestamp(i64::from_be_bytes(self.array()?)),
            0x98 => Value::Uuid(self.array()?),
            0xa0 | 0xa1 | 0xa3 => {
                let len = self.u8()? as usize;
                self.variable(code, len, at)?
            }
            0xb0 | 0xb1 | 0xb3 => {
                let len = self.u32()? as usize;
                self.variable(code, len, at)?
            }
            0x45 => Value::List(Vec::new()),
            0xc0 | 0xc1 | 0xd0 | 0xd1 => {
                let wide = code >= 0xd0;
                let size = if wide {
                    self.u32()? as usize
                } else {
                    self.u8()? as usize
                };
                let body_start = self.pos;
                let body = self.take(size)?;
                let (count, header) = if wide {
                    if body.len() < 4 {
                        return Err(CodecError::Invalid {
                            at,
                            reason: "compound size smaller than its count",
                        });
                    }
                    (
                        u32::from_be_bytes(body[..4].try_into().unwrap()) as usize,
                        4,
                    )
                } else {
                    if body.is_empty() {
                        return Err(CodecError::Invalid {
                            at,
                            reason: "compound size smaller than its count",
                        });
                    }
                    (body[0] as usize, 1)
                };
                // Each element takes at least one byte: a count above that is a lie.
                if count > body.len() - header {
                    return Err(CodecError::Invalid {
                        at,
                        reason: "compound count larger than its size allows",
                    });
                }
                let is_map = code == 0xc1 || code == 0xd1;
                if is_map && count % 2 != 0 {
                    return Err(CodecError::Invalid {
                        at,
                        reason: "map has an odd number of elements",
                    });
                }
                self.charge(count.saturating_mul(VALUE_COST), at)?;
                let mut inner = self.nested(body_start + header, body_start + size);
                let value = if is_map {
                    let mut pairs = Vec::with_capacity(count / 2);
                    for _ in 0..count / 2 {
                        let k = inner.value(depth + 1)?;
                        let v = inner.value(depth + 1)?;
                        pairs.push((k, v));
                    }
                    Value::Map(pairs)
                } else {
                    let mut items = Vec::with_capacity(count);
                    for _ in 0..count {
                        items.push(inner.value(depth + 1)?);
                    }
                    Value::List(items)
                };
                self.rejoin(inner);
                value
            }
            0xe0 | 0xf0 => {
                let wide = code == 0xf0;
                let size = if wide {
                    self.u32()? as usize
                } else {
                    self.u8()? as usize
                };
                let body_start = self.pos;
                self.take(size)?;
                let mut inner = self.nested(body_start, body_start + size);
                let count = if wide {
                    inner.u32()? as usize
                } else {
                    inner.u8()? as usize
                };
                if count > size {
                    return Err(CodecError::Invalid {
                        at,
                        reason: "array count larger than its size allows",
                    });
                }
                let array = inner.array_items(count, at, depth + 1)?;
                self.rejoin(inner);
                array
            }
            other => return Err(CodecError::UnknownConstructor { code: other, at }),
        })
    }

    /// `n` raw bytes as an owned vector, charged to the budget.
    fn fixed_bytes(&mut self, n: usize, at: usize) -> Result<Vec<u8>, CodecError> {
        let bytes = self.take(n)?;
        self.charge(n, at)?;
        Ok(bytes.to_vec())
    }

    fn variable(&mut self, code: u8, len: usize, at: usize) -> Result<Value, CodecError> {
        let bytes = self.take(len)?;
        self.charge(len, at)?;
        Ok(match code & 0x0f {
            0x00 => Value::Binary(bytes.to_vec()),
            _ => {
                let text = std::str::from_utf8(bytes)
                    .map_err(|_| CodecError::Invalid {
                        at,
                        reason: "string is not UTF-8",
                    })?
                    .to_string();
                if code & 0x0f == 0x01 {
                    Value::String(text)
                } else {
                    Value::Symbol(text)
                }
            }
        })
    }

    fn array_items(&mut self, count: usize, at: usize, depth: usize) -> Result<Value, CodecError> {
        if depth > MAX_DEPTH {
            return Err(CodecError::TooDeep);
        }
        let mut code = self.u8()?;
        let mut descriptor = None;
        if code == 0x00 {
            // What building the descriptor cost is what each element's copy of it costs.
            let before = self.budget;
            let d = self.value(depth + 1)?;
            descriptor = Some((d, before - self.budget));
            code = self.u8()?;
        }
        self.charge(count.saturating_mul(VALUE_COST), at)?;
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            let item = self.body(code, at, depth)?;
            items.push(match &descriptor {
                Some((d, cost)) => {
                    // Two boxes and a copy of the descriptor.
                    self.charge((2 * VALUE_COST).saturating_add(*cost), at)?;
                    Value::Described(Box::new(d.clone()), Box::new(item))
                }
                None => item,
            });
        }
        Ok(Value::Array(items))
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::String(s) => write!(f, "{s:?}"),
            Value::Symbol(s) => write!(f, ":{s}"),
            other => write!(f, "{other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(v: Value) {
        let bytes = v.to_bytes();
        let (decoded, used) = Value::decode(&bytes).unwrap_or_else(|e| panic!("{v:?}: {e}"));
        assert_eq!(used, bytes.len(), "{v:?}");
        assert_eq!(decoded, v);
    }

    #[test]
    fn every_type_round_trips() {
        let long_text = "x".repeat(300);
        for v in [
            Value::Null,
            Value::Bool(true),
            Value::Bool(false),
            Value::Ubyte(7),
            Value::Ushort(65535),
            Value::Uint(0),
            Value::Uint(200),
            Value::Uint(70000),
            Value::Ulong(0),
            Value::Ulong(0x70),
            Value::Ulong(u64::MAX),
            Value::Byte(-3),
            Value::Short(-300),
            Value::Int(-5),
            Value::Int(i32::MIN),
            Value::Long(-1),
            Value::Long(i64::MAX),
            Value::Float(1.5),
            Value::Double(-2.25),
            Value::Char('é'),
            Value::Timestamp(1_764_000_000_000),
            Value::Uuid([9; 16]),
            Value::Binary(vec![1, 2, 3]),
            Value::Binary(vec![0; 1000]),
            Value::string("hello"),
            Value::string(long_text.clone()),
            Value::symbol("amqp:link:stolen"),
            Value::List(vec![]),
            Value::List(vec![Value::Null, Value::Uint(1), Value::string("a")]),
            Value::List(vec![Value::string(long_text); 3]),
            Value::Map(vec![(Value::symbol("k"), Value::Long(1))]),
            Value::Array(vec![Value::symbol("ANONYMOUS"), Value::symbol("PLAIN")]),
            Value::Array(vec![Value::string("0"), Value::string("1")]),
            Value::Array(vec![Value::Long(1), Value::Long(2)]),
            Value::Array(vec![]),
            Value::described(0x10, vec![Value::string("id"), Value::Null]),
        ] {
            round_trip(v);
        }
    }

    #[test]
    fn compact_and_wide_forms_decode_alike() {
        // smalluint / uint0 / uint all mean a uint.
        assert_eq!(Value::decode(&[0x52, 5]).unwrap().0, Value::Uint(5));
        assert_eq!(
            Value::decode(&[0x70, 0, 0, 0, 5]).unwrap().0,
            Value::Uint(5)
        );
        assert_eq!(Value::decode(&[0x43]).unwrap().0, Value::Uint(0));
        // list8 and list32 of the same items.
        let l8 = [0xc0, 3, 2, 0x41, 0x40];
        let l32 = [0xd0, 0, 0, 0, 6, 0, 0, 0, 2, 0x41, 0x40];
        assert_eq!(
            Value::decode(&l8).unwrap().0,
            Value::decode(&l32).unwrap().0
        );
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let cases: &[&[u8]] = &[
            &[],
            &[0x70, 0, 0],                   // truncated uint
            &[0xa1, 10, b'a'],               // string shorter than declared
            &[0xb0, 0xff, 0xff, 0xff, 0xff], // 4 GiB binary declared
            &[
                0xd0, 0, 0, 0, 8, 0xff, 0xff, 0xff, 0xff, 0x40, 0x40, 0x40, 0x40,
            ], // count lie
            &[0xc0, 0],                      // size smaller than count field
            &[0xc1, 2, 1, 0x40],             // odd map
            &[0xa1, 1, 0xff],                // invalid UTF-8
            &[0x56, 2],                      // bad boolean
            &[0x30],                         // unknown constructor
            &[0x00, 0x53],                   // described without value
        ];
        for case in cases {
            assert!(Value::decode(case).is_err(), "{case:02x?} should fail");
        }
        // Deep nesting is refused.
        let mut deep = Vec::new();
        for _ in 0..100 {
            deep.extend_from_slice(&[0x00, 0x53, 0x01]);
        }
        deep.push(0x40);
        assert_eq!(Value::decode(&deep), Err(CodecError::TooDeep));
    }

    /// An array32 of `count` elements whose element constructor is a described null: no
    /// element takes a byte, and each repeats the descriptor, a list of `descriptor_nulls`
    /// nulls. Padding makes the array's size at least its count, as the decoder requires.
    fn zero_width_described_array(descriptor_nulls: u32, count: u32) -> Vec<u8> {
        let mut body = count.to_be_bytes().to_vec();
        body.push(0x00);
        body.push(0xd0);
        body.extend_from_slice(&(descriptor_nulls + 4).to_be_bytes());
        body.extend_from_slice(&descriptor_nulls.to_be_bytes());
        body.extend(std::iter::repeat_n(0x40, descriptor_nulls as usize));
        body.push(0x40); // the element constructor: null, zero bytes per element
        if body.len() < count as usize {
            body.resize(count as usize, 0);
        }
        let mut out = vec![0xf0];
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn a_described_array_of_zero_width_elements_cannot_amplify_memory() {
        // 8 KB that used to decode into 8000 copies of a 500-value list (~130 MB).
        let buf = zero_width_described_array(500, 8000);
        assert!(buf.len() < 8100);
        let err = Value::decode(&buf).unwrap_err();
        assert!(matches!(err, CodecError::TooLarge { .. }), "{err}");
        assert!(err.to_string().contains("at most"), "{err}");
        // Zero-width elements without a descriptor cost one slot each, and the count cannot
        // exceed the array's size: still decoded.
        let nulls = [0xe0, 255, 255, 0x40];
        let mut padded = nulls.to_vec();
        padded.resize(2 + 255, 0);
        let (v, _) = Value::decode(&padded).unwrap();
        assert_eq!(v, Value::Array(vec![Value::Null; 255]));
        // A few described zero-width elements are still fine (the slack covers them).
        let (v, _) = Value::decode(&zero_width_described_array(3, 100)).unwrap();
        assert!(matches!(v, Value::Array(items) if items.len() == 100));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic fuzz: every prefix and many byte flips of a real frame body.
        let sample = Value::described(
            0x12,
            vec![
                Value::string("link"),
                Value::Uint(1),
                Value::Bool(true),
                Value::Map(vec![(
                    Value::symbol("x-opt"),
                    Value::Array(vec![Value::Long(3)]),
                )]),
            ],
        )
        .to_bytes();
        for end in 0..sample.len() {
            let _ = Value::decode(&sample[..end]);
        }
        let mut state = 0x2545_f491_u32;
        for _ in 0..20_000 {
            let mut bytes = sample.clone();
            for _ in 0..3 {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                let i = state as usize % bytes.len();
                bytes[i] = (state >> 8) as u8;
            }
            let _ = Value::decode(&bytes);
        }
    }
}
