//! The running host: [`Host::start`] sets everything up and claims partitions;
//! [`Host::handle`] gives the live view and the controls (hot swap) to the admin API and to
//! embedders; [`Host::wait`] drives the summary line, the idle exit and the shutdown; [`run`]
//! is start + wait.
//!
//! - `wiring.rs`: everything one event hub needs, built before anything is claimed.
//! - `swap.rs`: hot swap, rollback, resume.
//! - `follow.rs`: following the group's version, file watch, automatic rollback.
//! - `positions.rs`: positions, lag, the counters' history, caught up.
//! - `error.rs`: [`RunError`], [`SwapError`].

mod error;
mod follow;
pub(crate) mod positions;
mod swap;
mod wiring;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::task::JoinHandle;

pub use error::{RunError, SwapError};
pub use positions::{PartitionPosition, Sample};
pub use swap::{PluginVersion, SwapRecord};
pub use wiring::open_store;

use crate::checkpoint::Store;
use crate::config::{EventHubAddress, EventHubConfig, RunConfig};
use crate::connection::EventHubTarget;
use crate::plugin::{PluginHandle, PluginSpec, Runtime, RuntimeOptions};
use crate::processor::consume;
use crate::processor::owned::Owned;
use crate::processor::stats::{Snapshot, Stats};
use crate::shutdown::{Shutdown, Stop};
use positions::{caught_up, PositionsCache};

/// Settings of one run that are not in the config file.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Stop by itself once every owned partition has handled everything enqueued and nothing
    /// happened for this long (demos, tests, batch jobs).
    pub exit_when_idle: Option<Duration>,
    /// This instance's owner id in the checkpoint store (default: `<host>-<pid>-<random>`).
    pub instance_id: Option<String>,
    /// Send the lines of this `.jsonl` file as events to every consumed event hub that has a
    /// connection string (or is embedded), once the host runs.
    pub send: Option<std::path::PathBuf>,
    pub runtime: RuntimeOptions,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub snapshot: Snapshot,
    pub elapsed: Duration,
    /// From the first handled event to the last (throughput without start-up and idle time).
    pub busy: Duration,
    pub instance_id: String,
    /// The embedded endpoint's connection strings, by hub, when it ran in this process.
    pub embedded: Vec<(String, String)>,
}

/// Run the host until `shutdown` turns true (or, with `exit_when_idle`, until caught up):
/// [`Host::start`], then [`Host::wait`].
///
/// On shutdown every partition finishes its in-flight batch, writes its checkpoint, calls the
/// plugin's closed hook, and this instance releases its ownerships so another instance can
/// take the partitions over at once.
pub async fn run(
    config: RunConfig,
    options: RunOptions,
    shutdown: impl Into<Shutdown>,
    mut report: impl FnMut(&str) + Send,
) -> Result<RunReport, RunError> {
    let host = Host::start(config, options, &mut report).await?;
    host.wait(shutdown, &mut report).await
}

pub(crate) fn default_instance_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("hubwasm-{host}-{}-{nanos:08x}", std::process::id())
}

/// A started host. Dropping it without [`wait`](Host::wait) leaves its tasks running until the
/// runtime ends; call `wait` to stop cleanly.
pub struct Host {
    handle: HostHandle,
    config: RunConfig,
    options: RunOptions,
    embedded: Option<hubwasm_hub::RunningHub>,
    embedded_strings: Vec<(String, String)>,
    store: Arc<dyn Store>,
    targets: Vec<(EventHubConfig, EventHubTarget)>,
    hubs: Vec<JoinHandle<()>>,
    stop: Stop,
}

/// The live view of a running host and its controls; cheap to clone.
#[derive(Clone)]
pub struct HostHandle {
    inner: Arc<Shared>,
}

struct Shared {
    instance_id: String,
    stats: Arc<Stats>,
    /// The partitions this host owns and their states (control state, not metrics).
    owned: Arc<Owned>,
    store: Arc<dyn Store>,
    runtime: Runtime,
    hubs: Vec<HubHandle>,
    tenants: crate::tenant::Tenants,
    started: SystemTime,
    /// Every event hub's consumer is running (false before start ends and once stopping).
    ready: AtomicBool,
    /// One [`Sample`] a second, the newest last.
    history: Mutex<std::collections::VecDeque<Sample>>,
    /// Where `oci://` plugins are pulled from.
    registries: crate::registry::Registries,
    /// Each tenant's granted registries (`[tenant.grants] registries`).
    registry_grants: std::collections::HashMap<String, Vec<String>>,
    /// The most bytes a component, and a swap's replay events file, may have.
    max_component_bytes: u64,
    max_replay_bytes: u64,
}

/// One consumed event hub (and consumer group) and the plugin serving it.
pub struct HubHandle {
    /// The names of its `[[eventhub.output]]`s (a replay check lets a new version emit there).
    pub outputs: Vec<String>,
    pub event_hub: String,
    pub consumer_group: String,
    /// The tenant the event hub's processing belongs to.
    pub tenant: String,
    /// The namespace as the checkpoint store keys it.
    namespace: String,
    /// The content hash of the configured plugin: version records made from another base are
    /// not followed (the config changed since).
    base_digest: String,
    /// How often the consumer group's version record is read (hosts converge on it).
    follow_every: Duration,
    /// Sample events every new version must pass ([eventhub.swap] replay_events).
    replay_events: Option<std::path::PathBuf>,
    /// Swap when the plugin file is replaced ([eventhub.swap] watch).
    watch: bool,
    /// Tells a halted partition task to start again.
    resume: tokio::sync::broadcast::Sender<String>,
    /// Where the event hub is, for partition properties (lag).
    target: EventHubTarget,
    /// A client for partition properties, opened on first use; and the last answer, kept a
    /// moment so a busy status page does not call Event Hubs on every request.
    properties: tokio::sync::Mutex<PositionsCache>,
    pub plugin: PluginHandle,
    /// What a new version is loaded with: the hub's plugin config and limits.
    spec: PluginSpec,
    /// The version the last swap replaced, loaded and ready: what a rollback returns to.
    previous: Mutex<Option<Arc<crate::plugin::Plugin>>>,
    rollback: crate::config::RollbackConfig,
    history: Mutex<Vec<SwapRecord>>,
    /// One swap at a time per hub, so two callers cannot interleave load and swap.
    swapping: tokio::sync::Mutex<()>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl HostHandle {
    pub fn instance_id(&self) -> &str {
        &self.inner.instance_id
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.inner.stats
    }

    /// The partitions this host owns and their states.
    pub fn owned(&self) -> &Arc<Owned> {
        &self.inner.owned
    }

    /// Every tenant with its limits and usage.
    pub fn tenants(&self) -> &crate::tenant::Tenants {
        &self.inner.tenants
    }

    pub fn hubs(&self) -> &[HubHandle] {
        &self.inner.hubs
    }

    /// Every event hub's consumer runs (for `/readyz`).
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire) && !self.inner.stats.has_problems()
    }

    /// When the host started.
    pub fn started(&self) -> SystemTime {
        self.inner.started
    }
}

impl Host {
    /// Start the host: the embedded endpoint if configured, the checkpoint store, every
    /// plugin loaded and `init`ed (a plugin that cannot start fails here, before any partition
    /// is claimed), then one consumer per event hub.
    pub async fn start(
        config: RunConfig,
        options: RunOptions,
        report: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Host, RunError> {
        let stats = Arc::new(Stats::default());
        let owned = Arc::new(Owned::default());
        let instance_id = options
            .instance_id
            .clone()
            .unwrap_or_else(default_instance_id);
        let embedded = wiring::start_embedded(&config, report).await?;
        let embedded_strings: Vec<(String, String)> = match &embedded {
            Some(running) => config
                .event_hubs
                .iter()
                .filter(|h| h.embedded)
                .map(|h| (h.name.clone(), running.connection_string(&h.name)))
                .collect(),
            None => Vec::new(),
        };
        let store = open_store(&config.checkpoints).await?;
        report(&format!(
            "checkpoints in {}; instance {instance_id}",
            store.describe()
        ));
        let runtime = Runtime::new(options.runtime.clone()).map_err(|source| RunError::Plugin {
            hub: "*".into(),
            source,
        })?;
        let tenants = crate::tenant::Tenants::from_config(&config);
        let registries = crate::registry::Registries::new(
            config.registry_credentials(),
            options.runtime.cache_dir.as_ref().map(|d| d.join("oci")),
        );
        let mut wiring = wiring::Wiring {
            config: &config,
            runtime: &runtime,
            store: &store,
            registries: &registries,
            tenants: &tenants,
            stats: &stats,
            owned: &owned,
            instance_id: &instance_id,
            embedded: embedded.as_ref(),
            stores: Default::default(),
        };
        let mut wired = Vec::new();
        for hub in &config.event_hubs {
            wired.push(wiring.wire(hub, report).await?);
        }
        // Every plugin loaded and started its `init` above: only now claim partitions, so a
        // plugin that cannot start stops the host before it owns anything.
        let (stop, stopping) = crate::shutdown::channel();
        let (mut hubs, mut hub_handles, mut targets, mut to_judge) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (index, w) in wired.into_iter().enumerate() {
            hubs.push(tokio::spawn(consume(
                w.hub.clone(),
                w.target.clone(),
                store.clone(),
                w.setup,
                instance_id.clone(),
                stopping.clone(),
            )));
            if let Some(judge) = w.judge {
                to_judge.push((index, judge));
            }
            targets.push((w.hub, w.target));
            hub_handles.push(w.handle);
        }
        let handle = HostHandle {
            inner: Arc::new(Shared {
                instance_id,
                stats,
                owned,
                store: store.clone(),
                runtime,
                hubs: hub_handles,
                tenants,
                started: SystemTime::now(),
                ready: AtomicBool::new(true),
                history: Mutex::new(std::collections::VecDeque::new()),
                registries,
                registry_grants: config
                    .tenants
                    .iter()
                    .map(|t| (t.name.clone(), t.grants.registries.clone()))
                    .collect(),
                max_component_bytes: config.max_component_bytes(),
                max_replay_bytes: config.max_replay_bytes(),
            }),
        };
        for (index, (record, sha256)) in &to_judge {
            handle.judge_rest_of_window(&handle.inner.hubs[*index], record, sha256);
        }
        handle.follow(stopping.clone());
        handle.watch_files(stopping.clone());
        handle.sample(stopping);
        let host = Host {
            handle,
            config,
            options,
            embedded,
            embedded_strings,
            store,
            targets,
            hubs,
            stop,
        };
        host.send_file(report).await;
        Ok(host)
    }

    pub fn handle(&self) -> HostHandle {
        self.handle.clone()
    }

    /// `--send`: the lines of a file as events to every consumed event hub it can reach.
    async fn send_file(&self, report: &mut (dyn FnMut(&str) + Send)) {
        let Some(file) = &self.options.send else {
            return;
        };
        // Each event hub once, however many consumer groups read it.
        let mut sent_to = std::collections::HashSet::new();
        for (hub, _) in &self.targets {
            let conn = match (hub.address(), &self.embedded) {
                (EventHubAddress::ConnectionString { text, .. }, _) => text.clone(),
                (EventHubAddress::Embedded, Some(running)) => running.connection_string(&hub.name),
                _ => continue,
            };
            if !sent_to.insert(conn.clone()) {
                continue;
            }
            let send = crate::send::SendOptions {
                connection_string: conn,
                count: 0,
                interval: Duration::ZERO,
                partition: None,
                partition_key: None,
                batch_size: 1,
                file: Some(file.clone()),
            };
            match crate::send::send(&send, |_| {}).await {
                Ok(s) => report(&format!(
                    "sent {} events from {} to {}",
                    s.sent,
                    file.display(),
                    hub.name
                )),
                Err(err) => report(&format!(
                    "cannot send {} to {}: {err}",
                    file.display(),
                    hub.name
                )),
            }
        }
    }

    /// Run until `shutdown` turns true (or, with `exit_when_idle`, until caught up), then stop:
    /// every partition finishes its in-flight batch, writes its checkpoint and calls the
    /// plugin's closed hook, and the ownerships are released.
    pub async fn wait(
        self,
        shutdown: impl Into<Shutdown>,
        report: &mut (dyn FnMut(&str) + Send),
    ) -> Result<RunReport, RunError> {
        let mut shutdown = shutdown.into();
        let stats = self.handle.inner.stats.clone();
        let owned = self.handle.inner.owned.clone();
        let mut ticker =
            tokio::time::interval(self.config.summary_interval.max(Duration::from_secs(1)));
        ticker.tick().await;
        let mut idle_check = tokio::time::interval(Duration::from_secs(1));
        // The idle check's clients, opened on first use and kept for the run.
        let mut watchers: Vec<Option<azure_messaging_eventhubs::ConsumerClient>> =
            self.targets.iter().map(|_| None).collect();
        let mut previous = stats.snapshot();
        let mut last_tick = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.wait() => {
                    report("stopping: finishing in-flight batches and writing checkpoints");
                    break;
                }
                _ = ticker.tick(), if !self.config.summary_interval.is_zero() => {
                    let now = stats.snapshot();
                    report(&now.line(&previous, last_tick.elapsed(), &owned.list()));
                    previous = now;
                    last_tick = tokio::time::Instant::now();
                }
                _ = idle_check.tick(), if self.options.exit_when_idle.is_some() => {
                    let idle = self.options.exit_when_idle.unwrap_or_default();
                    if stats.idle_for().min(owned.unchanged_for()) >= idle && caught_up(&self.targets, &mut watchers, self.store.as_ref(), &owned).await {
                        report("caught up: every partition is handled and checkpointed; stopping");
                        break;
                    }
                }
            }
            // Hub tasks only end on stop; one that ended early has failed for good.
            if self.hubs.iter().any(|h| h.is_finished()) {
                self.handle.inner.ready.store(false, Ordering::Release);
            }
            if self.hubs.iter().all(|h| h.is_finished()) {
                break;
            }
        }
        self.handle.inner.ready.store(false, Ordering::Release);
        self.stop.stop();
        for hub in self.hubs {
            let _ = hub.await;
        }
        for watcher in watchers.into_iter().flatten() {
            let _ = watcher.close().await;
        }
        let snapshot = stats.snapshot();
        if let Some(running) = self.embedded {
            running.shutdown().await;
        }
        Ok(RunReport {
            snapshot,
            elapsed: stats.elapsed(),
            busy: stats.busy_span(),
            instance_id: self.handle.inner.instance_id.clone(),
            embedded: self.embedded_strings,
        })
    }
}
