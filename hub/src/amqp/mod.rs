//! AMQP 1.0, owned end to end: the type codec, framing, performatives and message sections.
//!
//! hubwasm writes its own encoder rather than reuse a client library's, because the official
//! Python SDK only understands frames whose field lists are complete (see [`performative`]).

pub mod codec;
pub mod frame;
pub mod message;
pub mod performative;

pub use codec::{CodecError, Value};
