//! Where every partition of a consumed event hub stands (owner, checkpoint, last enqueued,
//! lag), the counters' history the status page charts, and whether everything is caught up.

use std::time::Duration;

use crate::shutdown::Shutdown;

use super::{now_ms, HostHandle, HubHandle};
use crate::checkpoint::{checkpointed, Store};
use crate::config::EventHubConfig;
use crate::connection::EventHubTarget;
use crate::processor::owned::Owned;

#[derive(Default)]
pub(super) struct PositionsCache {
    consumer: Option<azure_messaging_eventhubs::ConsumerClient>,
    last: Option<(tokio::time::Instant, Vec<PartitionPosition>)>,
}

/// Where one partition of an event hub stands, across every host of the consumer group.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PartitionPosition {
    pub partition: String,
    /// The instance that owns it, as the checkpoint store records.
    pub owner: Option<String>,
    /// Seconds since the owner last renewed its claim.
    pub owner_age_s: Option<i64>,
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
/// How long a partition-properties answer is reused.
const POSITIONS_FRESH: Duration = Duration::from_secs(2);

impl HostHandle {
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

    pub(super) fn sample(&self, mut stop: Shutdown) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.wait() => return,
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
        let group = &hub.consumer_group;
        let mut opening = None;
        if cache.consumer.is_none() {
            match hub.target.consumer(group).await {
                Ok(consumer) => cache.consumer = Some(consumer),
                Err(err) => opening = Some(format!("event hub: {err}")),
            }
        }
        let read = read_positions(
            self.inner.store.as_ref(),
            cache.consumer.as_ref(),
            &hub.namespace,
            &hub.event_hub,
            group,
        )
        .await;
        if read.hub_error.is_some() {
            cache.consumer = None; // reopen next time
        }
        let problem = read.hub_error.or(opening).or(read.store_error);
        for p in &read.positions {
            if let Some(lag) = p.lag {
                self.inner
                    .stats
                    .set_lag(&hub.event_hub, &hub.consumer_group, &p.partition, lag);
            }
        }
        if problem.is_none() {
            cache.last = Some((tokio::time::Instant::now(), read.positions.clone()));
        }
        (read.positions, problem)
    }
}

/// What [`read_positions`] found; the positions are partial when either read failed.
pub(crate) struct Positions {
    pub positions: Vec<PartitionPosition>,
    /// The checkpoint store did not answer.
    pub store_error: Option<String>,
    /// Event Hubs did not answer on `consumer` (open another next time).
    pub hub_error: Option<String>,
}

/// Every partition of a consumer group: owner, checkpoint, last enqueued event and lag, from
/// the checkpoint store and (with a `consumer`) Event Hubs. Without Event Hubs' answer the
/// partitions are those the store knows, with no last event and no lag.
pub(crate) async fn read_positions(
    store: &dyn Store,
    consumer: Option<&azure_messaging_eventhubs::ConsumerClient>,
    ns: &str,
    name: &str,
    group: &str,
) -> Positions {
    let (mut store_error, mut hub_error) = (None, None);
    let now = azure_core::time::OffsetDateTime::now_utc();
    let owners: std::collections::HashMap<String, (String, Option<i64>)> =
        match store.list_ownerships(ns, name, group).await {
            Ok(list) => list
                .into_iter()
                .filter_map(|o| {
                    let age = o.last_modified_time.map(|t| (now - t).whole_seconds());
                    Some((o.partition_id, (o.owner_id?, age)))
                })
                .filter(|(_, (owner, _))| !owner.is_empty())
                .collect(),
            Err(err) => {
                store_error = Some(format!("checkpoint store: {err}"));
                Default::default()
            }
        };
    let checkpoints = match checkpointed(store, ns, name, group).await {
        Ok(map) => map,
        Err(err) => {
            store_error = Some(format!("checkpoint store: {err}"));
            Default::default()
        }
    };
    let mut partitions: Vec<(String, Option<LastEnqueued>)> = Vec::new();
    if let Some(consumer) = consumer {
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
            Err(err) => hub_error = Some(format!("event hub: {err}")),
        }
    }
    if partitions.is_empty() {
        let mut ids: Vec<String> = owners.keys().chain(checkpoints.keys()).cloned().collect();
        ids.sort();
        ids.dedup();
        partitions = ids.into_iter().map(|id| (id, None)).collect();
    }
    partitions.sort_by_key(|(id, _)| (id.len(), id.clone()));
    let positions = partitions
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
            let (owner, owner_age_s) = match owners.get(&id).cloned() {
                Some((owner, age)) => (Some(owner), age),
                None => (None, None),
            };
            PartitionPosition {
                owner,
                owner_age_s,
                checkpoint,
                last_enqueued: props.and_then(|(last, empty, _)| (!empty).then_some(last)),
                lag,
                partition: id,
            }
        })
        .collect();
    Positions {
        positions,
        store_error,
        hub_error,
    }
}

/// Every partition of every hub has a checkpoint at its last enqueued event. `watchers` holds
/// one client per hub, opened when missing; a client whose call fails is dropped and reopened on
/// the next check.
pub(super) async fn caught_up(
    targets: &[(EventHubConfig, EventHubTarget)],
    watchers: &mut [Option<azure_messaging_eventhubs::ConsumerClient>],
    store: &dyn Store,
    owned: &Owned,
) -> bool {
    if owned.is_empty() {
        return false;
    }
    for ((hub, target), watcher) in targets.iter().zip(watchers.iter_mut()) {
        if watcher.is_none() {
            match target.consumer(&hub.consumer_group).await {
                Ok(consumer) => *watcher = Some(consumer),
                Err(_) => return false,
            }
        }
        let consumer = watcher.as_ref().expect("opened above");
        let Ok(props) = consumer.get_eventhub_properties().await else {
            *watcher = None;
            return false;
        };
        let Ok(done) = checkpointed(
            store,
            &target.namespace,
            &target.event_hub,
            &hub.consumer_group,
        )
        .await
        else {
            return false;
        };
        for id in &props.partition_ids {
            let Ok(p) = consumer.get_partition_properties(id).await else {
                *watcher = None;
                return false;
            };
            if !p.is_empty && done.get(id).copied() != Some(p.last_enqueued_sequence_number) {
                return false;
            }
        }
    }
    true
}
