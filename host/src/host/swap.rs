//! Hot swap: a new version loaded, checked on the sample events, stored for the group and
//! swapped in between batches; rollback to the version it replaced; resuming a halted
//! partition.

use std::sync::Arc;
use std::time::SystemTime;

use super::{HostHandle, HubHandle, SwapError};
use crate::checkpoint::VersionRecord;

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
    pub(super) async fn swap_locked(
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
            crate::artifact::save(self.inner.store.as_ref(), hub.group(), sha256, bytes)
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
            .owned
            .of(&hub.event_hub, &hub.consumer_group)
            .into_iter()
            .find(|o| o.partition == partition)
            .map(|o| o.state);
        match state {
            Some(crate::processor::owned::PartitionState::Halted) => {
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
    pub(super) async fn check_replay(
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

    pub(super) async fn roll_back(
        &self,
        hub: &HubHandle,
        reason: String,
    ) -> Result<SwapRecord, SwapError> {
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
    pub(super) async fn put(
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
            .owned
            .of(&hub.event_hub, &hub.consumer_group)
            .len();
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
            if let Err(err) = self.inner.store.save_version(hub.group(), &version).await {
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
}

impl HubHandle {
    /// The consumer group as the store names it.
    pub(super) fn group(&self) -> crate::checkpoint::GroupName<'_> {
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
