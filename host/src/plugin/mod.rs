//! The plugin runtime: the only module that touches wasmtime.
//!
//! - [`Runtime`]: one engine for every plugin (compiler, pooling allocator, epoch ticker) and the
//!   compiled-component cache.
//! - [`Plugin`]: a compiled, linked, validated component, loaded from a [`PluginSpec`].
//! - [`PluginHandle`]: the plugin serving a job, swappable while the stream flows.
//! - [`Worker`]: calls a plugin through a reused instance; replaces it after a trap.
//!
//! Errors: [`LoadError`] when a file cannot become a plugin, [`PluginError`] when a call fails
//! (trap, timeout, memory, or the plugin's own retryable/rejected verdict), [`BatchFailure`] to
//! say how far a batch got.

mod bindings;
mod cache;
mod contract;
mod effects;
mod encode;
mod error;
pub mod http;
mod inspect;
mod instance;
mod limits;
mod loaded;
mod runtime;
mod sandbox;
mod worker;

pub use cache::ComponentCache;
pub use error::{
    BatchFailure, FailureKind, LoadError, PluginError, CONTRACT_VERSION, CONTRACT_VERSIONS,
};
pub use inspect::{check_header, ComponentInfo, PluginKind};
pub use limits::Limits;
pub use loaded::Plugin;
pub use runtime::{sha256_hex, PluginSpec, Runtime, RuntimeOptions};
pub use worker::{CloseReason, PluginHandle, Probation, Worker};
