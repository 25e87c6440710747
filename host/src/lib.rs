//! hubwasm: consume Azure Event Hubs partitions with sandboxed WebAssembly component plugins,
//! moving a partition's checkpoint only past events the plugin handled successfully.
//!
//! # Layout, in the order an event travels
//! - [`config`]: `hubwasm.toml` parsed once into types (addresses, durations, enums, origins,
//!   dedupe keys); every cross-field rule in `config/validate.rs`.
//! - [`host`]: the running host: `Host::start` wires every event hub (plugin, sinks, stores,
//!   outputs), then consumes; hot swap, rollback, following the group's version, positions.
//! - [`connection`]: connection strings, Entra credentials, the SDK clients they open.
//! - [`processor`]: consuming: the SDK supervisor, the reader thread (SDK events become
//!   [`event::Event`]s), a partition's serve loop, one batch's step, the fence and the
//!   checkpoint writer.
//! - [`tenant`]: admission of every plugin call (limits, rate, storms) and usage.
//! - [`effects`]: dedupe claims, partition state and emitted events, committed before the
//!   checkpoint.
//! - [`plugin`]: the plugin runtime (the only module that touches wasmtime): engine, cache,
//!   limits, sandbox, instances, hot swap.
//! - [`checkpoint`]: checkpoint stores (Blob in the official layout, local), retry state and the
//!   group's plugin versions.
//! - [`sink`]: where failed events leave the host: dead-letter sinks (directory, blob, event hub).
//! - [`metrics`]: counters as typed events with labels (summary line, Prometheus).
//! - [`admin`], [`status`]: the admin API (status, metrics, swap) and `hubwasm status`.
//! - [`artifact`], [`registry`], [`files`]: a plugin version as it travels (bytes and digest),
//!   OCI registries, and reading any file a caller names (regular, bounded, confined).
//! - [`azure_blob`], [`backoff`], [`errors`], [`event`]: one Blob container's access, the one
//!   backoff, an error chain as one line, the host's event types.
//! - [`replay`], [`send`], [`authoring`], [`cli`]: `plugin test`, `hubwasm send`, `plugin
//!   new|build`, and the command line.

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
pub mod shutdown;
pub mod sink;
pub mod status;
pub mod tenant;
