//! `hubwasm run`: the load-balanced consumer host.
//!
//! For each configured event hub, the SDK's `EventProcessor` balances partitions between all
//! host instances through the checkpoint store; every partition this instance owns gets a task
//! ([`partition::serve`]) that calls the plugin and checkpoints only past successes.
//!
//! - [`consume`]: the SDK supervisor of one event hub (restart, stall watchdog, release).
//! - [`partition`]: one owned partition: batches, verdicts, retries, dead letters, halt.
//! - [`checkpointer`]: background checkpoint writes that never block processing.
//! - [`stats`]: counters for the one-line summary.

pub mod batch;
pub mod checkpointer;
pub mod fence;
pub mod outcome;
pub mod owned;
pub mod partition;
pub mod reader;
pub mod setup;
pub mod stats;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::shutdown::Shutdown;
use azure_messaging_eventhubs::models::StartPositions;
use azure_messaging_eventhubs::{EventProcessor, ProcessorStrategy, StartLocation, StartPosition};

use crate::backoff::Backoff;
use crate::checkpoint::resilient::Resilient;
use crate::checkpoint::{checkpointed, CheckpointStore, Ownership, Store};
use crate::config::{EventHubConfig, Start, Strategy};
use crate::connection::EventHubTarget;
use crate::event::PartitionContext;
use crate::plugin::Limits;
use setup::PartitionSetup;
use stats::Stats;

/// A time as the SDK's whole milliseconds.
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A processor whose running partitions received and processed nothing for this long, while
/// Event Hubs holds events past their checkpoints, is rebuilt on a new connection: after an
/// endpoint restart the SDK's receivers can wait forever without failing.
const STALL_AFTER: Duration = Duration::from_secs(40);
const STALL_CHECK: Duration = Duration::from_secs(10);

/// How long a stopping processor, and the release of its ownerships, may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Receivers failing at once this often within [`DEAD_START_WINDOW`] rebuild the processor.
const DEAD_STARTS_TO_RECONNECT: usize = 3;
const DEAD_START_WINDOW: Duration = Duration::from_secs(30);

/// Consume one event hub until `stop`: run the SDK's processor, serve each partition it hands
/// out, restart the processor if it fails, and release ownership at the end.
/// A processor that ran this long without a receiver saying its group is missing has found it.
const GROUP_FOUND_AFTER: Duration = Duration::from_secs(10);

/// Why a processor was stopped.
enum Stopped {
    /// The host is stopping.
    Host,
    /// Event Hubs says the consumer group does not exist: tried again at the balancing
    /// interval, said once.
    GroupMissing,
    /// Anything else: restarted with backoff.
    Failed(String),
}

pub(crate) async fn consume(
    hub: EventHubConfig,
    target: EventHubTarget,
    store: Arc<dyn Store>,
    setup: Arc<PartitionSetup>,
    instance_id: String,
    mut stop: Shutdown,
) {
    let stats = setup.stats.clone();
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    'restart: while !stop.is_set() {
        // Opening is bounded (`connection::OPEN_TIMEOUT`); a stop need not wait for it.
        let built = tokio::select! {
            built = build_processor(&hub, &target, &store, &stats, &instance_id) => built,
            _ = stop.wait() => break 'restart,
        };
        let processor = match built {
            Ok(p) => p,
            Err(err) => {
                let wait = backoff.next_delay();
                tracing::error!(hub = %hub.name, error = %err, retry_in_s = wait.as_secs(), "Cannot start the event processor; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.wait() => break 'restart,
                }
                continue;
            }
        };
        backoff.reset();
        let mut run = {
            let p = processor.clone();
            tokio::spawn(async move { p.run().await })
        };
        let (partitions_stop, partitions_shutdown) = crate::shutdown::channel();
        let readers = reader::Readers::start(&hub.name);
        let mut partitions = tokio::task::JoinSet::new();
        let mut dead_starts: Vec<tokio::time::Instant> = Vec::new();
        let running_since = tokio::time::Instant::now();
        let mut watchdog = tokio::time::interval(STALL_CHECK);
        watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_progress = setup.progress.load(std::sync::atomic::Ordering::Relaxed);
        let mut still_since = tokio::time::Instant::now();
        // A plugin call may take its whole limit without the partition receiving anything.
        let stall_after =
            STALL_AFTER.max(2 * hub.limits.map_or(Limits::DEFAULT_TIMEOUT, |l| l.timeout));
        let stopped = loop {
            // Set when the partitions have been still long enough to ask Event Hubs (outside
            // the select: its stop branch holds a guard that must not live across an await).
            let mut check_stall = false;
            tokio::select! {
                _ = watchdog.tick() => {
                    // Running a while without being told the group is missing: it exists now.
                    if running_since.elapsed() >= GROUP_FOUND_AFTER
                        && stats.problem(&hub.name, &hub.consumer_group).is_some()
                    {
                        stats.set_problem(&hub.name, &hub.consumer_group, None);
                        tracing::info!(hub = %hub.name, consumer_group = %hub.consumer_group, "The consumer group is there now; consuming");
                    }
                    let progress = setup.progress.load(std::sync::atomic::Ordering::Relaxed);
                    if progress != last_progress {
                        last_progress = progress;
                        still_since = tokio::time::Instant::now();
                    } else if still_since.elapsed() >= stall_after {
                        still_since = tokio::time::Instant::now();
                        check_stall = true;
                    }
                }
                client = processor.next_partition_client() => match client {
                    Ok(client) => {
                        let ctx = PartitionContext {
                            namespace: target.namespace.clone(),
                            event_hub: target.event_hub.clone(),
                            consumer_group: hub.consumer_group.clone(),
                            partition_id: client.get_partition_id().to_string(),
                        };
                        let events = readers.read(client, 8);
                        // Everything the partition logs carries its tenant (the plugin's own log lines too).
                        let span = tracing::info_span!("partition", tenant = %setup.tenant.name);
                        partitions.spawn(tracing::Instrument::instrument(
                            partition::serve(events, ctx, setup.clone(), partitions_shutdown.clone()),
                            span,
                        ));
                    }
                    Err(err) => break Stopped::Failed(err.to_string()),
                },
                Some(ended) = partitions.join_next(), if !partitions.is_empty() => {
                    if matches!(ended, Ok(partition::Ended::GroupMissing)) {
                        break Stopped::GroupMissing;
                    }
                    // Receivers that fail before delivering anything, again and again, mean
                    // the connection under this processor is gone (the endpoint restarted, the
                    // network dropped): the SDK would hand out dead receivers forever, so
                    // rebuild the processor on a new connection.
                    if matches!(ended, Ok(partition::Ended::FailedAtOnce)) {
                        let now = tokio::time::Instant::now();
                        dead_starts.retain(|t| now.duration_since(*t) < DEAD_START_WINDOW);
                        dead_starts.push(now);
                        if dead_starts.len() >= DEAD_STARTS_TO_RECONNECT {
                            break Stopped::Failed(format!(
                                "{} partition receivers failed before delivering an event within \
                                 {DEAD_START_WINDOW:?}; reconnecting",
                                dead_starts.len()
                            ));
                        }
                    }
                }
                result = &mut run => break Stopped::Failed(match result {
                    Ok(Ok(())) => "the processor's run loop ended".to_string(),
                    Ok(Err(err)) => err.to_string(),
                    Err(err) => err.to_string(),
                }),
                _ = stop.wait() => break Stopped::Host,
            }
            if check_stall {
                if let Some(waiting) = stalled(&hub, &target, store.as_ref(), &setup).await {
                    break Stopped::Failed(format!(
                        "nothing received for {stall_after:?} while {waiting} events wait past \
                         what the running partitions received; reconnecting"
                    ));
                }
            }
        };
        // Stop this processor's partitions: each finishes its batch and checkpoints.
        partitions_stop.stop();
        while partitions.join_next().await.is_some() {}
        if tokio::time::timeout(CLOSE_TIMEOUT, processor.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(hub = %hub.name, "The event processor did not close within {CLOSE_TIMEOUT:?}; leaving it");
        }
        run.abort();
        // Wait until the load balancer is gone, so no renewal of its starts after the release.
        let _ = run.await;
        match stopped {
            Stopped::GroupMissing => {
                // A fault of the deployment: said once, shown in /status and /readyz, and
                // tried again at the balancing interval until the group exists.
                let wait = hub.balancing.update_interval.max(Duration::from_secs(1));
                let problem = format!(
                    "consumer group `{}` does not exist on event hub `{}` ({}): create it \
                     (Azure portal, or `az eventhubs eventhub consumer-group create --name {} \
                     --eventhub-name {} ...`) or fix consumer_group in the config; trying again \
                     every {:.0} s",
                    hub.consumer_group,
                    hub.name,
                    target.endpoint(),
                    hub.consumer_group,
                    hub.name,
                    wait.as_secs_f64()
                );
                if stats.problem(&hub.name, &hub.consumer_group).is_none() {
                    tracing::error!(hub = %hub.name, consumer_group = %hub.consumer_group, "{problem}");
                }
                stats.set_problem(&hub.name, &hub.consumer_group, Some(problem));
                backoff.reset();
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.wait() => break 'restart,
                }
            }
            Stopped::Failed(err) => {
                let wait = backoff.next_delay();
                tracing::error!(hub = %hub.name, error = %err, retry_in_s = wait.as_secs(), "Event processor stopped; restarting it");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.wait() => break 'restart,
                }
            }
            Stopped::Host => break 'restart,
        }
    }
    let released = release(
        &store,
        &target.namespace,
        &target.event_hub,
        &hub.consumer_group,
        &instance_id,
    );
    if tokio::time::timeout(CLOSE_TIMEOUT, released).await.is_err() {
        tracing::warn!(hub = %hub.name, "The checkpoint store did not answer the release within {CLOSE_TIMEOUT:?}; the ownerships expire by themselves");
    }
}

/// Events Event Hubs holds past what this host's running partitions of `hub` received (or,
/// for one that received nothing yet, past its checkpoint), asked on a connection of its own;
/// `None` when nothing waits or it cannot tell. Events received but not yet checkpointed (the
/// store is down) do not count: those are not a stall.
async fn stalled(
    hub: &EventHubConfig,
    target: &EventHubTarget,
    store: &dyn Store,
    setup: &PartitionSetup,
) -> Option<i64> {
    let running: Vec<String> = setup
        .owned
        .of(&target.event_hub, &hub.consumer_group)
        .into_iter()
        .filter(|o| o.state == owned::PartitionState::Running)
        .map(|o| o.partition)
        .collect();
    if running.is_empty() {
        return None;
    }
    // Without the store (it may be down) what was received still tells.
    let checkpoints = checkpointed(
        store,
        &target.namespace,
        &target.event_hub,
        &hub.consumer_group,
    )
    .await
    .unwrap_or_default();
    let consumer = target.consumer(&hub.consumer_group).await.ok()?;
    let mut waiting = 0i64;
    for id in &running {
        let Ok(p) = consumer.get_partition_properties(id).await else {
            let _ = consumer.close().await;
            return None;
        };
        if p.is_empty {
            continue;
        }
        let seen = setup
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .copied();
        // Neither received nor checkpointed: where it starts (earliest, latest, a time) is the
        // config's, so nothing tells what it should have received.
        let Some(done) = seen.max(checkpoints.get(id).copied()) else {
            continue;
        };
        waiting =
            waiting.saturating_add(p.last_enqueued_sequence_number.saturating_sub(done).max(0));
    }
    let _ = consumer.close().await;
    (waiting > 0).then_some(waiting)
}

async fn build_processor(
    hub: &EventHubConfig,
    target: &EventHubTarget,
    store: &Arc<dyn Store>,
    stats: &Arc<Stats>,
    instance_id: &str,
) -> Result<Arc<EventProcessor>, String> {
    let consumer = target
        .consumer_with_owner(&hub.consumer_group, instance_id)
        .await
        .map_err(|e| e.to_string())?;
    let strategy = match hub.balancing.strategy {
        Strategy::Greedy => ProcessorStrategy::Greedy,
        Strategy::Balanced => ProcessorStrategy::Balanced,
    };
    let location = match hub.start {
        Start::Earliest => StartLocation::Earliest,
        Start::Latest => StartLocation::Latest,
    };
    let resilient: Arc<dyn CheckpointStore + Send + Sync> =
        Arc::new(Resilient::new(store.clone(), stats.clone()));
    EventProcessor::builder()
        .with_load_balancing_strategy(strategy)
        .with_update_interval(azure_core::time::Duration::milliseconds(millis(
            hub.balancing.update_interval,
        )))
        .with_partition_expiration_duration(azure_core::time::Duration::milliseconds(millis(
            hub.balancing.ownership_expiry,
        )))
        .with_prefetch(hub.balancing.prefetch)
        .with_start_positions(StartPositions {
            per_partition: HashMap::new(),
            default: StartPosition {
                location,
                inclusive: false,
            },
        })
        .build(consumer, resilient)
        .await
        .map_err(|e| e.to_string())
}

/// Give up this instance's ownerships (owner id "" as the official processors write it), so
/// other instances take the partitions at once instead of after the expiry.
///
/// A renewal the stopped load balancer had already sent may land just before the release and
/// change the etags it read, so a lost release claim is retried on fresh records a few times.
async fn release(
    store: &Arc<dyn Store>,
    namespace: &str,
    event_hub: &str,
    consumer_group: &str,
    instance_id: &str,
) {
    let mut released = 0;
    for attempt in 1..=5 {
        let owned: Vec<Ownership> = match store
            .list_ownerships(namespace, event_hub, consumer_group)
            .await
        {
            Ok(list) => list
                .into_iter()
                .filter(|o| o.owner_id.as_deref() == Some(instance_id))
                .map(|mut o| {
                    o.owner_id = Some(String::new());
                    o
                })
                .collect(),
            Err(err) => {
                tracing::warn!(hub = %event_hub, error = %err, "Cannot list ownerships to release them; they expire by themselves");
                return;
            }
        };
        if owned.is_empty() {
            break;
        }
        match store.claim_ownership(&owned).await {
            Ok(claimed) if claimed.len() == owned.len() => {
                released += claimed.len();
                break;
            }
            Ok(claimed) => {
                released += claimed.len();
                tracing::debug!(hub = %event_hub, attempt, lost = owned.len() - claimed.len(), "Release raced a renewal; retrying");
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            Err(err) => {
                tracing::warn!(hub = %event_hub, error = %err, "Cannot release ownership; it expires by itself");
                return;
            }
        }
    }
    if released > 0 {
        tracing::info!(hub = %event_hub, released, "Ownership released");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::fake::{FakeStore, Listing};
    use crate::checkpoint::local::LocalCheckpointStore;

    #[tokio::test]
    async fn release_wins_over_a_renewal_that_lands_first() {
        let dir = tempfile::tempdir().unwrap();
        let inner = LocalCheckpointStore::new(dir.path());
        let claims: Vec<Ownership> = ["0", "1"]
            .iter()
            .map(|p| Ownership {
                fully_qualified_namespace: "ns".into(),
                event_hub_name: "hub".into(),
                consumer_group: "$Default".into(),
                partition_id: p.to_string(),
                owner_id: Some("me".into()),
                ..Default::default()
            })
            .collect();
        assert_eq!(inner.claim_ownership(&claims).await.unwrap().len(), 2);
        let store: Arc<dyn Store> = Arc::new(FakeStore::new(inner.clone(), Listing::RenewFirst));

        release(&store, "ns", "hub", "$Default", "me").await;

        let owners: Vec<Option<String>> = inner
            .list_ownerships("ns", "hub", "$Default")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.owner_id)
            .collect();
        assert_eq!(owners, vec![None, None], "both partitions released");
    }
}
