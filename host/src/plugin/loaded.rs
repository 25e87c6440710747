//! A loaded plugin: compiled, linked and validated, with its limits, grants and spare
//! instances; what the runtime makes and instances are made from.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::InstancePre;
use wasmtime::{Engine, Store};

use super::contract::{self, Exports};
use super::inspect::{ComponentInfo, PluginKind};
use super::limits::Limits;
use super::sandbox::HostState;

/// How often the epoch advances. Call timeouts are enforced with this granularity, so a runaway
/// call is stopped at most one tick after its limit.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// A compiled, linked and validated plugin. Instances are created from it cheaply.
pub struct Plugin {
    pub(crate) name: Arc<str>,
    pub(crate) path: PathBuf,
    pub(crate) info: ComponentInfo,
    pub(crate) limits: Limits,
    pub(crate) config: Vec<(String, String)>,
    pub(crate) memory_peak: Option<Arc<AtomicU64>>,
    /// What outbound HTTP its instances may do.
    pub(crate) http: super::http::HttpPolicy,
    pub(crate) engine: Engine,
    /// The runtime's tick counter ([`EPOCH_TICK`] each), for wall-clock call bounds.
    pub(crate) ticks: Arc<AtomicU64>,
    pub(crate) fuel_enabled: bool,
    pub(crate) deadlines_enabled: bool,
    pub(crate) pre: InstancePre<HostState>,
    /// The exports, type-checked against the component's contract version.
    pub(crate) exports: contract::Indices,
    /// Whether the compiled code came from the on-disk cache.
    pub(crate) from_cache: bool,
    /// The component's whole SHA-256 (hex): the name it is stored under in the group's store.
    pub(crate) sha256: String,
    /// The component's bytes: what a swap stores for the group's other hosts.
    pub(crate) bytes: Arc<[u8]>,
    pub(crate) compile_time: Duration,
    /// The instance `load` checked the plugin with, until the first worker takes it.
    /// Instances made ahead (instantiated and `init`ed) for the next workers: `load` leaves
    /// its trial instance here, and a swap prepares one per partition it will take over.
    pub(crate) spare: std::sync::Mutex<Vec<Spare>>,
}

impl Plugin {
    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The component file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// World, contract version, imports and exports.
    pub fn info(&self) -> &ComponentInfo {
        &self.info
    }
    /// Per-event or per-batch.
    pub fn kind(&self) -> PluginKind {
        self.info.kind
    }
    /// Its limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
    /// True if the compiled code was loaded from the on-disk cache.
    /// First 12 hex digits of the component file's SHA-256 (its version in dead letters).
    pub fn digest(&self) -> &str {
        &self.sha256[..12]
    }
    /// The component's whole SHA-256, hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
    /// The component's bytes.
    pub fn bytes(&self) -> &Arc<[u8]> {
        &self.bytes
    }

    pub fn from_cache(&self) -> bool {
        self.from_cache
    }
    /// Time spent compiling or loading the compiled code.
    pub fn compile_time(&self) -> Duration {
        self.compile_time
    }
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("kind", &self.info.kind)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// The instance `load` made and `init`ed to check the plugin: kept for the first worker, so a
/// (re)started host does not instantiate and `init` twice before its first event.
pub(crate) struct Spare {
    pub(crate) store: Store<HostState>,
    pub(crate) exports: Exports,
}

/// Epoch ticks that cover `timeout`, plus one because the current tick may be almost over.
pub(crate) fn ticks(timeout: Duration) -> u64 {
    (timeout.as_nanos() / EPOCH_TICK.as_nanos()) as u64 + 1
}
