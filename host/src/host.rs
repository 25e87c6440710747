//! A running host you can hold: [`Host::start`] sets everything up and claims partitions;
//! [`Host::handle`] gives the live view and the controls (hot swap) to the admin API and to
//! embedders; [`Host::wait`] drives the summary line, the idle exit and the shutdown.
//! `processor::run` is start + wait.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::checkpoint::{checkpointed, Store, VersionRecord};
use crate::config::{DeadLetterConfig, EventHubConfig, RunConfig};
use crate::connection::{ConnectionString, EventHubTarget};
use crate::plugin::{LoadError, PluginHandle, PluginSpec, Runtime};
use crate::processor::partition::PartitionSetup;
use crate::processor::stats::Stats;
use crate::processor::{
    caught_up, consume, default_instance_id, open_store, target, RunError, RunOptions, RunReport,
};
use crate::sink::{DeadLetterSink, DirectorySink, EventHubSink};

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
    stop_tx: watch::Sender<bool>,
}

/// The live view of a running host and its controls; cheap to clone.
#[derive(Clone)]
pub struct HostHandle {
    inner: Arc<Shared>,
}

struct Shared {
    instance_id: String,
    stats: Arc<Stats>,
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

#[derive(Default)]
struct PositionsCache {
    consumer: Option<azure_messaging_eventhubs::ConsumerClient>,
    last: Option<(tokio::time::Instant, Vec<PartitionPosition>)>,
}

/// Where one partition of an event hub stands, across every host of the consumer group.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PartitionPosition {
    pub partition: String,
    /// The instance that owns it, as the checkpoint store records.
    pub owner: Option<String>,
    /// The sequence number of the last checkpointed event.
    pub checkpoint: Option<i64>,
    /// The sequence number of the last event Event Hubs holds in the partition.
    pub last_enqueued: Option<i64>,
    /// Events enqueued but not yet checkpointed.
    pub lag: Option<i64>,
}

/// The counters at one moment (the status page's charts).
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub handled: u64,
    pub failures: u64,
    pub dead_lettered: u64,
}

/// A partition's last enqueued sequence number, whether it is empty, and its first sequence
/// number, as Event Hubs reports them.
type LastEnqueued = (i64, bool, i64);

/// Samples kept: one a second for ten minutes.
const HISTORY: usize = 600;
/// How often a version under judgement records and reads the group's counts.
const OUTCOME_TICK: Duration = Duration::from_millis(250);
/// How long a partition-properties answer is reused.
const POSITIONS_FRESH: Duration = Duration::from_secs(2);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A plugin version as logs, metrics and the admin API name it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PluginVersion {
    pub name: String,
    /// The component's content hash (sha256, hex).
    pub digest: String,
    pub path: String,
}

/// One swap that happened.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SwapRecord {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub from: PluginVersion,
    pub to: PluginVersion,
    /// `swap`, `rollback`, or `automatic rollback: <why>`.
    pub reason: String,
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

impl PluginVersion {
    fn of(plugin: &crate::plugin::Plugin) -> Self {
        Self {
            name: plugin.name().to_string(),
            digest: plugin.digest().to_string(),
            path: plugin.path().display().to_string(),
        }
    }
}

impl HostHandle {
    pub fn instance_id(&self) -> &str {
        &self.inner.instance_id
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.inner.stats
    }

    /// Every tenant with its limits and usage.
    pub fn tenants(&self) -> &crate::tenant::Tenants {
        &self.inner.tenants
    }

    pub fn hubs(&self) -> &[HubHandle] {
        &self.inner.hubs
    }

    /// The counters once a second over the last ten minutes, oldest first.
    pub fn history(&self) -> Vec<Sample> {
        self.inner
            .history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect()
    }

    fn sample(&self, mut stop: watch::Receiver<bool>) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                for tenant in this.inner.tenants.iter() {
                    tenant.tick();
                    this.inner
                        .stats
                        .set_tenant_usage(&tenant.name, &tenant.usage());
                }
                let snap = this.inner.stats.snapshot();
                let mut history = this.inner.history.lock().unwrap_or_else(|e| e.into_inner());
                if history.len() == HISTORY {
                    history.pop_front();
                }
                history.push_back(Sample {
                    at_ms: now_ms(),
                    handled: snap.handled,
                    failures: snap.failures,
                    dead_lettered: snap.dead_lettered,
                });
            }
        });
    }

    /// Every partition of `hub`: owner, checkpoint, last enqueued event and lag, from the
    /// checkpoint store and Event Hubs (answers are reused for two seconds). Parts that cannot
    /// be read are left empty; the error says which.
    pub async fn positions(&self, hub: &HubHandle) -> (Vec<PartitionPosition>, Option<String>) {
        let mut cache = hub.properties.lock().await;
        if let Some((at, positions)) = &cache.last {
            if at.elapsed() < POSITIONS_FRESH {
                return (positions.clone(), None);
            }
        }
        let store = &self.inner.store;
        let (ns, name, group) = (&hub.namespace, &hub.event_hub, &hub.consumer_group);
        let mut problem = None;
        let owners: std::collections::HashMap<String, String> =
            match store.list_ownerships(ns, name, group).await {
                Ok(list) => list
                    .into_iter()
                    .filter_map(|o| Some((o.partition_id, o.owner_id?)))
                    .filter(|(_, owner)| !owner.is_empty())
                    .collect(),
                Err(err) => {
                    problem = Some(format!("checkpoint store: {err}"));
                    Default::default()
                }
            };
        let checkpoints = match checkpointed(store.as_ref(), ns, name, group).await {
            Ok(map) => map,
            Err(err) => {
                problem = Some(format!("checkpoint store: {err}"));
                Default::default()
            }
        };
        if cache.consumer.is_none() {
            match hub.target.consumer(group).await {
                Ok(consumer) => cache.consumer = Some(consumer),
                Err(err) => problem = Some(format!("event hub: {err}")),
            }
        }
        let mut partitions: Vec<(String, Option<LastEnqueued>)> = Vec::new();
        if let Some(consumer) = &cache.consumer {
            match consumer.get_eventhub_properties().await {
                Ok(props) => {
                    for id in props.partition_ids {
                        let p = consumer.get_partition_properties(&id).await.ok();
                        partitions.push((
                            id,
                            p.map(|p| {
                                (
                                    p.last_enqueued_sequence_number,
                                    p.is_empty,
                                    p.beginning_sequence_number,
                                )
                            }),
                        ));
                    }
                }
                Err(err) => {
                    problem = Some(format!("event hub: {err}"));
                    cache.consumer = None; // reopen next time
                }
            }
        }
        if partitions.is_empty() {
            let mut ids: Vec<String> = owners.keys().chain(checkpoints.keys()).cloned().collect();
            ids.sort();
            ids.dedup();
            partitions = ids.into_iter().map(|id| (id, None)).collect();
        }
        partitions.sort_by_key(|(id, _)| (id.len(), id.clone()));
        let positions: Vec<PartitionPosition> = partitions
            .into_iter()
            .map(|(id, props)| {
                let checkpoint = checkpoints.get(&id).copied();
                let lag = props.map(|(last, empty, first)| {
                    if empty {
                        0
                    } else {
                        match checkpoint {
                            Some(c) => last.saturating_sub(c).max(0),
                            None => last.saturating_sub(first).saturating_add(1).max(0),
                        }
                    }
                });
                PartitionPosition {
                    owner: owners.get(&id).cloned(),
                    checkpoint,
                    last_enqueued: props.and_then(|(last, empty, _)| (!empty).then_some(last)),
                    lag,
                    partition: id,
                }
            })
            .collect();
        for p in &positions {
            if let Some(lag) = p.lag {
                self.inner
                    .stats
                    .set_lag(&hub.event_hub, &hub.consumer_group, &p.partition, lag);
            }
        }
        if problem.is_none() {
            cache.last = Some((tokio::time::Instant::now(), positions.clone()));
        }
        (positions, problem)
    }

    /// Every event hub's consumer runs (for `/readyz`).
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire) && !self.inner.stats.has_problems()
    }

    /// When the host started.
    pub fn started(&self) -> SystemTime {
        self.inner.started
    }

    /// The consumed event hub of that name (and consumer group, when it has several).
    pub fn find(&self, event_hub: &str, group: Option<&str>) -> Result<&HubHandle, SwapError> {
        let matching: Vec<&HubHandle> = self
            .inner
            .hubs
            .iter()
            .filter(|h| h.event_hub == event_hub && group.is_none_or(|g| h.consumer_group == g))
            .collect();
        match matching.as_slice() {
            [one] => Ok(one),
            [] => Err(SwapError::UnknownHub {
                event_hub: event_hub.into(),
                group: group.map(str::to_string),
                known: self
                    .inner
                    .hubs
                    .iter()
                    .map(|h| format!("{} ({})", h.event_hub, h.consumer_group))
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
            several => Err(SwapError::AmbiguousGroup {
                event_hub: event_hub.into(),
                groups: several
                    .iter()
                    .map(|h| h.consumer_group.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// Replace the plugin of `event_hub` with `component`. The new version is loaded and
    /// checked first (world, contract version, `init` with the hub's config, the replay
    /// events); if that fails nothing changes. It is then stored in the group's store under its
    /// digest (the group's other hosts fetch it from there), and every partition switches at
    /// its next batch boundary: the batch in flight finishes and is checkpointed on the old
    /// version.
    pub async fn swap(
        &self,
        event_hub: &str,
        group: Option<&str>,
        component: crate::artifact::Component,
        replay: Option<crate::replay::EventsSource>,
    ) -> Result<SwapRecord, SwapError> {
        let hub = self.find(event_hub, group)?;
        let _one_at_a_time = hub.swapping.lock().await;
        self.swap_locked(hub, component, replay, "swap").await
    }

    /// Pull the component `reference` names (resolved now, pinned to its digest) for a swap of
    /// `event_hub`; a tenant's caller may name only registries granted to it.
    pub async fn pull(
        &self,
        reference: &str,
        tenant: Option<&str>,
    ) -> Result<crate::artifact::Component, crate::registry::RegistryError> {
        let reference = crate::registry::OciRef::parse(reference)?;
        if let Some(tenant) = tenant {
            let grants = self
                .inner
                .registry_grants
                .get(tenant)
                .cloned()
                .unwrap_or_default();
            if !reference.is_granted(&grants) {
                return Err(crate::registry::RegistryError::NotGranted {
                    reference: reference.to_string(),
                    tenant: tenant.to_string(),
                });
            }
        }
        let pulled = self
            .inner
            .registries
            .pull(&reference, self.inner.max_component_bytes)
            .await?;
        Ok(pulled.into_component(None))
    }

    /// [`swap`](Self::swap) with the hub's swap lock held.
    async fn swap_locked(
        &self,
        hub: &HubHandle,
        component: crate::artifact::Component,
        replay: Option<crate::replay::EventsSource>,
        reason: &str,
    ) -> Result<SwapRecord, SwapError> {
        let origin = component.origin.clone();
        let plugin = self
            .inner
            .runtime
            .load(component.spec_with(&hub.spec))
            .await
            .map_err(|source| SwapError::Refused {
                path: origin.clone(),
                source,
            })?;
        let replay = replay.or_else(|| {
            hub.replay_events
                .clone()
                .map(|p| crate::replay::EventsSource::Path(p, self.inner.max_replay_bytes))
        });
        if let Some(events) = replay {
            self.check_replay(hub, &component, events).await?;
        }
        // Both the new version and the one it replaces (what a rollback returns to) are kept in
        // the group's store before anything changes: every host can then fetch either.
        let current = hub.plugin.current();
        for (sha256, bytes) in [
            (plugin.sha256(), plugin.bytes()),
            (current.sha256(), current.bytes()),
        ] {
            crate::artifact::save(self.inner.store.as_ref(), &hub.group(), sha256, bytes)
                .await
                .map_err(|message| SwapError::StoreUnavailable {
                    path: origin.clone(),
                    message,
                })?;
        }
        let sha256 = plugin.sha256().to_string();
        let record = self.put(hub, Arc::new(plugin), reason.into(), true).await;
        if hub.rollback.automatic {
            self.watch_for_rollback(hub, crate::checkpoint::swap_id(&sha256, record.at_ms));
        }
        Ok(record)
    }

    /// Resume a partition the `halt` failure policy stopped: it retries the event it stopped at
    /// with a fresh count of attempts.
    pub fn resume(
        &self,
        event_hub: &str,
        group: Option<&str>,
        partition: &str,
    ) -> Result<(), SwapError> {
        let hub = self.find(event_hub, group)?;
        let state = self
            .inner
            .stats
            .snapshot()
            .owned
            .into_iter()
            .find(|o| {
                o.event_hub == hub.event_hub
                    && o.consumer_group == hub.consumer_group
                    && o.partition == partition
            })
            .map(|o| o.state);
        match state {
            Some(crate::processor::stats::PartitionState::Halted) => {
                let _ = hub.resume.send(partition.to_string());
                Ok(())
            }
            other => Err(SwapError::NotHalted {
                event_hub: hub.event_hub.clone(),
                partition: partition.to_string(),
                state: match other {
                    Some(s) => format!("it is {s:?}").to_lowercase(),
                    None => "this host does not own it".into(),
                },
            }),
        }
    }

    /// Run the sample events through the new version (as `hubwasm plugin test` does); any
    /// failure refuses the swap.
    async fn check_replay(
        &self,
        hub: &HubHandle,
        component: &crate::artifact::Component,
        events: crate::replay::EventsSource,
    ) -> Result<(), SwapError> {
        let path = component.origin.clone();
        let replay = match &events {
            crate::replay::EventsSource::Path(p, _) => p.display().to_string(),
            crate::replay::EventsSource::Text(_) => "the uploaded events".to_string(),
        };
        let options = crate::replay::ReplayOptions {
            plugin: component.spec_with(&hub.spec),
            events,
            batch_size: 100,
            quiet: true,
            outputs: hub.outputs.clone(),
        };
        let mut out = Vec::new();
        let summary = crate::replay::replay(&self.inner.runtime, &options, &mut out)
            .await
            .map_err(|e| SwapError::ReplayUnavailable {
                path: path.clone(),
                replay: replay.clone(),
                message: e.to_string(),
            })?;
        if summary.failures() == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&out);
        let detail = text
            .lines()
            .filter(|l| l.starts_with("seq="))
            .take(3)
            .collect::<Vec<_>>()
            .join("; ");
        Err(SwapError::ReplayFailed {
            path,
            replay,
            events: summary.events,
            failed: summary.failures(),
            detail,
        })
    }

    /// Return `event_hub` to the version the last swap replaced (already loaded and checked).
    pub async fn rollback(
        &self,
        event_hub: &str,
        group: Option<&str>,
    ) -> Result<SwapRecord, SwapError> {
        let hub = self.find(event_hub, group)?;
        let _one_at_a_time = hub.swapping.lock().await;
        self.roll_back(hub, "rollback".into()).await
    }

    async fn roll_back(&self, hub: &HubHandle, reason: String) -> Result<SwapRecord, SwapError> {
        let previous = hub
            .previous
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| SwapError::NothingToRollBack {
                event_hub: hub.event_hub.clone(),
            })?;
        let record = self.put(hub, previous, reason, true).await;
        // A rollback is not undone by another rollback.
        hub.previous
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        Ok(record)
    }

    /// Make `plugin` serve `hub`; remember the replaced version for a rollback; with `publish`,
    /// record it beside the checkpoints so the group's other hosts follow.
    async fn put(
        &self,
        hub: &HubHandle,
        plugin: Arc<crate::plugin::Plugin>,
        reason: String,
        publish: bool,
    ) -> SwapRecord {
        // One ready instance per partition this host serves, made before the switch: the
        // partitions then only announce themselves to the new version at their next batch.
        let owned = self
            .inner
            .stats
            .snapshot()
            .owned
            .iter()
            .filter(|o| o.event_hub == hub.event_hub && o.consumer_group == hub.consumer_group)
            .count();
        self.inner.runtime.prepare_spares(&plugin, owned).await;
        let to = PluginVersion::of(&plugin);
        let old = hub.plugin.swap_arc(plugin);
        let record = SwapRecord {
            at_ms: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            from: PluginVersion::of(&old),
            to,
            reason,
        };
        *hub.previous.lock().unwrap_or_else(|e| e.into_inner()) = Some(old);
        tracing::info!(
            event_hub = %hub.event_hub,
            consumer_group = %hub.consumer_group,
            from = %record.from.name, from_digest = %record.from.digest,
            to = %record.to.name, to_digest = %record.to.digest,
            reason = %record.reason,
            "Plugin version swapped; partitions switch at their next batch"
        );
        self.inner
            .stats
            .record_swap(&hub.event_hub, &hub.consumer_group);
        hub.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(record.clone());
        if publish {
            let version = VersionRecord {
                path: record.to.path.clone(),
                digest: record.to.digest.clone(),
                sha256: Some(hub.plugin.current().sha256().to_string()),
                name: Some(record.to.name.clone()),
                base_digest: hub.base_digest.clone(),
                reason: record.reason.clone(),
                by: self.inner.instance_id.clone(),
                at_ms: record.at_ms,
            };
            if let Err(err) = self
                .inner
                .store
                .save_version(
                    &hub.namespace,
                    &hub.event_hub,
                    &hub.consumer_group,
                    &version,
                )
                .await
            {
                tracing::error!(
                    event_hub = %hub.event_hub,
                    error = %err,
                    "Cannot record the plugin version beside the checkpoints: this host runs it, \
                     the group's other hosts do not follow until the store answers and it is \
                     swapped again"
                );
            }
        }
        record
    }

    /// Follow the consumer group's version record: when another host swapped or rolled back,
    /// load the same file (it must still have the recorded hash) and swap to it here too.
    fn follow(&self, stop: watch::Receiver<bool>) {
        for index in 0..self.inner.hubs.len() {
            let this = self.clone();
            let mut stop = stop.clone();
            tokio::spawn(async move {
                let hub = &this.inner.hubs[index];
                let mut tick = tokio::time::interval(hub.follow_every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                // A digest that could not be followed is not tried again until the record
                // changes (the error is logged once).
                let mut refused: Option<String> = None;
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                    let record = match this
                        .inner
                        .store
                        .load_version(&hub.namespace, &hub.event_hub, &hub.consumer_group)
                        .await
                    {
                        Ok(Some(record)) => record,
                        Ok(None) => continue,
                        Err(err) => {
                            tracing::debug!(event_hub = %hub.event_hub, error = %err, "Cannot read the plugin version record");
                            continue;
                        }
                    };
                    let wanted = record
                        .sha256
                        .clone()
                        .unwrap_or_else(|| record.digest.clone());
                    if record.base_digest != hub.base_digest
                        || wanted == hub.plugin.current().sha256()
                        || record.digest == hub.plugin.current().digest()
                        || refused.as_deref() == Some(&wanted)
                    {
                        continue;
                    }
                    let _one_at_a_time = hub.swapping.lock().await;
                    match this.load_recorded(hub, &record).await {
                        Ok(plugin) => {
                            let why = format!(
                                "followed {} ({}) by {}",
                                record.reason, record.path, record.by
                            );
                            this.put(hub, plugin, why, false).await;
                            // A new version is judged on every host, over the rest of its
                            // window; a rollback is not judged.
                            this.judge_rest_of_window(hub, &record, &wanted);
                            refused = None;
                        }
                        Err(err) => {
                            tracing::error!(
                                event_hub = %hub.event_hub,
                                consumer_group = %hub.consumer_group,
                                by = %record.by,
                                error = %err,
                                "The consumer group switched plugin version but this host cannot \
                                 fetch or load it; it keeps its version"
                            );
                            refused = Some(wanted);
                        }
                    }
                }
            });
        }
    }

    /// `[eventhub.swap] watch`: poll the serving version's file once a second; when it changed
    /// and then stayed the same for a second (a copy has finished), swap it in, checked like
    /// any swap.
    fn watch_files(&self, stop: watch::Receiver<bool>) {
        for index in 0..self.inner.hubs.len() {
            if !self.inner.hubs[index].watch {
                continue;
            }
            let this = self.clone();
            let mut stop = stop.clone();
            tokio::spawn(async move {
                let hub = &this.inner.hubs[index];
                let stamp = |path: &std::path::Path| {
                    std::fs::metadata(path)
                        .ok()
                        .map(|m| (m.len(), m.modified().ok()))
                };
                let mut path = hub.plugin.current().path().to_path_buf();
                let mut seen = stamp(&path);
                let mut pending: Option<Option<(u64, Option<SystemTime>)>> = None;
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                    let serving = hub.plugin.current().path().to_path_buf();
                    if serving != path {
                        // Swapped by other means: watch the new file from now on.
                        path = serving;
                        seen = stamp(&path);
                        pending = None;
                        continue;
                    }
                    let now = stamp(&path);
                    if now == seen || now.is_none() {
                        pending = None;
                        continue;
                    }
                    if pending != Some(now) {
                        pending = Some(now); // changed: wait until it stays the same
                        continue;
                    }
                    pending = None;
                    seen = now;
                    let _one_at_a_time = hub.swapping.lock().await;
                    let read = {
                        let runtime = this.inner.runtime.clone();
                        let path = path.clone();
                        tokio::task::spawn_blocking(move || runtime.read_component(&path)).await
                    };
                    let component = match read {
                        Ok(Ok(bytes)) => crate::artifact::Component::new(
                            hub.plugin.current().name(),
                            path.display().to_string(),
                            bytes,
                        ),
                        Ok(Err(err)) => {
                            tracing::error!(event_hub = %hub.event_hub, path = %path.display(), error = %err, "The plugin file changed but cannot be read; the running version is unchanged");
                            continue;
                        }
                        Err(_) => continue,
                    };
                    match this
                        .swap_locked(hub, component, None, "file replaced")
                        .await
                    {
                        Ok(_) => {}
                        Err(err) => tracing::error!(
                            event_hub = %hub.event_hub,
                            path = %path.display(),
                            error = %err,
                            "The plugin file changed but the new version was refused; the \
                             running version is unchanged"
                        ),
                    }
                }
            });
        }
    }

    /// Load the version a record names: fetched from the group's store by its digest and
    /// checked against it.
    async fn load_recorded(
        &self,
        hub: &HubHandle,
        record: &VersionRecord,
    ) -> Result<Arc<crate::plugin::Plugin>, String> {
        crate::artifact::load_recorded(
            &self.inner.runtime,
            self.inner.store.as_ref(),
            &hub.group(),
            record,
            &hub.spec,
            self.inner.max_component_bytes,
        )
        .await
        .map(Arc::new)
    }

    /// Judge the version just swapped in over its rollback window: while it is judged, an event
    /// that fails its last attempt under it is held (see [`crate::plugin::Probation`]). Every
    /// host of the group records its counts for the swap (`swap`, a
    /// [`crate::checkpoint::swap_id`]) in the store and judges on the sum: the version is
    /// rolled back once at least `min_failures` calls failed at or above `failure_rate`, or, at
    /// the window's end, if it failed at that rate while holding events; otherwise it is
    /// cleared and held events follow the failure policy.
    fn watch_for_rollback(&self, hub: &HubHandle, swap: String) {
        let window = Duration::from_millis(hub.rollback.window_ms);
        self.judge(hub, swap, window);
    }

    /// Judge a version the group swapped in at `at_ms` over what is left of its window (a host
    /// that follows, or starts, after the swap); nothing when the window is over.
    fn judge_rest_of_window(&self, hub: &HubHandle, record: &VersionRecord, sha256: &str) {
        if !hub.rollback.automatic || record.reason.contains("rollback") {
            return;
        }
        let elapsed = Duration::from_millis(now_ms().saturating_sub(record.at_ms));
        let window = Duration::from_millis(hub.rollback.window_ms).saturating_sub(elapsed);
        if !window.is_zero() {
            self.judge(
                hub,
                crate::checkpoint::swap_id(sha256, record.at_ms),
                window,
            );
        }
    }

    /// [`watch_for_rollback`](Self::watch_for_rollback) over `window`.
    fn judge(&self, hub: &HubHandle, swap: String, window: Duration) {
        let this = self.clone();
        let event_hub = hub.event_hub.clone();
        let group = hub.consumer_group.clone();
        let policy = hub.rollback;
        let generation = hub.plugin.generation();
        hub.plugin.begin_probation(generation);
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let mut tick = tokio::time::interval(OUTCOME_TICK);
            let mut saved: Option<crate::checkpoint::VersionOutcome> = None;
            let mut last_sum = (0, 0, 0, 1);
            loop {
                let over = started.elapsed() >= window;
                if !over {
                    tick.tick().await;
                }
                let Ok(hub) = this.find(&event_hub, Some(&group)) else {
                    return;
                };
                if hub.plugin.generation() != generation {
                    return; // swapped again: that swap judges itself
                }
                let (handled, failed) = hub.plugin.outcomes_since_swap();
                let mine = crate::checkpoint::VersionOutcome {
                    instance: this.inner.instance_id.clone(),
                    handled,
                    failed,
                    held: hub.plugin.held(),
                };
                let store = this.inner.store.as_ref();
                if saved.as_ref() != Some(&mine) {
                    match store.save_outcome(&hub.group(), &swap, &mine).await {
                        Ok(()) => saved = Some(mine.clone()),
                        Err(err) => {
                            tracing::debug!(event_hub = %event_hub, error = %err, "Cannot record this host's counts for the new version")
                        }
                    }
                }
                // The group's counts: the others' as the store has them, this host's as now.
                let sum = match store.load_outcomes(&hub.group(), &swap).await {
                    Ok(all) => {
                        let others = all
                            .iter()
                            .filter(|o| {
                                // Stores key a host's record by its name as a file name.
                                crate::checkpoint::instance_file_name(&o.instance)
                                    != crate::checkpoint::instance_file_name(&mine.instance)
                            })
                            .collect::<Vec<_>>();
                        others.iter().fold(
                            (mine.handled, mine.failed, mine.held, 1 + others.len()),
                            |(h, f, held, n), o| (h + o.handled, f + o.failed, held + o.held, n),
                        )
                    }
                    Err(_) => last_sum,
                };
                last_sum = sum;
                let (handled, failed, held, hosts) = sum;
                let rate = failed as f64 / (handled + failed).max(1) as f64;
                let failing = rate >= policy.failure_rate && failed > 0;
                let verdict = if failing && failed >= policy.min_failures {
                    Some("")
                } else if over && failing && held > 0 {
                    Some(", with events held")
                } else {
                    None
                };
                if let Some(extra) = verdict {
                    let _one_at_a_time = hub.swapping.lock().await;
                    if hub.plugin.generation() != generation {
                        return;
                    }
                    let why = format!(
                        "automatic rollback: {failed} of {} calls failed within {:.1} s of the \
                         swap across {hosts} host(s){extra} (limit {:.0} %)",
                        handled + failed,
                        started.elapsed().as_secs_f64(),
                        policy.failure_rate * 100.0
                    );
                    match this.roll_back(hub, why.clone()).await {
                        Ok(_) => {
                            tracing::warn!(event_hub = %event_hub, consumer_group = %group, "{why}")
                        }
                        Err(err) => {
                            tracing::error!(event_hub = %event_hub, error = %err, "Automatic rollback failed");
                            hub.plugin.clear_probation(generation);
                        }
                    }
                    return;
                }
                if over {
                    hub.plugin.clear_probation(generation);
                    tracing::info!(
                        event_hub = %event_hub,
                        consumer_group = %group,
                        handled,
                        failed,
                        hosts,
                        "The new version passed its rollback window; failures follow the failure policy again"
                    );
                    return;
                }
            }
        });
    }
}

impl HubHandle {
    /// The consumer group as the store names it.
    fn group(&self) -> crate::checkpoint::GroupName<'_> {
        crate::checkpoint::GroupName {
            namespace: &self.namespace,
            event_hub: &self.event_hub,
            consumer_group: &self.consumer_group,
        }
    }

    /// The version serving now.
    pub fn current(&self) -> PluginVersion {
        PluginVersion::of(&self.plugin.current())
    }

    /// Swaps so far, oldest first.
    pub fn history(&self) -> Vec<SwapRecord> {
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
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
        let instance_id = options
            .instance_id
            .clone()
            .unwrap_or_else(default_instance_id);

        let embedded = match &config.embedded {
            Some(e) => {
                let mut hub_config = match &e.config {
                    Some(path) => hubwasm_hub::HubConfig::load(path)
                        .map_err(|err| RunError::Embedded(err.to_string()))?,
                    None => hubwasm_hub::HubConfig::default(),
                };
                hub_config.listen = e
                    .listen
                    .unwrap_or_else(|| "127.0.0.1:0".parse().expect("valid address"));
                if let Some(data) = &e.data {
                    hub_config.data_dir = data.clone();
                }
                // Every consumer group the config reads an embedded event hub with exists there.
                for hub in config.event_hubs.iter().filter(|h| h.embedded) {
                    if let Some(served) = hub_config
                        .event_hubs
                        .iter_mut()
                        .find(|served| served.name == hub.name)
                    {
                        if !hub.consumer_group.eq_ignore_ascii_case("$Default")
                            && !served.consumer_groups.contains(&hub.consumer_group)
                        {
                            served.consumer_groups.push(hub.consumer_group.clone());
                        }
                    }
                }
                let running = hubwasm_hub::start(hub_config)
                    .await
                    .map_err(|err| RunError::Embedded(err.to_string()))?;
                report(&format!(
                    "embedded Event Hubs endpoint on {}",
                    running.local_addr()
                ));
                Some(running)
            }
            None => None,
        };
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
        // One SQLite connection per dedupe file, shared by the event hubs that use it.
        let mut dedupe_stores = crate::effects::dedupe::Stores::default();
        let mut state_stores = crate::effects::state::Stores::default();
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut targets = Vec::new();
        let mut setups = Vec::new();
        let mut hub_handles = Vec::new();
        // Recorded versions started with while still within their rollback window: judged
        // here too once the host runs (hub index, record, sha256).
        let mut to_judge: Vec<(usize, VersionRecord, String)> = Vec::new();
        for hub in &config.event_hubs {
            let target = target(hub, embedded.as_ref())?;
            let tenant = tenants.get(hub.tenant_name()).cloned().unwrap_or_else(|| {
                Arc::new(crate::tenant::Tenant::new(
                    hub.tenant_name(),
                    Default::default(),
                ))
            });
            let mut spec = match crate::registry::as_reference(&hub.plugin) {
                // From a registry: resolved now to the digest the reference names, and that
                // digest is what runs from here on.
                Some(text) => {
                    let fail = |e: crate::registry::RegistryError| {
                        RunError::Store(format!("event hub {}: {e}", hub.name))
                    };
                    let reference = crate::registry::OciRef::parse(text).map_err(fail)?;
                    let pulled = registries
                        .pull(&reference, config.max_component_bytes())
                        .await
                        .map_err(fail)?;
                    report(&format!(
                        "event hub {}: plugin {text} pulled as {}",
                        hub.name, pulled.pinned
                    ));
                    pulled.into_component(hub.plugin_name.as_deref()).spec()
                }
                None => PluginSpec::new(&hub.plugin),
            };
            spec.memory_peak = Some(tenant.memory_peak.clone());
            spec.allowed_outbound_hosts = hub
                .allowed_outbound_hosts
                .iter()
                .filter_map(|o| crate::plugin::http::Origin::parse(o).ok())
                .collect();
            spec.config = config.plugin_config_of(hub)?;
            if let Some(limits) = hub.limits {
                spec.limits = limits;
            }
            let plugin = runtime
                .load(spec.clone())
                .await
                .map_err(|source| RunError::Plugin {
                    hub: hub.name.clone(),
                    source,
                })?;
            report(&format!(
                "event hub {} ({}), consumer group {}: plugin {} ({}, {} world), {} mode",
                hub.name,
                target.endpoint(),
                hub.consumer_group,
                plugin.name(),
                plugin.digest(),
                plugin.kind(),
                match hub.mode {
                    crate::config::Mode::Event => "per-event".to_string(),
                    crate::config::Mode::Batch => format!("batch (≤{})", hub.max_batch_size),
                }
            ));
            // After a hot swap the consumer group runs the version recorded beside its
            // checkpoints: start with it, so every host of the group runs the same one.
            let base_digest = plugin.digest().to_string();
            let mut previous = None;
            let plugin = match store
                .load_version(&target.namespace, &hub.name, &hub.consumer_group)
                .await
            {
                Ok(Some(record)) if record.base_digest != base_digest => {
                    report(&format!(
                        "event hub {}: ignoring the group's recorded version {} ({}): it was \
                         swapped in over another configured plugin; the config's plugin runs",
                        hub.name, record.path, record.reason
                    ));
                    plugin
                }
                // A record of a hubwasm that shared plugins by path: nothing to fetch.
                Ok(Some(record)) if record.sha256.is_none() => {
                    if record.digest != plugin.digest() {
                        report(&format!(
                            "event hub {}: the group's recorded version {} ({}) was recorded by an \
                             older hubwasm, without its component in the store; the config's \
                             plugin runs (swap the version again to share it)",
                            hub.name, record.path, record.digest
                        ));
                    }
                    plugin
                }
                Ok(Some(record)) if record.sha256.as_deref() != Some(plugin.sha256()) => {
                    let group = crate::checkpoint::GroupName {
                        namespace: &target.namespace,
                        event_hub: &hub.name,
                        consumer_group: &hub.consumer_group,
                    };
                    let fail = |why: String| {
                        RunError::Store(format!(
                            "event hub {}: the consumer group runs {} ({}) since a {} by {}, \
                                 and this host cannot run it: {why}",
                            hub.name, record.path, record.digest, record.reason, record.by
                        ))
                    };
                    let recorded = crate::artifact::load_recorded(
                        &runtime,
                        store.as_ref(),
                        &group,
                        &record,
                        &spec,
                        config.max_component_bytes(),
                    )
                    .await
                    .map_err(fail)?;
                    report(&format!(
                        "event hub {}: running the consumer group's version {} ({}, {} by {}), \
                             fetched from the store by its digest",
                        hub.name,
                        recorded.name(),
                        recorded.digest(),
                        record.reason,
                        record.by
                    ));
                    to_judge.push((
                        hub_handles.len(),
                        record.clone(),
                        recorded.sha256().to_string(),
                    ));
                    previous = Some(Arc::new(plugin));
                    recorded
                }
                Ok(_) => plugin,
                Err(err) => {
                    report(&format!(
                        "event hub {}: cannot read the group's plugin version ({err}); running \
                         the configured plugin",
                        hub.name
                    ));
                    plugin
                }
            };
            let dead_letter: Arc<dyn DeadLetterSink> = match &hub.dead_letter {
                DeadLetterConfig::Directory { path } => Arc::new(DirectorySink::new(path)),
                DeadLetterConfig::EventHub { connection_string } => {
                    let conn = ConnectionString::parse(connection_string)?;
                    Arc::new(EventHubSink::new(
                        conn.producer().await?,
                        conn.entity_path.clone(),
                    ))
                }
                DeadLetterConfig::Blob(blob) => crate::sink::blob::open(blob)
                    .await
                    .map_err(RunError::Store)?,
            };
            let handle = PluginHandle::new(plugin);
            let (resume, _) = tokio::sync::broadcast::channel(16);
            stats.set_tenant(&hub.name, &hub.consumer_group, hub.tenant_name());
            let dedupe = match &hub.dedupe {
                Some(d) => {
                    let scope = format!("{}/{}/{}", target.namespace, hub.name, hub.consumer_group);
                    let dedupe = dedupe_stores
                        .dedupe(d, scope)
                        .map_err(|e| RunError::Store(e.to_string()))?;
                    let by = match &d.key {
                        Some(key) => format!("duplicates by `{key}` skipped"),
                        None => "the plugin's first-seen keys".to_string(),
                    };
                    report(&format!(
                        "event hub {} ({}): {by}, keys in {} for {} s",
                        hub.name,
                        hub.consumer_group,
                        dedupe.store.describe(),
                        d.ttl_secs
                    ));
                    Some(Arc::new(dedupe))
                }
                None => None,
            };
            let state = match &hub.state {
                Some(c) => {
                    let store = state_stores
                        .store(c)
                        .map_err(|e| RunError::Store(e.to_string()))?;
                    report(&format!(
                        "event hub {} ({}): plugin state in {}",
                        hub.name,
                        hub.consumer_group,
                        store.describe()
                    ));
                    Some((store, c.max_value_bytes, c.max_bytes))
                }
                None => None,
            };
            let outputs = Arc::new(open_outputs(hub, embedded.as_ref()).await?);
            if !outputs.list.is_empty() {
                report(&format!(
                    "event hub {}: outputs {}",
                    hub.name,
                    outputs
                        .list
                        .iter()
                        .map(|o| format!("{} (event hub {})", o.name, o.event_hub))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            let setup = Arc::new(PartitionSetup {
                tenant,
                dedupe,
                state,
                outputs,
                resume: resume.clone(),
                progress: std::sync::atomic::AtomicU64::new(0),
                seen: std::sync::Mutex::new(std::collections::HashMap::new()),
                plugin: handle.clone(),
                store: store.clone(),
                dead_letter,
                failure: hub.failure.clone(),
                mode: hub.mode,
                max_batch_size: hub.max_batch_size,
                max_wait: Duration::from_millis(hub.max_wait_ms),
                stats: stats.clone(),
                instance_id: instance_id.clone(),
                ownership_check: Duration::from_millis(hub.balancing.ownership_check_ms),
            });
            hub_handles.push(HubHandle {
                outputs: hub.output.iter().map(|o| o.name.clone()).collect(),
                tenant: hub.tenant_name().to_string(),
                event_hub: hub.name.clone(),
                consumer_group: hub.consumer_group.clone(),
                namespace: target.namespace.clone(),
                base_digest,
                follow_every: Duration::from_millis(hub.balancing.update_interval_ms.max(100)),
                replay_events: hub.swap.replay_events.clone(),
                watch: hub.swap.watch,
                target: target.clone(),
                properties: tokio::sync::Mutex::new(PositionsCache::default()),
                resume,
                plugin: handle,
                spec,
                previous: Mutex::new(previous),
                rollback: hub.rollback,
                history: Mutex::new(Vec::new()),
                swapping: tokio::sync::Mutex::new(()),
            });
            targets.push((hub.clone(), target.clone()));
            setups.push(setup);
        }
        // Every plugin loaded and started its `init` above: only now claim partitions, so a
        // plugin that cannot start stops the host before it owns anything.
        let mut hubs = Vec::new();
        for ((hub, target), setup) in targets.iter().zip(&setups) {
            hubs.push(tokio::spawn(consume(
                hub.clone(),
                target.clone(),
                store.clone(),
                setup.clone(),
                instance_id.clone(),
                stop_rx.clone(),
            )));
        }
        let handle = HostHandle {
            inner: Arc::new(Shared {
                instance_id,
                stats,
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
        for (index, record, sha256) in &to_judge {
            handle.judge_rest_of_window(&handle.inner.hubs[*index], record, sha256);
        }
        handle.follow(stop_rx.clone());
        handle.watch_files(stop_rx.clone());
        handle.sample(stop_rx.clone());
        let host = Host {
            handle,
            config,
            options,
            embedded,
            embedded_strings,
            store,
            targets,
            hubs,
            stop_tx,
        };
        host.send_file(report).await;
        Ok(host)
    }

    /// The live view and controls, for the admin API.
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
            let conn = match (&hub.connection_string, &self.embedded) {
                (Some(c), _) => crate::config::with_entity(c, &hub.name),
                (None, Some(running)) if hub.embedded => running.connection_string(&hub.name),
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
        mut shutdown: watch::Receiver<bool>,
        report: &mut (dyn FnMut(&str) + Send),
    ) -> Result<RunReport, RunError> {
        let Host {
            handle,
            config,
            options,
            embedded,
            embedded_strings,
            store,
            targets,
            hubs,
            stop_tx,
        } = self;
        let stats = handle.inner.stats.clone();
        let mut ticker =
            tokio::time::interval(Duration::from_secs(config.summary_interval_secs.max(1)));
        ticker.tick().await;
        let mut idle_check = tokio::time::interval(Duration::from_secs(1));
        // The idle check's clients, opened on first use and kept for the run.
        let mut watchers: Vec<Option<azure_messaging_eventhubs::ConsumerClient>> =
            targets.iter().map(|_| None).collect();
        let mut previous = stats.snapshot();
        let mut last_tick = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.wait_for(|s| *s) => {
                    report("stopping: finishing in-flight batches and writing checkpoints");
                    break;
                }
                _ = ticker.tick(), if config.summary_interval_secs > 0 => {
                    let now = stats.snapshot();
                    report(&now.line(&previous, last_tick.elapsed()));
                    previous = now;
                    last_tick = tokio::time::Instant::now();
                }
                _ = idle_check.tick(), if options.exit_when_idle.is_some() => {
                    let idle = options.exit_when_idle.unwrap_or_default();
                    if stats.idle_for() >= idle && caught_up(&targets, &mut watchers, store.as_ref(), &stats).await {
                        report("caught up: every partition is handled and checkpointed; stopping");
                        break;
                    }
                }
            }
            // Hub tasks only end on stop; one that ended early has failed for good.
            if hubs.iter().any(|h| h.is_finished()) {
                handle.inner.ready.store(false, Ordering::Release);
            }
            if hubs.iter().all(|h| h.is_finished()) {
                break;
            }
        }
        handle.inner.ready.store(false, Ordering::Release);
        let _ = stop_tx.send(true);
        for hub in hubs {
            let _ = hub.await;
        }
        for watcher in watchers.into_iter().flatten() {
            let _ = watcher.close().await;
        }
        let snapshot = stats.snapshot();
        if let Some(running) = embedded {
            running.shutdown().await;
        }
        Ok(RunReport {
            snapshot,
            elapsed: stats.elapsed(),
            busy: stats.busy_span(),
            instance_id: handle.inner.instance_id.clone(),
            embedded: embedded_strings,
        })
    }
}

/// The producers of an event hub's `[[eventhub.output]]`s.
async fn open_outputs(
    hub: &EventHubConfig,
    embedded: Option<&hubwasm_hub::RunningHub>,
) -> Result<crate::effects::outputs::Outputs, RunError> {
    let mut list = Vec::new();
    for output in &hub.output {
        let target = if let Some(cs) = &output.connection_string {
            ConnectionString::parse(&crate::config::with_entity(cs, output.target()))?.target()
        } else if let Some(namespace) = &output.namespace {
            EventHubTarget::entra(namespace, output.target())?
        } else {
            let running =
                embedded.ok_or_else(|| RunError::Embedded("no [embedded] endpoint".into()))?;
            ConnectionString::parse(&running.connection_string(output.target()))?.target()
        };
        list.push(crate::effects::outputs::Output {
            name: output.name.clone(),
            event_hub: target.event_hub.clone(),
            producer: target.producer().await?,
        });
    }
    Ok(crate::effects::outputs::Outputs { list })
}
