//! Why a host could not start, and why a swap did not happen.

use crate::connection::ConnectionError;
use crate::plugin::LoadError;

/// Why the host could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start the embedded Event Hubs endpoint: {0}")]
    Embedded(String),
    #[error("checkpoint store: {0}")]
    Store(String),
    #[error("plugin for event hub `{hub}`: {source}")]
    Plugin {
        hub: String,
        #[source]
        source: LoadError,
    },
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// A setting that could only be checked at start (a secret that went missing).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// Why a swap did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    #[error("no consumed event hub `{event_hub}`{}; this host consumes: {known}", group.as_ref().map(|g| format!(" with consumer group `{g}`")).unwrap_or_default())]
    UnknownHub {
        event_hub: String,
        group: Option<String>,
        known: String,
    },
    #[error(
        "event hub `{event_hub}` is consumed with several consumer groups ({groups}); name one"
    )]
    AmbiguousGroup { event_hub: String, groups: String },
    #[error("partition {partition} of `{event_hub}` is not halted on this host ({state}); resume it on the host that owns it (see /status)")]
    NotHalted {
        event_hub: String,
        partition: String,
        state: String,
    },
    #[error("event hub `{event_hub}` has no earlier version to roll back to (no swap since start, or already rolled back)")]
    NothingToRollBack { event_hub: String },
    /// The new version failed on the sample events it must handle before a swap.
    #[error("refused {path}: it failed {failed} of the {events} sample events in {replay}: {detail}; the running version is unchanged")]
    ReplayFailed {
        path: String,
        replay: String,
        events: usize,
        failed: usize,
        detail: String,
    },
    #[error("refused {path}: cannot replay the sample events {replay}: {message}; the running version is unchanged")]
    ReplayUnavailable {
        path: String,
        replay: String,
        message: String,
    },
    /// The group's store did not take the new component, so the group's other hosts could not
    /// follow: nothing changed.
    #[error("refused {path}: the consumer group's store did not keep the component ({message}); the running version is unchanged; try again once the store answers")]
    StoreUnavailable { path: String, message: String },
    /// The new version failed validation (unreadable, wrong world or contract, `init` refused);
    /// the old version keeps running.
    #[error("refused {path}: {source}; the running version is unchanged")]
    Refused {
        path: String,
        #[source]
        source: LoadError,
    },
}
