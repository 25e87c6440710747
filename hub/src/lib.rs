//! An Event Hubs-compatible AMQP 1.0 endpoint with durable partitions.
//!
//! # Layout
//! - [`amqp`]: the AMQP 1.0 codec, frames, performatives and messages (owned encoding, complete
//!   field lists for the Python SDK).
//! - [`config`]: the endpoint's TOML configuration.
//! - [`sas`]: shared access signature tokens.
//! - [`storage`]: one durable segment log per partition.
//! - [`server`]: the listener and connections (sessions, links, `$cbs`, `$management`).

pub mod amqp;
pub mod config;
pub mod sas;
pub mod server;
pub mod storage;

pub use config::HubConfig;
pub use server::{start, RunningHub, StartError};
