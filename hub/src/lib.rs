//! An Event Hubs-compatible AMQP 1.0 endpoint with durable partitions.
//!
//! # Layout
//! - [`amqp`]: the AMQP 1.0 codec, frames, performatives and messages (owned encoding, complete
//!   field lists for the Python SDK).
//! - [`config`]: the endpoint's TOML configuration.
//! - [`sas`]: shared access signature tokens.
//!
//! The server (connections, sessions, links, `$cbs`, `$management`) and storage land next; see
//! the README of this crate.

pub mod amqp;
pub mod config;
pub mod sas;
