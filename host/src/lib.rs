//! hubwasm: consume Azure Event Hubs partitions with sandboxed WebAssembly component plugins,
//! moving a partition's checkpoint only past events the plugin handled successfully.
//!
//! # Layout
//! - [`backoff`]: the one exponential backoff every retry loop uses.
//! - [`event`]: the host's event and partition-context types, free of wasmtime and the SDK.
//! - [`plugin`]: the plugin runtime (the only module that touches wasmtime): engine, cache,
//!   limits, sandbox, instances, hot swap.
//! - [`replay`]: the offline replay harness behind `hubwasm plugin test`.
//! - [`send`]: `hubwasm send`, the seed's producer through the official Rust SDK.
//! - [`cli`]: the `hubwasm` command line.

pub mod backoff;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod connection;
pub mod event;
pub mod plugin;
pub mod processor;
pub mod replay;
pub mod send;
pub mod status;
