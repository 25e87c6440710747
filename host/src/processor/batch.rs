//! One batch: events the partition's state already holds and duplicates skipped, the tenant's
//! admission, the plugin call, the effects committed, the checkpoint moved, and the failure
//! policy (retry, pause while the plugin cannot start, hold on probation, halt, dead letter).
//!
//! The invariant: the checkpoint moves only past an event that was handled (its effects
//! committed first) or dead-lettered (stored by the sink first), never past a failure.

use std::time::Duration;

use super::checkpointer::Checkpointer;
use super::outcome::{report, Outcome};
use super::owned::PartitionState;
use super::setup::PartitionSetup;
use crate::backoff::Backoff;
use crate::checkpoint::RetryState;
use crate::config::FailurePolicy;
use crate::event::{Event, PartitionContext};
use crate::metrics::MetricEvent;
use crate::plugin::{FailureKind, PluginError};
use crate::shutdown::Shutdown;
use crate::sink::DeadLetter;

pub(super) enum Processed {
    /// Every event was handled or dead-lettered.
    All,
    /// The halt policy stopped the partition.
    Halted,
    /// The host is stopping during a retry backoff; the failing event stays unhandled.
    Stopped,
    /// The state store holds a position another host committed: this one lost the partition.
    Fenced,
}

/// Run `batch` through the plugin until every event is handled or dead-lettered, retrying
/// failures per policy. Empties `batch` except on `Halted`/`Stopped`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn process(
    worker: &mut crate::plugin::Worker,
    ctx: &PartitionContext,
    setup: &PartitionSetup,
    state: Option<&crate::effects::state::PartitionState>,
    checkpointer: &Checkpointer,
    retry: &mut Option<RetryState>,
    batch: &mut Vec<Event>,
    stop: &mut Shutdown,
) -> Processed {
    // Duplicates first: they never reach the plugin. If the batch ends with duplicates, the
    // checkpoint passes them once everything before them is done.
    let mut skipped_tail: Option<(i64, String)> = None;
    // Events the partition's state already holds (a host committed them, then crashed before
    // the checkpoint): their writes are in, so they are skipped, never applied twice.
    if let Some(position) = state.and_then(|s| s.position()) {
        if let Some(last) = batch.last().filter(|e| e.sequence_number <= position) {
            skipped_tail = Some((last.sequence_number, last.offset.clone()));
        }
        let before = batch.len();
        let held = batch
            .iter()
            .take_while(|e| e.sequence_number <= position)
            .count();
        // Their dedupe claims may not be committed (a crash between the state commit and the
        // claims' commit): commit them before anything after them is claimed.
        if held > 0
            && commit_claims(setup, ctx, stop, &batch[..held])
                .await
                .is_none()
        {
            return Processed::Stopped;
        }
        batch.retain(|e| e.sequence_number > position);
        if batch.len() < before {
            tracing::info!(partition = %ctx.partition_id, skipped = before - batch.len(), position, "Skipped events the partition's state already holds");
        }
    }
    if let Some(dedupe) = &setup.dedupe {
        let split = match until_stored(setup, ctx, stop, "claim dedupe keys", || {
            dedupe.claim(&ctx.partition_id, batch)
        })
        .await
        {
            Some(split) => split,
            None => return Processed::Stopped,
        };
        if let Some(&last) = split.duplicates.last() {
            if last + 1 == batch.len() {
                let tail = &batch[last];
                skipped_tail = Some((tail.sequence_number, tail.offset.clone()));
            }
            let n = split.duplicates.len();
            let mut index = 0;
            let mut duplicates = split.duplicates.iter().peekable();
            batch.retain(|_| {
                let skip = duplicates.next_if_eq(&&index).is_some();
                index += 1;
                !skip
            });
            report(setup, ctx, Outcome::Duplicates { n: n as u64 });
            tracing::debug!(partition = %ctx.partition_id, duplicates = n, "Skipped events whose dedupe key is committed or claimed by another event");
        }
    }
    // After a trap or limit inside a multi-event call it is unknown which event caused it: the
    // rest of the batch then goes one event at a time, so the failure lands on the right one.
    let mut one_by_one = false;
    // While the plugin cannot start, the partition waits on this curve (a deployment fault:
    // nothing is counted against the event).
    let mut pause = setup.failure.backoff_curve();
    let mut paused = false;
    while !batch.is_empty() {
        let call = if one_by_one { &batch[..1] } else { &batch[..] };
        let bytes: u64 = call.iter().map(|e| e.body.len() as u64).sum();
        let admission = tokio::select! {
            admission = setup.tenant.admit(call.len(), bytes) => admission,
            // Waiting for the tenant's turn: nothing started, the batch is delivered again.
            _ = stop.wait() => return Processed::Stopped,
        };
        let called = std::time::Instant::now();
        let (handled, error) = match worker.handle_batch(ctx, call).await {
            Ok(()) => (call.len(), None),
            Err(failure) => (failure.handled, Some(failure.error)),
        };
        // A plugin that cannot start is the deployment's fault, not a storm of the tenant's.
        let failed = error
            .as_ref()
            .is_some_and(|e| !matches!(e.kind(), FailureKind::Unavailable));
        setup
            .tenant
            .finished(admission, call.len(), bytes, handled, failed);
        if let Some(took) = worker.take_swap_pause() {
            report(setup, ctx, Outcome::SwapPause { took });
        }
        let unavailable = error
            .as_ref()
            .is_some_and(|e| matches!(e.kind(), FailureKind::Unavailable));
        if paused && !unavailable {
            paused = false;
            pause.reset();
            resume(setup, ctx, retry).await;
        }
        if let Some(error) = &error {
            if call.len() > 1 && handled == 0 && matches!(error.kind(), FailureKind::Crashed) {
                tracing::info!(partition = %ctx.partition_id, kind = error.label(), events = call.len(), "Plugin crashed inside a batch; isolating the event one at a time");
                one_by_one = true;
                continue;
            }
        }
        let effects = worker.take_effects();
        if handled > 0 {
            // Effects before the checkpoint: outputs acknowledged, then state committed with
            // the position, then first-seen keys recorded.
            let last_seq = batch[handled - 1].sequence_number;
            match commit_effects(setup, ctx, state, stop, last_seq, effects).await {
                Some(Ok(())) => {}
                Some(Err(())) => return Processed::Fenced,
                None => return Processed::Stopped,
            }
            // The second checkpoint before the first: once the claims are committed, a
            // redelivery of these events (a crash before the checkpoint) skips them.
            if commit_claims(setup, ctx, stop, &batch[..handled])
                .await
                .is_none()
            {
                return Processed::Stopped;
            }
            let last = &batch[handled - 1];
            checkpointer.set(last.sequence_number, &last.offset);
            report(
                setup,
                ctx,
                Outcome::Handled {
                    n: handled as u64,
                    took: called.elapsed(),
                },
            );
            if retry
                .as_ref()
                .is_some_and(|r| r.sequence_number <= last.sequence_number)
            {
                *retry = None;
                save_retry(setup, ctx, None).await;
            }
            batch.drain(..handled);
        }
        let Some(error) = error else {
            continue;
        };
        let failing = &batch[0];
        if unavailable {
            // The plugin cannot start: not this event's fault. Wait and try again; never count
            // it as an attempt, dead-letter the event or move the checkpoint because of it.
            let wait = pause.next_delay();
            if !paused {
                paused = true;
                report(setup, ctx, Outcome::CannotStart);
                let state = RetryState {
                    sequence_number: failing.sequence_number,
                    attempts: match retry {
                        Some(r) if r.sequence_number == failing.sequence_number => r.attempts,
                        _ => 0,
                    },
                    paused: Some(error.to_string()),
                };
                save_retry(setup, ctx, Some(state.clone())).await;
                *retry = Some(state);
            }
            tracing::error!(
                hub = %ctx.event_hub,
                partition = %ctx.partition_id,
                sequence_number = failing.sequence_number,
                retry_in_ms = wait.as_millis() as u64,
                error = %error,
                "Plugin cannot start; the partition is paused before this event (no event is \
                 failed or dead-lettered for this); fix the plugin or its config"
            );
            if stop.sleep(wait).await {
                return Processed::Stopped;
            }
            continue;
        }
        report(
            setup,
            ctx,
            Outcome::Failed {
                kind: error.label(),
            },
        );
        let attempts = match retry {
            Some(r) if r.sequence_number == failing.sequence_number => r.attempts + 1,
            _ => 1,
        };
        let give_up =
            attempts >= setup.failure.max_attempts || matches!(error.kind(), FailureKind::Rejected);
        tracing::warn!(
            hub = %ctx.event_hub,
            partition = %ctx.partition_id,
            sequence_number = failing.sequence_number,
            attempts,
            kind = error.label(),
            error = %error,
            "Plugin failed on an event"
        );
        if !give_up {
            *retry = Some(RetryState::failed(failing.sequence_number, attempts));
            save_retry(setup, ctx, retry.clone()).await;
            report(setup, ctx, Outcome::Retrying);
            // A plugin's own retry-after is honoured up to the configured cap, so a plugin
            // cannot stall its partition for longer than `max_backoff_ms`.
            let curve = setup.failure.backoff_curve();
            let wait = retry_delay(&error)
                .map(|d| curve.cap(d))
                .unwrap_or_else(|| curve.delay(attempts));
            let stopped = stop.sleep(wait).await;
            report(setup, ctx, Outcome::Now(PartitionState::Running));
            if stopped {
                return Processed::Stopped;
            }
            continue;
        }
        // A version still being judged after its swap may be what fails: hold the event
        // until the verdict instead of dead-lettering (or halting on) it.
        if let Some(generation) = setup.plugin.on_probation() {
            match hold(
                setup,
                ctx,
                failing.sequence_number,
                attempts,
                &error,
                generation,
                stop,
            )
            .await
            {
                Held::Stopped => return Processed::Stopped,
                Held::Replaced => {
                    // Rolled back (or swapped again): the event gets a fresh count on the
                    // version serving now.
                    *retry = None;
                    save_retry(setup, ctx, None).await;
                    continue;
                }
                Held::Cleared => {}
            }
        }
        match setup.failure.policy {
            FailurePolicy::Halt => {
                *retry = Some(RetryState::failed(failing.sequence_number, attempts));
                save_retry(setup, ctx, retry.clone()).await;
                report(setup, ctx, Outcome::Now(PartitionState::Halted));
                tracing::error!(
                    hub = %ctx.event_hub,
                    partition = %ctx.partition_id,
                    sequence_number = failing.sequence_number,
                    attempts,
                    error = %error,
                    "Partition halted (failure policy `halt`): the checkpoint stays before this \
                     event; fix the plugin or the event and restart the host"
                );
                return Processed::Halted;
            }
            FailurePolicy::DeadLetter => {
                let plugin = worker.plugin();
                let letter = DeadLetter::new(
                    ctx,
                    failing,
                    error.to_string(),
                    error.label(),
                    attempts,
                    plugin.name(),
                    plugin.digest(),
                );
                // The sink must have it before the checkpoint passes it: retry until it does.
                let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
                loop {
                    match setup.dead_letter.write(&letter).await {
                        Ok(()) => break,
                        Err(err) => {
                            let wait = backoff.next_delay();
                            tracing::error!(partition = %ctx.partition_id, error = %err, retry_in_ms = wait.as_millis() as u64, "Cannot dead-letter the event; retrying");
                            if stop.sleep(wait).await {
                                return Processed::Stopped;
                            }
                        }
                    }
                }
                tracing::warn!(
                    hub = %ctx.event_hub,
                    partition = %ctx.partition_id,
                    sequence_number = failing.sequence_number,
                    sink = %setup.dead_letter.describe(),
                    "Event dead-lettered; moving on"
                );
                report(setup, ctx, Outcome::DeadLettered { plugin: &plugin });
                checkpointer.set(failing.sequence_number, &failing.offset);
                *retry = None;
                save_retry(setup, ctx, None).await;
                batch.remove(0);
            }
        }
    }
    if let Some((sequence_number, offset)) = skipped_tail {
        checkpointer.set(sequence_number, &offset);
    }
    Processed::All
}

/// How a held event's wait ended.
enum Held {
    /// The version it failed under was replaced (rolled back, or swapped again).
    Replaced,
    /// The version was judged fit: the failure policy applies.
    Cleared,
    /// The host is stopping; the event stays unhandled.
    Stopped,
}

/// Hold the failing event (sequence number `sequence_number`) until the version of
/// `generation`, still within its rollback window, is judged. The partition does not move
/// meanwhile; its state and the store's retry record say why.
async fn hold(
    setup: &PartitionSetup,
    ctx: &PartitionContext,
    sequence_number: i64,
    attempts: u32,
    error: &PluginError,
    generation: u64,
    stop: &mut Shutdown,
) -> Held {
    let plugin = setup.plugin.current();
    let why = format!(
        "held: version {} ({}) is within its rollback window; the event waits for its verdict",
        plugin.name(),
        plugin.digest()
    );
    report(setup, ctx, Outcome::Now(PartitionState::Held));
    save_retry(
        setup,
        ctx,
        Some(RetryState {
            sequence_number,
            attempts,
            paused: Some(why),
        }),
    )
    .await;
    tracing::warn!(
        hub = %ctx.event_hub,
        partition = %ctx.partition_id,
        sequence_number,
        attempts,
        plugin = %plugin.name(),
        version = %plugin.digest(),
        error = %error,
        "The event failed its last attempt under a version still within its rollback window: \
         held, not dead-lettered, until the version is rolled back or cleared"
    );
    setup.plugin.note_held(true);
    let mut judged = setup.plugin.probation();
    let outcome = loop {
        let now = *judged.borrow_and_update();
        if setup.plugin.generation() != generation {
            break Held::Replaced;
        }
        match now {
            crate::plugin::Probation::Pending(g) if g == generation => {}
            crate::plugin::Probation::Cleared(g) if g == generation => break Held::Cleared,
            _ => break Held::Replaced,
        }
        let stopping = tokio::select! {
            changed = judged.changed() => changed.is_err(),
            _ = stop.wait() => true,
        };
        if stopping {
            break Held::Stopped;
        }
    };
    setup.plugin.note_held(false);
    report(setup, ctx, Outcome::Now(PartitionState::Running));
    outcome
}

/// Commit a batch's effects: emitted events acknowledged by their outputs, state writes
/// committed with `position`, first-seen keys recorded. `None` if the host stopped meanwhile,
/// `Some(Err(()))` if another host committed the state since (this one lost the partition).
async fn commit_effects(
    setup: &PartitionSetup,
    ctx: &PartitionContext,
    state: Option<&crate::effects::state::PartitionState>,
    stop: &mut Shutdown,
    position: i64,
    effects: crate::effects::journal::Journal,
) -> Option<Result<(), ()>> {
    if !effects.emitted.is_empty() {
        until_stored(setup, ctx, stop, "send emitted events", || {
            setup.outputs.send(ctx, &effects.emitted)
        })
        .await?;
        report(
            setup,
            ctx,
            Outcome::Emitted {
                n: effects.emitted.len() as u64,
            },
        );
    }
    if let (Some(state), false) = (state, effects.writes.is_empty()) {
        let writes = effects.state_writes();
        let outcome = until_stored(setup, ctx, stop, "commit the partition's state", || {
            state.commit(position, &writes)
        })
        .await?;
        if outcome == crate::effects::state::Committed::Fenced {
            return Some(Err(()));
        }
    }
    if let (Some(dedupe), false) = (&setup.dedupe, effects.seen.is_empty()) {
        for (ttl, keys) in &effects.seen_by_ttl() {
            until_stored(setup, ctx, stop, "record first-seen keys", || {
                dedupe.store.record(&dedupe.scope, keys, *ttl)
            })
            .await?;
        }
    }
    Some(Ok(()))
}

/// Commit the dedupe claims of `done` (handled events), if the event hub deduplicates;
/// `None` if the host stopped meanwhile.
async fn commit_claims(
    setup: &PartitionSetup,
    ctx: &PartitionContext,
    stop: &mut Shutdown,
    done: &[Event],
) -> Option<()> {
    let Some(dedupe) = &setup.dedupe else {
        return Some(());
    };
    until_stored(setup, ctx, stop, "commit dedupe keys", || {
        dedupe.commit(&ctx.partition_id, done)
    })
    .await
}

/// Retry a store or output call until it answers: the partition pauses before its events (a
/// store that is down never skips or loses one). `None` if the host stopped meanwhile.
pub(super) async fn until_stored<T, E, F, Fut>(
    setup: &PartitionSetup,
    ctx: &PartitionContext,
    stop: &mut Shutdown,
    what: &str,
    mut call: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let mut backoff = setup.failure.backoff_curve();
    let mut paused = false;
    loop {
        match call().await {
            Ok(value) => {
                if paused {
                    report(setup, ctx, Outcome::Now(PartitionState::Running));
                    tracing::info!(partition = %ctx.partition_id, "The store answers again ({what}); the partition resumes");
                }
                return Some(value);
            }
            Err(err) => {
                let wait = backoff.next_delay();
                if !paused {
                    paused = true;
                    report(setup, ctx, Outcome::Now(PartitionState::StoreDown));
                }
                tracing::error!(
                    hub = %ctx.event_hub,
                    partition = %ctx.partition_id,
                    error = %err,
                    retry_in_ms = wait.as_millis() as u64,
                    "Cannot {what}; the partition waits (no event is skipped or lost)"
                );
                if stop.sleep(wait).await {
                    return None;
                }
            }
        }
    }
}

/// The plugin runs again after a pause: say so, and drop the pause from the stored retry state.
async fn resume(setup: &PartitionSetup, ctx: &PartitionContext, retry: &mut Option<RetryState>) {
    report(setup, ctx, Outcome::Now(PartitionState::Running));
    tracing::info!(hub = %ctx.event_hub, partition = %ctx.partition_id, "Plugin starts again; the partition resumes");
    if let Some(state) = retry.as_mut() {
        state.paused = None;
        let keep = (state.attempts > 0).then(|| state.clone());
        if keep.is_none() {
            *retry = None;
        }
        save_retry(setup, ctx, keep).await;
    }
}

/// A plugin's own `retry-after`, if it gave one.
fn retry_delay(error: &PluginError) -> Option<Duration> {
    match error {
        PluginError::Retryable {
            retry_after: Some(d),
            ..
        } => Some(*d),
        _ => None,
    }
}
pub(super) async fn save_retry(
    setup: &PartitionSetup,
    ctx: &PartitionContext,
    state: Option<RetryState>,
) {
    if let Err(err) = setup.store.save_retry(ctx, state).await {
        setup.stats.record(MetricEvent::StoreError);
        tracing::warn!(partition = %ctx.partition_id, error = %err, "Cannot record the retry count; a takeover would count from zero");
    }
}
