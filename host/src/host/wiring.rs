//! Everything one event hub needs, built from its config before any partition is claimed: its
//! plugin (configured, or the version its consumer group runs since a swap), dead-letter sink,
//! dedupe and state stores and outputs, wired into the partitions' setup and the hub's handle.
//! Also the host-wide parts: the embedded endpoint and the checkpoint store.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{HubHandle, RunError};
use crate::checkpoint::local::LocalCheckpointStore;
use crate::checkpoint::{GroupName, Store, VersionRecord};
use crate::config::{
    CheckpointConfig, DeadLetterConfig, EventHubAddress, EventHubConfig, RunConfig,
};
use crate::connection::{ConnectionString, EventHubTarget};
use crate::plugin::{Plugin, PluginHandle, PluginSpec, Runtime};
use crate::processor::partition::PartitionSetup;
use crate::processor::stats::Stats;
use crate::sink::{DeadLetterSink, DirectorySink, EventHubSink};
use crate::tenant::Tenant;

/// What the event hubs of one host share while they are wired.
pub(super) struct Wiring<'a> {
    pub config: &'a RunConfig,
    pub runtime: &'a Runtime,
    pub store: &'a Arc<dyn Store>,
    pub registries: &'a crate::registry::Registries,
    pub tenants: &'a crate::tenant::Tenants,
    pub stats: &'a Arc<Stats>,
    pub owned: &'a Arc<crate::processor::owned::Owned>,
    pub instance_id: &'a str,
    pub embedded: Option<&'a hubwasm_hub::RunningHub>,
    /// One SQLite connection (or Redis client) per dedupe and state store, shared by the event
    /// hubs that name the same one.
    pub stores: crate::effects::stores::Stores,
}

/// One event hub, ready to consume.
pub(super) struct Wired {
    pub hub: EventHubConfig,
    pub target: EventHubTarget,
    pub setup: Arc<PartitionSetup>,
    pub handle: HubHandle,
    /// A version the host starts with while it is still within its rollback window: judged
    /// here too once the host runs (its record and sha256).
    pub judge: Option<(VersionRecord, String)>,
}

impl Wiring<'_> {
    /// Wire one event hub: a plugin that cannot start, a sink or store that cannot open, fail
    /// here, before the host claims anything.
    pub async fn wire(
        &mut self,
        hub: &EventHubConfig,
        report: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Wired, RunError> {
        let target = target(hub, self.embedded)?;
        let tenant = self
            .tenants
            .get(hub.tenant_name())
            .cloned()
            .unwrap_or_else(|| Arc::new(Tenant::new(hub.tenant_name(), Default::default())));
        let spec = self.spec(hub, &tenant, report).await?;
        let plugin = self
            .runtime
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
        let base_digest = plugin.digest().to_string();
        let (plugin, previous, judge) = self
            .group_version(hub, &target, &spec, plugin, report)
            .await?;
        let dead_letter = open_dead_letter(&hub.dead_letter).await?;
        let handle = PluginHandle::new(plugin);
        let (resume, _) = tokio::sync::broadcast::channel(16);
        self.stats
            .set_tenant(&hub.name, &hub.consumer_group, hub.tenant_name());
        let dedupe = self.dedupe(hub, &target, report)?;
        let state = self.state(hub, report)?;
        let outputs = Arc::new(open_outputs(hub, self.embedded).await?);
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
            store: self.store.clone(),
            dead_letter,
            failure: hub.failure.clone(),
            mode: hub.mode,
            max_batch_size: hub.max_batch_size,
            max_wait: hub.max_wait,
            stats: self.stats.clone(),
            owned: self.owned.clone(),
            instance_id: self.instance_id.to_string(),
            ownership_check: hub.balancing.ownership_check,
        });
        let handle = HubHandle {
            outputs: hub.output.iter().map(|o| o.name.clone()).collect(),
            tenant: hub.tenant_name().to_string(),
            event_hub: hub.name.clone(),
            consumer_group: hub.consumer_group.clone(),
            namespace: target.namespace.clone(),
            base_digest,
            follow_every: hub
                .balancing
                .update_interval
                .max(Duration::from_millis(100)),
            replay_events: hub.swap.replay_events.clone(),
            watch: hub.swap.watch,
            target: target.clone(),
            properties: tokio::sync::Mutex::new(Default::default()),
            resume,
            plugin: handle,
            spec,
            previous: Mutex::new(previous),
            rollback: hub.rollback,
            history: Mutex::new(Vec::new()),
            swapping: tokio::sync::Mutex::new(()),
        };
        Ok(Wired {
            hub: hub.clone(),
            target,
            setup,
            handle,
            judge,
        })
    }

    /// What the configured plugin is loaded with: its bytes (a file, or pulled from a registry
    /// and pinned to the digest the reference names now), config, limits and grants.
    async fn spec(
        &self,
        hub: &EventHubConfig,
        tenant: &Tenant,
        report: &mut (dyn FnMut(&str) + Send),
    ) -> Result<PluginSpec, RunError> {
        let mut spec = match crate::registry::as_reference(&hub.plugin) {
            Some(text) => {
                let fail = |e: crate::registry::RegistryError| {
                    RunError::Store(format!("event hub {}: {e}", hub.name))
                };
                let reference = crate::registry::OciRef::parse(text).map_err(fail)?;
                let pulled = self
                    .registries
                    .pull(&reference, self.config.max_component_bytes())
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
        spec.allowed_outbound_hosts = hub.allowed_outbound_hosts.clone();
        spec.config = self.config.plugin_config_of(hub)?;
        if let Some(limits) = hub.limits {
            spec.limits = limits;
        }
        Ok(spec)
    }

    /// After a hot swap the consumer group runs the version recorded beside its checkpoints:
    /// start with it, so every host of the group runs the same one. The plugin to run, the one
    /// a rollback returns to, and the record to judge if it is still on probation.
    #[allow(clippy::type_complexity)]
    async fn group_version(
        &self,
        hub: &EventHubConfig,
        target: &EventHubTarget,
        spec: &PluginSpec,
        plugin: Plugin,
        report: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(Plugin, Option<Arc<Plugin>>, Option<(VersionRecord, String)>), RunError> {
        let base_digest = plugin.digest().to_string();
        let record = self
            .store
            .load_version(GroupName {
                namespace: &target.namespace,
                event_hub: &hub.name,
                consumer_group: &hub.consumer_group,
            })
            .await;
        match record {
            Ok(Some(record)) if record.base_digest != base_digest => {
                report(&format!(
                    "event hub {}: ignoring the group's recorded version {} ({}): it was \
                     swapped in over another configured plugin; the config's plugin runs",
                    hub.name, record.path, record.reason
                ));
                Ok((plugin, None, None))
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
                Ok((plugin, None, None))
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
                    self.runtime,
                    self.store.as_ref(),
                    group,
                    &record,
                    spec,
                    self.config.max_component_bytes(),
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
                let judge = (record.clone(), recorded.sha256().to_string());
                Ok((recorded, Some(Arc::new(plugin)), Some(judge)))
            }
            Ok(_) => Ok((plugin, None, None)),
            Err(err) => {
                report(&format!(
                    "event hub {}: cannot read the group's plugin version ({err}); running \
                     the configured plugin",
                    hub.name
                ));
                Ok((plugin, None, None))
            }
        }
    }

    /// `[eventhub.dedupe]`: keys shared by the hosts of the consumer group.
    fn dedupe(
        &mut self,
        hub: &EventHubConfig,
        target: &EventHubTarget,
        report: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Option<Arc<crate::effects::dedupe::Dedupe>>, RunError> {
        let Some(d) = &hub.dedupe else {
            return Ok(None);
        };
        let scope = format!("{}/{}/{}", target.namespace, hub.name, hub.consumer_group);
        let dedupe = self
            .stores
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
            d.ttl.as_secs()
        ));
        Ok(Some(Arc::new(dedupe)))
    }

    /// `[eventhub.state]`: the store, `max_value_bytes` and `max_bytes`.
    #[allow(clippy::type_complexity)]
    fn state(
        &mut self,
        hub: &EventHubConfig,
        report: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Option<(Arc<dyn crate::effects::state::StateStore>, usize, usize)>, RunError> {
        let Some(c) = &hub.state else {
            return Ok(None);
        };
        let store = self
            .stores
            .state(c)
            .map_err(|e| RunError::Store(e.to_string()))?;
        report(&format!(
            "event hub {} ({}): plugin state in {}",
            hub.name,
            hub.consumer_group,
            store.describe()
        ));
        Ok(Some((store, c.max_value_bytes, c.max_bytes)))
    }
}

/// Start the embedded endpoint if the config has one; every consumer group the config reads
/// an embedded event hub with exists there.
pub(super) async fn start_embedded(
    config: &RunConfig,
    report: &mut (dyn FnMut(&str) + Send),
) -> Result<Option<hubwasm_hub::RunningHub>, RunError> {
    let Some(e) = &config.embedded else {
        return Ok(None);
    };
    let mut hub_config = match &e.config {
        Some(path) => {
            hubwasm_hub::HubConfig::load(path).map_err(|err| RunError::Embedded(err.to_string()))?
        }
        None => hubwasm_hub::HubConfig::default(),
    };
    hub_config.listen = e
        .listen
        .unwrap_or_else(|| "127.0.0.1:0".parse().expect("valid address"));
    if let Some(data) = &e.data {
        hub_config.data_dir = data.clone();
    }
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
    Ok(Some(running))
}

/// Build the configured checkpoint store.
pub async fn open_store(config: &CheckpointConfig) -> Result<Arc<dyn Store>, RunError> {
    match config {
        CheckpointConfig::Local { path } => Ok(Arc::new(LocalCheckpointStore::new(path))),
        CheckpointConfig::Blob(blob) => crate::checkpoint::open_blob(blob)
            .await
            .map_err(RunError::Store),
    }
}

/// Where an event hub is, given the embedded endpoint if one runs.
pub(crate) fn target(
    hub: &EventHubConfig,
    embedded: Option<&hubwasm_hub::RunningHub>,
) -> Result<EventHubTarget, RunError> {
    address_target(hub.address(), &hub.name, embedded)
}

/// Where `address` leads, for the event hub `name`.
fn address_target(
    address: &EventHubAddress,
    name: &str,
    embedded: Option<&hubwasm_hub::RunningHub>,
) -> Result<EventHubTarget, RunError> {
    match address {
        EventHubAddress::ConnectionString { parsed, .. } => Ok(parsed.target()),
        EventHubAddress::Entra { namespace } => Ok(EventHubTarget::entra(namespace, name)?),
        EventHubAddress::Embedded => {
            let running =
                embedded.ok_or_else(|| RunError::Embedded("no [embedded] endpoint".into()))?;
            Ok(ConnectionString::parse(&running.connection_string(name))?.target())
        }
    }
}

/// Where an event hub's dead letters go.
async fn open_dead_letter(config: &DeadLetterConfig) -> Result<Arc<dyn DeadLetterSink>, RunError> {
    Ok(match config {
        DeadLetterConfig::Directory { path } => Arc::new(DirectorySink::new(path)),
        DeadLetterConfig::EventHub {
            parsed: Some(conn), ..
        } => Arc::new(EventHubSink::new(
            conn.producer().await?,
            conn.entity_path.clone(),
        )),
        DeadLetterConfig::EventHub { parsed: None, .. } => {
            return Err(RunError::Store(
                "dead-letter event hub: its connection string was not parsed (load the config \
                 with RunConfig::load)"
                    .into(),
            ))
        }
        DeadLetterConfig::Blob(blob) => crate::sink::blob::open(blob)
            .await
            .map_err(RunError::Store)?,
    })
}

/// The producers of an event hub's `[[eventhub.output]]`s.
async fn open_outputs(
    hub: &EventHubConfig,
    embedded: Option<&hubwasm_hub::RunningHub>,
) -> Result<crate::effects::outputs::Outputs, RunError> {
    let mut list = Vec::new();
    for output in &hub.output {
        let target = address_target(output.address(), output.target(), embedded)?;
        list.push(crate::effects::outputs::Output {
            name: output.name.clone(),
            event_hub: target.event_hub.clone(),
            producer: target.producer().await?,
        });
    }
    Ok(crate::effects::outputs::Outputs { list })
}
