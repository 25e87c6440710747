//! The engine shared by every plugin, and loading a plugin file into a ready-to-instantiate
//! [`Plugin`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::bindings::{v0_1, v0_2};
use super::cache::ComponentCache;
use super::contract;
use super::error::LoadError;
use super::inspect::{self, ComponentInfo};
use super::limits::Limits;
use super::loaded::{Plugin, Spare, EPOCH_TICK};
use super::sandbox::HostState;

/// Settings of the [`Runtime`], fixed for its lifetime.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Enable fuel metering (needed by any plugin with [`Limits::fuel`]); costs some speed.
    pub fuel: bool,
    /// Upper bound for any plugin's memory limit (sizes the pooling allocator's slots).
    pub max_memory_bytes: u64,
    /// How many plugin instances may exist at once (pool size).
    pub max_instances: u32,
    /// Enforce [`Limits::timeout`] with epoch interruption. The check it compiles into every
    /// loop and function entry costs plugin code about a quarter of its speed (see
    /// BENCHMARKS.md); turn it off only for trusted plugins that must run at full speed.
    pub call_deadlines: bool,
    /// The most bytes a component file may have; a larger one is refused unread.
    pub max_component_bytes: u64,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            cache_dir: ComponentCache::default_dir(),
            fuel: false,
            max_memory_bytes: 1 << 30,
            max_instances: 256,
            call_deadlines: true,
            max_component_bytes: crate::files::DEFAULT_MAX_COMPONENT_BYTES,
        }
    }
}

/// Everything needed to load one plugin.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    /// Name used in logs and errors (e.g. the tenant's plugin name).
    pub name: String,
    /// Path of the component file, or where its bytes came from (an upload, a registry) when
    /// `bytes` holds them.
    pub path: PathBuf,
    /// The component itself, when it did not come from a file of this host (an upload, the
    /// group's store, a registry); `None`: read `path`.
    pub bytes: Option<Arc<[u8]>>,
    pub limits: Limits,
    /// Passed to the plugin's `init`.
    pub config: Vec<(String, String)>,
    /// Where the largest memory any instance of the plugin grew to is kept (bytes), if
    /// someone watches it (the tenant's usage).
    pub memory_peak: Option<Arc<AtomicU64>>,
    /// Origins the plugin may reach with outbound HTTP; none by default.
    pub allowed_outbound_hosts: Vec<super::http::Origin>,
}

impl PluginSpec {
    /// A spec with default limits, no config, named after the file.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "plugin".into());
        Self {
            name,
            path,
            bytes: None,
            limits: Limits::default(),
            config: Vec::new(),
            memory_peak: None,
            allowed_outbound_hosts: Vec::new(),
        }
    }

    /// A spec for a component held in memory; `origin` says where it came from (logs, status).
    pub fn from_bytes(name: &str, origin: impl Into<PathBuf>, bytes: Arc<[u8]>) -> Self {
        let mut spec = Self::new(origin);
        spec.name = crate::files::safe_name(name);
        spec.bytes = Some(bytes);
        spec
    }
}

/// One wasmtime engine (compiler, instance pool, epoch ticker) shared by all plugins, so many
/// tenants' plugins with different limits run side by side.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    /// Epoch ticks since the engine started: a clock that costs an atomic load to read.
    ticks: Arc<AtomicU64>,
    linker: Arc<Linker<HostState>>,
    cache: Option<ComponentCache>,
    options: RuntimeOptions,
}

impl Runtime {
    /// Build the engine and start its epoch ticker.
    pub fn new(options: RuntimeOptions) -> Result<Self, LoadError> {
        let mut pool = PoolingAllocationConfig::default();
        let instances = options.max_instances.max(1);
        pool.total_component_instances(instances)
            // Interpreted-language components (Python, JS) hold several core instances,
            // memories and tables each.
            .total_core_instances(instances * 8)
            .total_memories(instances * 2)
            .total_tables(instances * 8)
            .total_stacks(instances)
            .max_memories_per_component(4)
            .max_tables_per_component(16)
            .max_memory_size(options.max_memory_bytes as usize);

        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(options.call_deadlines)
            .consume_fuel(options.fuel)
            .table_lazy_init(false)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        // For profiling plugins with `perf`: names compiled wasm functions in /tmp/perf-PID.map.
        if std::env::var_os("HUBWASM_PERFMAP").is_some_and(|v| v == "1") {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config).map_err(|e| LoadError::Engine(format!("{e:#}")))?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        // Both contract versions' imports: a 0.1.0 and a 0.2.0 plugin link against one linker.
        v0_1::PluginHost::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        v0_2::PluginHost::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        // Outbound HTTP: linked for every plugin, refused per request unless allowed.
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| LoadError::Engine(format!("{e:#}")))?;

        let ticks = Arc::new(AtomicU64::new(0));
        spawn_epoch_ticker(&engine, ticks.clone());
        let cache = options.cache_dir.clone().map(ComponentCache::new);
        Ok(Self {
            engine,
            ticks,
            linker: Arc::new(linker),
            cache,
            options,
        })
    }

    /// The options it was built with.
    pub fn options(&self) -> &RuntimeOptions {
        &self.options
    }

    /// Compile (or load from cache) and validate a plugin without running any of its code.
    pub fn inspect(&self, path: &Path) -> Result<ComponentInfo, LoadError> {
        let bytes = self.read_component(path)?;
        let compiled = self.compile(path, bytes)?;
        inspect::describe(path, &self.engine, &compiled.component)
    }

    /// A component file's bytes: a regular file, at most `max_component_bytes` of it.
    pub fn read_component(&self, path: &Path) -> Result<Arc<[u8]>, LoadError> {
        crate::files::read(
            path,
            crate::files::Bound::component(self.options.max_component_bytes),
        )
        .map(Arc::from)
        .map_err(|source| LoadError::Read {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Load a plugin: compile or fetch from cache, check world and contract, link, and try one
    /// instantiation so a broken plugin is refused here rather than on the first event.
    /// Compilation runs on a blocking thread.
    pub async fn load(&self, spec: PluginSpec) -> Result<Plugin, LoadError> {
        let this = self.clone();
        let path = spec.path.clone();
        let plugin = tokio::task::spawn_blocking(move || this.prepare(spec))
            .await
            .map_err(|e| LoadError::Compile {
                path,
                detail: e.to_string(),
            })??;
        self.trial_instantiate(&plugin).await?;
        Ok(plugin)
    }

    fn compile(&self, path: &Path, bytes: Arc<[u8]>) -> Result<Compiled, LoadError> {
        let bound = crate::files::Bound::component(self.options.max_component_bytes);
        if bytes.len() as u64 > bound.limit {
            return Err(LoadError::Read {
                path: path.to_path_buf(),
                source: bound.too_large(path),
            });
        }
        inspect::check_header(path, &bytes)?;
        let sha256 = sha256_hex(&bytes);
        let started = Instant::now();
        if let Some(component) = self
            .cache
            .as_ref()
            .and_then(|c| c.load(&self.engine, &bytes))
        {
            return Ok(Compiled {
                component,
                from_cache: true,
                took: started.elapsed(),
                sha256,
                bytes,
            });
        }
        let component =
            Component::from_binary(&self.engine, &bytes).map_err(|e| LoadError::Compile {
                path: path.to_path_buf(),
                detail: format!("{e:#}"),
            })?;
        let took = started.elapsed();
        if let Some(cache) = &self.cache {
            cache.store(&self.engine, &bytes, &component);
        }
        Ok(Compiled {
            component,
            from_cache: false,
            took,
            sha256,
            bytes,
        })
    }

    fn prepare(&self, spec: PluginSpec) -> Result<Plugin, LoadError> {
        let path = spec.path.clone();
        if spec.limits.fuel.is_some() && !self.options.fuel {
            return Err(LoadError::Engine(format!(
                "plugin `{}` sets a fuel limit but the runtime was started without fuel metering",
                spec.name
            )));
        }
        if !self.options.call_deadlines {
            tracing::warn!(plugin = %spec.name, "Call deadlines are off: a plugin that never returns blocks its partition");
        }
        if spec.limits.memory_bytes > self.options.max_memory_bytes {
            return Err(LoadError::Engine(format!(
                "plugin `{}` asks for a memory limit of {} bytes; this host allows at most {}",
                spec.name, spec.limits.memory_bytes, self.options.max_memory_bytes
            )));
        }
        let bytes = match spec.bytes {
            Some(bytes) => bytes,
            None => self.read_component(&path)?,
        };
        let Compiled {
            component,
            from_cache,
            took: compile_time,
            sha256,
            bytes,
        } = self.compile(&path, bytes)?;
        let info = inspect::describe(&path, &self.engine, &component)?;
        let pre =
            self.linker
                .instantiate_pre(&component)
                .map_err(|e| LoadError::UnsupportedImport {
                    path: path.clone(),
                    detail: format!("{e:#}"),
                })?;
        let exports = contract::Indices::new(&pre, &info.contract_version, info.kind).map_err(
            |(export, e)| LoadError::ContractMismatch {
                path: path.clone(),
                export: inspect::export_name(export, &info.contract_version),
                version: info.contract_version.clone(),
                detail: format!("{e:#}"),
            },
        )?;
        tracing::debug!(
            plugin = %spec.name,
            path = %path.display(),
            world = %info.kind,
            from_cache,
            compile_ms = compile_time.as_millis() as u64,
            "Plugin compiled"
        );
        let name: Arc<str> = spec.name.into();
        Ok(Plugin {
            name: name.clone(),
            path,
            info,
            limits: spec.limits,
            config: spec.config,
            memory_peak: spec.memory_peak,
            http: super::http::HttpPolicy {
                plugin: name.clone(),
                allowed: spec.allowed_outbound_hosts.into(),
                timeout: spec.limits.timeout,
            },
            engine: self.engine.clone(),
            ticks: self.ticks.clone(),
            fuel_enabled: self.options.fuel,
            deadlines_enabled: self.options.call_deadlines,
            pre,
            exports,
            from_cache,
            sha256,
            bytes,
            compile_time,
            spare: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Instantiate once, type-check the exports and call `init` with the plugin's config: a
    /// plugin whose export types differ from the contract, or that refuses its config, traps or
    /// hangs in `init`, fails here, before the host claims any partition for it.
    async fn trial_instantiate(&self, plugin: &Plugin) -> Result<(), LoadError> {
        let spare = Self::make_spare(plugin).await?;
        plugin
            .spare
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(spare);
        Ok(())
    }

    /// Prepare instances of `plugin` until it holds `count` ready ones (instantiated and
    /// `init`ed), so the workers that switch to it next (a hot swap) only announce their
    /// partition instead of instantiating in the stream's path. Best effort: a worker that
    /// finds none makes its own.
    pub async fn prepare_spares(&self, plugin: &Plugin, count: usize) {
        loop {
            let have = plugin.spare.lock().unwrap_or_else(|e| e.into_inner()).len();
            if have >= count {
                return;
            }
            match Self::make_spare(plugin).await {
                Ok(spare) => plugin
                    .spare
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(spare),
                Err(_) => return,
            }
        }
    }

    async fn make_spare(plugin: &Plugin) -> Result<Spare, LoadError> {
        let mut store = super::instance::new_store(plugin);
        let instance = plugin
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| LoadError::Compile {
                path: plugin.path.clone(),
                detail: format!("instantiation failed: {e:#}"),
            })?;
        let exports = plugin
            .exports
            .load(&mut store, &instance)
            .map_err(|(export, e)| LoadError::ContractMismatch {
                path: plugin.path.clone(),
                export: inspect::export_name(export, &plugin.info.contract_version),
                version: plugin.info.contract_version.clone(),
                detail: format!("{e:#}"),
            })?;
        let limit = super::instance::init_limit(plugin);
        let init = super::instance::bounded(
            limit,
            &plugin.ticks,
            exports.init(&mut store, &plugin.config),
        );
        match init.await {
            Ok(Ok(())) => Ok(Spare { store, exports }),
            Ok(Err(message)) => Err(LoadError::InitRefused {
                path: plugin.path.clone(),
                plugin: plugin.name.to_string(),
                message,
            }),
            Err(err) => {
                let cause = super::instance::classify(plugin, store.data_mut(), err);
                Err(LoadError::InitFailed {
                    path: plugin.path.clone(),
                    detail: cause.to_string(),
                })
            }
        }
    }
}

/// A component compiled (or loaded from the cache) with what identifies it.
struct Compiled {
    component: Component,
    from_cache: bool,
    took: Duration,
    sha256: String,
    bytes: Arc<[u8]>,
}

/// The SHA-256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Advance the engine's epoch (and `ticks`) every [`EPOCH_TICK`] until the engine is dropped.
fn spawn_epoch_ticker(engine: &Engine, ticks: Arc<AtomicU64>) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("hubwasm-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(EPOCH_TICK);
            match weak.upgrade() {
                Some(engine) => {
                    engine.increment_epoch();
                    ticks.fetch_add(1, Ordering::Relaxed);
                }
                None => break,
            }
        })
        .expect("spawn epoch ticker thread");
}
