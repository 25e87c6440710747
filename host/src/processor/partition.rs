//! One owned partition's serve loop: batching what the reader delivers, the fence before each
//! batch, halt and resume, shutdown (the last checkpoint flushed, the plugin's closed hook). One
//! batch's work is [`super::batch`].
//!
//! The invariant: the checkpoint written for a partition is always the last event that was
//! handled successfully or dead-lettered (stored by the sink before the checkpoint moves), never
//! an event after a failure. Everything else (a crash, a trap, a lost ownership, a storage
//! outage) can only make the checkpoint lag, which means redelivery, never loss.

use std::sync::Arc;
use std::time::Duration;

use std::collections::VecDeque;

use tokio::sync::mpsc;

use super::batch::{process, save_retry, until_stored, Processed};
use super::checkpointer::Checkpointer;
use super::fence::{Fence, Owner};
use super::owned::PartitionState;
use super::reader::Item;
pub use super::setup::PartitionSetup;
use crate::config::Mode;
use crate::event::{Event, PartitionContext};
use crate::plugin::CloseReason;
use crate::shutdown::Shutdown;

/// Why a partition task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The host is stopping; the in-flight batch was finished and checkpointed.
    Shutdown,
    /// The receiver closed: ownership moved elsewhere, or the link failed (the processor
    /// reopens the partition if it still owns it).
    ReceiverClosed,
    /// The receiver failed before it delivered a single event: a sign that the connection
    /// under the processor is gone (the processor is then rebuilt on a new one).
    FailedAtOnce,
    /// The fence found another owner: the partition stopped before its next batch.
    Stolen,
    /// Event Hubs says the consumer group does not exist: a fault of the deployment, which no
    /// reconnect mends.
    GroupMissing,
}

/// Whether a receiver's end reason says the consumer group does not exist (Event Hubs:
/// `amqp:not-found` naming `.../consumergroups/<group>`; the embedded endpoint: `NotFound`,
/// "has no consumer group").
pub fn group_missing(reason: &str) -> bool {
    let lower = reason.to_ascii_lowercase();
    (lower.contains("notfound")
        || lower.contains("not-found")
        || lower.contains("not found")
        || lower.contains("could not be found"))
        && (lower.contains("consumer group") || lower.contains("consumergroup"))
}

/// Serve one owned partition until the host stops or its events stop coming.
///
/// `events` comes from the partition's reader (see [`super::reader`]); dropping it at the end
/// (after the checkpoint is flushed) lets the reader close the partition client.
pub async fn serve(
    mut events: mpsc::Receiver<Item>,
    ctx: PartitionContext,
    setup: Arc<PartitionSetup>,
    mut stop: Shutdown,
) -> Ended {
    let stats = setup.stats.clone();
    setup.owned.set(&ctx, Some(PartitionState::Running));
    let checkpointer = Checkpointer::start(setup.store.clone(), &ctx, stats.clone());
    let mut fence = Fence::new(
        setup.store.clone(),
        &ctx,
        &setup.instance_id,
        setup.ownership_check,
    );
    let mut worker = setup.plugin.worker();
    // The partition's state first: the plugin must not run before it is loaded.
    let state = match &setup.state {
        Some((store, max_value_bytes, max_bytes)) => {
            let scope = format!(
                "{}/{}/{}/{}",
                ctx.namespace, ctx.event_hub, ctx.consumer_group, ctx.partition_id
            );
            let loaded = until_stored(
                &setup,
                &ctx,
                &mut stop,
                "load the partition's state",
                || {
                    crate::effects::state::PartitionState::load(
                        store.clone(),
                        scope.clone(),
                        *max_value_bytes,
                        *max_bytes,
                    )
                },
            )
            .await;
            match loaded {
                Some(state) => {
                    tracing::info!(partition = %ctx.partition_id, position = ?state.position(), bytes = state.bytes(), "Partition state loaded");
                    Some(Arc::new(state))
                }
                None => {
                    setup.owned.set(&ctx, None);
                    return Ended::Shutdown;
                }
            }
        }
        None => None,
    };
    worker.bind(Arc::new(crate::effects::journal::Binding {
        outputs: setup.outputs.names(),
        state: state.clone(),
        first_seen: setup
            .dedupe
            .as_ref()
            .map(|d| (d.store.clone(), d.scope.clone())),
        hub: format!("event hub {} ({})", ctx.event_hub, ctx.consumer_group),
    }));
    if let Err(err) = worker.open(&ctx).await {
        tracing::warn!(partition = %ctx.partition_id, error = %err, "Plugin's partition-opened hook failed");
    }
    let mut retry = match setup.store.load_retry(&ctx).await {
        Ok(state) => state,
        Err(err) => {
            tracing::warn!(partition = %ctx.partition_id, error = %err, "Cannot read the retry count; counting from zero");
            None
        }
    };
    tracing::info!(hub = %ctx.event_hub, partition = %ctx.partition_id, ?retry, "Partition opened");

    let max_batch = match setup.mode {
        Mode::Event => 1,
        Mode::Batch => setup.max_batch_size,
    };
    let mut pending: VecDeque<Event> = VecDeque::new();
    let mut closed: Option<String> = None;
    // Whether the receiver delivered anything, and whether it ended with an error.
    let mut received = false;
    let mut failed = false;
    let mut batch: Vec<Event> = Vec::with_capacity(max_batch);
    let mut halted = false;
    let ended = loop {
        setup
            .progress
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if halted {
            // Keep the ownership (nobody else should process past the failure) but read no
            // further, until the host stops or an operator resumes the partition.
            let mut resume = setup.resume.subscribe();
            let resumed = loop {
                tokio::select! {
                    _ = stop.wait() => break false,
                    told = resume.recv() => match told {
                        Ok(id) if id == ctx.partition_id => break true,
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break false,
                    },
                }
            };
            if !resumed {
                break Ended::Shutdown;
            }
            // Start over on the failed event with a fresh count of attempts.
            halted = false;
            retry = None;
            save_retry(&setup, &ctx, None).await;
            for event in batch.drain(..).rev() {
                pending.push_front(event);
            }
            setup.owned.set(&ctx, Some(PartitionState::Running));
            tracing::info!(hub = %ctx.event_hub, partition = %ctx.partition_id, "Halted partition resumed by an operator; retrying the event it stopped at");
            continue;
        }
        // Wait for the first event of a batch, or for the stop signal.
        if pending.is_empty() {
            if let Some(why) = &closed {
                break if failed && !received && group_missing(why) {
                    Ended::GroupMissing
                } else if failed && !received {
                    Ended::FailedAtOnce
                } else {
                    Ended::ReceiverClosed
                };
            }
            tokio::select! {
                biased;
                _ = stop.wait() => break Ended::Shutdown,
                item = events.recv() => {
                    received |= matches!(item, Some(Item::Events(_)));
                    failed |= matches!(item, Some(Item::Failed(_)));
                    take(item, &mut pending, &mut closed);
                    note_seen(&setup, &ctx, &pending);
                }
            }
            continue;
        }
        // Fill the batch with what arrives within max-wait.
        if pending.len() < max_batch && closed.is_none() {
            let deadline = tokio::time::Instant::now() + setup.max_wait;
            while pending.len() < max_batch && closed.is_none() {
                match tokio::time::timeout_at(deadline, events.recv()).await {
                    Ok(item) => {
                        failed |= matches!(item, Some(Item::Failed(_)));
                        take(item, &mut pending, &mut closed);
                        note_seen(&setup, &ctx, &pending);
                    }
                    Err(_) => break,
                }
            }
        }
        if let Owner::Other(owner) = fence.owner().await {
            tracing::info!(hub = %ctx.event_hub, partition = %ctx.partition_id, %owner, "Partition taken over by another instance; stopping before the next batch");
            break Ended::Stolen;
        }
        let n = pending.len().min(max_batch);
        batch.clear();
        batch.extend(pending.drain(..n));
        let outcome = process(
            &mut worker,
            &ctx,
            &setup,
            state.as_deref(),
            &checkpointer,
            &mut retry,
            &mut batch,
            &mut stop,
        )
        .await;
        match outcome {
            Processed::All => {}
            Processed::Halted => halted = true,
            Processed::Stopped => break Ended::Shutdown,
            Processed::Fenced => {
                tracing::warn!(hub = %ctx.event_hub, partition = %ctx.partition_id, "Another host committed this partition's state: it owns the partition now; stopping without committing (its events are redelivered to the owner)");
                break Ended::Stolen;
            }
        }
        if stop.is_set() {
            // Stopping: the in-flight batch is done; what is merely buffered is not started.
            break Ended::Shutdown;
        }
    };
    if let Some(why) = &closed {
        tracing::info!(partition = %ctx.partition_id, reason = %why, "Partition's events stopped");
    }

    // Make the last success durable before letting go of the partition.
    if !checkpointer.flush(Duration::from_secs(10)).await {
        tracing::warn!(partition = %ctx.partition_id, "Last checkpoint not written (store unavailable); its events will be delivered again");
    }
    let reason = match ended {
        Ended::Shutdown => CloseReason::Shutdown,
        Ended::ReceiverClosed | Ended::FailedAtOnce | Ended::Stolen | Ended::GroupMissing => {
            CloseReason::OwnershipLost
        }
    };
    if let Err(err) = worker.close(reason).await {
        tracing::warn!(partition = %ctx.partition_id, error = %err, "Plugin's partition-closed hook failed");
    }
    setup.owned.set(&ctx, None);
    // Letting go of the channel lets the reader close the partition client, which hands the
    // partition back to the processor.
    drop(events);
    tracing::info!(hub = %ctx.event_hub, partition = %ctx.partition_id, ?ended, "Partition closed");
    ended
}

fn take(item: Option<Item>, pending: &mut VecDeque<Event>, closed: &mut Option<String>) {
    match item {
        Some(Item::Events(events)) => pending.extend(events),
        Some(Item::Closed(why)) | Some(Item::Failed(why)) => *closed = Some(why),
        None => *closed = Some("the reader stopped".into()),
    }
}

fn note_seen(setup: &PartitionSetup, ctx: &PartitionContext, pending: &VecDeque<Event>) {
    if let Some(last) = pending.back() {
        setup
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ctx.partition_id.clone(), last.sequence_number);
    }
}
