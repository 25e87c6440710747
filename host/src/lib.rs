//! hubwasm: consume Azure Event Hubs partitions with sandboxed WebAssembly component plugins,
//! moving a partition's checkpoint only past events the plugin handled successfully.
//!
//! # Layout
//! - [`artifact`]: a plugin version as it travels: bytes and digest, kept in the group's store.
//! - [`azure_blob`]: one Blob container: auth, SAS signing, retries, timeouts, redaction.
//! - [`backoff`]: the one exponential backoff every retry loop uses.
//! - [`errors`]: an error chain as one readable line.
//! - [`event`]: the host's event and partition-context types, free of wasmtime and the SDK.
//! - [`files`]: reading a file a config, the CLI or a caller names: regular files only,
//!   bounded, confined to configured directories.
//! - [`plugin`]: the plugin runtime (the only module that touches wasmtime): engine, cache,
//!   limits, sandbox, instances, hot swap.
//! - [`registry`]: plugins in OCI registries: pull (bounded, pinned by digest, cached), push.
//! - [`replay`]: the offline replay harness behind `hubwasm plugin test`.
//! - [`sink`]: where events leave the host: dead-letter sinks (directory, blob, event hub).
//! - [`send`]: `hubwasm send`, the seed's producer through the official Rust SDK.
//! - [`cli`]: the `hubwasm` command line.

pub mod admin;
pub mod artifact;
pub mod authoring;
pub mod azure_blob;
pub mod backoff;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod connection;
pub mod effects;
pub mod errors;
pub mod event;
pub mod files;
pub mod host;
pub mod metrics;
pub mod plugin;
pub mod processor;
pub mod registry;
pub mod replay;
pub mod send;
pub mod sink;
pub mod status;
pub mod tenant;
