//! Errors of the plugin runtime, split so callers can branch on them: a plugin that cannot be
//! loaded ([`LoadError`]) versus a call that failed ([`PluginError`]), and within a failed call,
//! a trap or limit (the host's verdict) versus an error the plugin returned itself.

use std::path::PathBuf;
use std::time::Duration;

pub use super::contract::{CONTRACT_VERSION, CONTRACT_VERSIONS};

/// `0.2.0` -> `0.2`: the folder of a contract version under `wit/`.
fn short_version(version: &str) -> &str {
    version.rsplit_once('.').map_or(version, |(head, _)| head)
}

/// A plugin file could not be turned into a runnable plugin. Nothing was called.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read (missing, not a regular file, over the size bound, outside
    /// the allowed directories).
    #[error("cannot load plugin {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: crate::files::FileError,
    },
    /// The file is not WebAssembly at all. (What it holds is never quoted: it may be a secret.)
    #[error(
        "{path} is not a WebAssembly file ({found}); expected a WebAssembly \
         component built for wasm32-wasip2 that implements hubwasm:plugin@{CONTRACT_VERSION} (or 0.1.0)"
    )]
    NotWasm { path: PathBuf, found: String },
    /// The file is a core module, not a component.
    #[error(
        "{path} is a core WebAssembly module, not a component; build it for the wasm32-wasip2 \
         target (or wrap it with `wasm-tools component new`) so that it implements the \
         hubwasm:plugin@{CONTRACT_VERSION} (or 0.1.0) world `batch-plugin` or `event-plugin`"
    )]
    CoreModule { path: PathBuf },
    /// A component that implements neither plugin world.
    #[error(
        "{path} does not implement a hubwasm plugin world: expected the exports \
         `hubwasm:plugin/lifecycle@V` and `hubwasm:plugin/batch-handler@V` (world \
         `batch-plugin`) or `hubwasm:plugin/event-handler@V` (world `event-plugin`), for V \
         {CONTRACT_VERSION} or 0.1.0; found exports: {found}"
    )]
    WrongWorld { path: PathBuf, found: String },
    /// A plugin built against another version of the contract.
    #[error(
        "{path} was built against contract hubwasm:plugin@{found}, but this host speaks \
         hubwasm:plugin@{expected}; rebuild the plugin against a version in the wit/ folder \
         of this hubwasm"
    )]
    WrongContractVersion {
        path: PathBuf,
        expected: String,
        found: String,
    },
    /// The export names match but their types do not (an edited copy of the WIT).
    #[error(
        "{path} exports `{export}` with types that differ from hubwasm:plugin@{version}: \
         {detail}; rebuild the plugin against wit/v{short}/ of this hubwasm", short = short_version(version)
    )]
    ContractMismatch {
        path: PathBuf,
        export: String,
        version: String,
        detail: String,
    },
    /// The component imports something the sandbox does not provide.
    #[error(
        "{path} imports something hubwasm does not provide (plugins may import WASI 0.2 and \
         hubwasm:plugin/log): {detail}"
    )]
    UnsupportedImport { path: PathBuf, detail: String },
    /// Compilation failed (invalid or unsupported WebAssembly).
    #[error("cannot compile {path}: {detail}")]
    Compile { path: PathBuf, detail: String },
    /// The plugin's `init` refused its configuration.
    #[error(
        "plugin `{plugin}` ({path}) refused to start: {message}; fix its configuration \
         (`plugin_config` in the config file, or --plugin-config / --config)"
    )]
    InitRefused {
        path: PathBuf,
        plugin: String,
        message: String,
    },
    /// The plugin's `init` trapped, ran out of time or memory.
    #[error("{path} failed in `init`: {detail}")]
    InitFailed { path: PathBuf, detail: String },
    /// The wasmtime engine could not be configured.
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),
}

/// A call into a plugin did not succeed.
///
/// The first group is decided by the host (trap, timeout, limits); the second is the plugin's own
/// verdict. Every variant names the plugin.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PluginError {
    /// The plugin trapped (panic, unreachable, out-of-bounds access, ...). Its instance was
    /// discarded; the next call runs on a fresh one.
    #[error(
        "plugin `{plugin}` trapped: {message}{}",
        fmt_details(stderr, backtrace)
    )]
    Trapped {
        plugin: String,
        message: String,
        /// The last lines the plugin wrote to stderr (a Rust panic message lands there).
        stderr: String,
        /// A few innermost wasm frames.
        backtrace: String,
    },
    /// A call ran longer than the plugin's time limit and was interrupted.
    #[error("plugin `{plugin}` timed out: a call ran longer than its limit of {timeout:?}")]
    TimedOut { plugin: String, timeout: Duration },
    /// The plugin tried to grow its memory past its limit.
    #[error(
        "plugin `{plugin}` exceeded its memory limit of {limit} bytes (it asked for {requested} \
         bytes); raise the plugin's memory limit or make it use less"
    )]
    MemoryLimit {
        plugin: String,
        limit: u64,
        requested: u64,
    },
    /// The plugin used up its fuel (instruction budget) for one call.
    #[error("plugin `{plugin}` ran out of fuel ({fuel} units per call)")]
    OutOfFuel { plugin: String, fuel: u64 },
    /// The plugin reported a transient failure; the event may succeed later.
    #[error("plugin `{plugin}` returned a retryable error: {message}")]
    Retryable {
        plugin: String,
        message: String,
        retry_after: Option<Duration>,
    },
    /// The plugin rejected the event as bad (poison); retrying will not help.
    #[error("plugin `{plugin}` rejected the event: {message}")]
    Rejected { plugin: String, message: String },
    /// The plugin returned something the contract does not allow (e.g. an index outside the batch).
    #[error("plugin `{plugin}` returned a malformed verdict: {detail}")]
    MalformedVerdict { plugin: String, detail: String },
    /// The plugin's `init` refused its configuration.
    #[error("plugin `{plugin}` refused to start: {message}")]
    InitFailed { plugin: String, message: String },
    /// A fresh instance could not be created (e.g. the instance pool is exhausted).
    #[error("plugin `{plugin}` could not be instantiated: {detail}")]
    Instantiate { plugin: String, detail: String },
    /// The plugin used an effect the deployment does not provide (an output, state or dedupe
    /// store not configured) or whose store does not answer: not the event's fault; the
    /// partition pauses before it.
    #[error("plugin `{plugin}`: {message}")]
    EffectUnavailable { plugin: String, message: String },
}

fn fmt_details(stderr: &str, backtrace: &str) -> String {
    let mut out = String::new();
    if !stderr.is_empty() {
        out.push_str("\n  plugin stderr: ");
        out.push_str(&stderr.replace('\n', "\n    "));
    }
    if !backtrace.is_empty() {
        out.push_str("\n  wasm backtrace:\n");
        out.push_str(backtrace);
    }
    out
}

/// What a failure means for the event, independent of the plugin: the processor's failure policy
/// branches on this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Transient: retry the same event later.
    Retryable,
    /// The event is bad: retrying will not help.
    Rejected,
    /// The plugin misbehaved (trap, timeout, limit, malformed verdict): retry, then follow policy.
    Crashed,
    /// The plugin cannot run at all (init refused, cannot instantiate).
    Unavailable,
}

impl PluginError {
    /// The plugin's name.
    pub fn plugin(&self) -> &str {
        match self {
            Self::Trapped { plugin, .. }
            | Self::TimedOut { plugin, .. }
            | Self::MemoryLimit { plugin, .. }
            | Self::OutOfFuel { plugin, .. }
            | Self::Retryable { plugin, .. }
            | Self::Rejected { plugin, .. }
            | Self::MalformedVerdict { plugin, .. }
            | Self::InitFailed { plugin, .. }
            | Self::Instantiate { plugin, .. }
            | Self::EffectUnavailable { plugin, .. } => plugin,
        }
    }

    /// How the failure should be treated.
    pub fn kind(&self) -> FailureKind {
        match self {
            Self::Retryable { .. } => FailureKind::Retryable,
            Self::Rejected { .. } => FailureKind::Rejected,
            Self::Trapped { .. }
            | Self::TimedOut { .. }
            | Self::MemoryLimit { .. }
            | Self::OutOfFuel { .. }
            | Self::MalformedVerdict { .. } => FailureKind::Crashed,
            Self::InitFailed { .. } | Self::Instantiate { .. } | Self::EffectUnavailable { .. } => {
                FailureKind::Unavailable
            }
        }
    }

    /// A short label for summaries and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Trapped { .. } => "trapped",
            Self::TimedOut { .. } => "timed-out",
            Self::MemoryLimit { .. } => "memory-limit",
            Self::OutOfFuel { .. } => "out-of-fuel",
            Self::Retryable { .. } => "retryable",
            Self::Rejected { .. } => "rejected",
            Self::MalformedVerdict { .. } => "malformed-verdict",
            Self::InitFailed { .. } => "init-failed",
            Self::Instantiate { .. } => "instantiate-failed",
            Self::EffectUnavailable { .. } => "effect-unavailable",
        }
    }
}

/// A batch that did not fully succeed: the first `handled` events succeeded, then `error` stopped
/// it. Events after `handled` must be delivered again; a checkpoint may move past `handled - 1`
/// only.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{error} (after {handled} handled events of the batch)")]
pub struct BatchFailure {
    /// How many events at the start of the batch were handled successfully.
    pub handled: usize,
    /// Why the batch stopped there.
    pub error: PluginError,
}
