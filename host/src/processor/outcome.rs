//! One outcome per batch result. The batch step and the serve loop say what happened once,
//! here; the metrics, the owned-partition table and the plugin's judgement after a swap (the
//! rollback watcher, woken rather than polling) each take what they need from it.

use std::time::Duration;

use super::owned::PartitionState;
use super::setup::PartitionSetup;
use crate::event::PartitionContext;
use crate::metrics::{Call, MetricEvent};

/// What a step of a partition's work came to.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    /// `n` events handled by the plugin (their effects committed), in `took`.
    Handled { n: u64, took: Duration },
    /// A call failed on an event (`kind` as the error labels it).
    Failed { kind: &'static str },
    /// The failed event is tried again after a backoff.
    Retrying,
    /// The plugin cannot start: the partition waits (a deployment fault, counted against the
    /// version, never against the event).
    CannotStart,
    /// The failing event went to the dead-letter sink, as the letter names `plugin` (the
    /// version that failed on it, which a swap may have replaced since).
    DeadLettered { plugin: &'a crate::plugin::Plugin },
    /// `n` events skipped as duplicates.
    Duplicates { n: u64 },
    /// `n` emitted events acknowledged by their outputs.
    Emitted { n: u64 },
    /// The first call on a new version came `took` after the old version's last.
    SwapPause { took: Duration },
    /// What the partition does now (running again, halted, held, waiting for a store).
    Now(PartitionState),
}

/// Report `outcome` of `ctx`'s partition to everyone who needs it.
pub fn report(setup: &PartitionSetup, ctx: &PartitionContext, outcome: Outcome<'_>) {
    let stats = &setup.stats;
    // The serving version, read only for the outcomes labelled with it.
    let current = || setup.plugin.current();
    match outcome {
        Outcome::Handled { n, took } => {
            let plugin = current();
            let call = Call::new(ctx, &plugin);
            stats.record(MetricEvent::EventsHandled { call, n, took });
            setup.plugin.note_outcome(n, 0);
        }
        Outcome::Failed { kind } => {
            let plugin = current();
            let call = Call::new(ctx, &plugin);
            stats.record(MetricEvent::Failure { call, kind });
            setup.plugin.note_outcome(0, 1);
        }
        Outcome::Retrying => {
            let plugin = current();
            stats.record(MetricEvent::Retry {
                call: Call::new(ctx, &plugin),
            });
            setup.owned.set(ctx, Some(PartitionState::Retrying));
        }
        Outcome::CannotStart => {
            stats.record(MetricEvent::Paused { ctx });
            // A version that cannot start counts against it (automatic rollback).
            setup.plugin.note_outcome(0, 1);
            setup.owned.set(ctx, Some(PartitionState::Paused));
        }
        Outcome::DeadLettered { plugin } => {
            let call = Call::new(ctx, plugin);
            stats.record(MetricEvent::DeadLettered { call, n: 1 });
        }
        Outcome::Duplicates { n } => stats.record(MetricEvent::Duplicates { ctx, n }),
        Outcome::Emitted { n } => stats.record(MetricEvent::Emitted { ctx, n }),
        Outcome::SwapPause { took } => stats.record(MetricEvent::SwapPause { ctx, took }),
        Outcome::Now(state) => setup.owned.set(ctx, Some(state)),
    }
}
