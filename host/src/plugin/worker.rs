//! Calling a plugin: hot-swappable handles, and workers that own a reusable instance.
//!
//! A [`PluginHandle`] names "the plugin for this job"; [`PluginHandle::swap`] replaces the
//! component behind it atomically. Each partition task owns a [`Worker`], which keeps one
//! instance alive across calls and replaces it when the instance trapped or the handle was
//! swapped. A call in flight always finishes on the instance it started on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::contract::Verdict;
use super::encode::BatchEncoder;
use super::error::{BatchFailure, PluginError};
use super::loaded::Plugin;
use crate::effects::journal::{Binding, Journal};
use crate::event::{Event, PartitionContext};

pub(crate) use super::instance::MIN_INIT_TIMEOUT;
use super::instance::{arm, bounded, classify, plugin_verdict, Instance};

pub use super::contract::CloseReason;

/// The plugin currently serving a job; cheap to clone and share between tasks.
#[derive(Clone, Debug)]
pub struct PluginHandle {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    current: RwLock<Arc<Plugin>>,
    generation: AtomicU64,
    /// Events handled and calls failed since the last swap (for automatic rollback).
    handled_since_swap: AtomicU64,
    failed_since_swap: AtomicU64,
    /// Partitions holding an event the serving version failed to the end (see [`Probation`]).
    held: AtomicU64,
    /// Whether the serving version is still being judged after its swap.
    probation: tokio::sync::watch::Sender<Probation>,
    /// Told when a call fails, so the version's judge looks at once rather than polling.
    failed_now: tokio::sync::Notify,
}

/// Whether a swapped-in version is still being judged (its automatic-rollback window). While
/// it is, an event that fails its last attempt under it is held, not dead-lettered: the fault
/// may be the version's, not the event's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probation {
    /// Not being judged: failures follow the failure policy.
    None,
    /// Generation `0` is being judged.
    Pending(u64),
    /// Generation `0` was judged fit: the failure policy applies again.
    Cleared(u64),
}

impl PluginHandle {
    /// A handle serving `plugin` (handles may share one loaded plugin: its instances are
    /// their own).
    pub fn new(plugin: impl Into<Arc<Plugin>>) -> Self {
        Self {
            shared: Arc::new(Shared {
                current: RwLock::new(plugin.into()),
                generation: AtomicU64::new(0),
                handled_since_swap: AtomicU64::new(0),
                failed_since_swap: AtomicU64::new(0),
                held: AtomicU64::new(0),
                probation: tokio::sync::watch::channel(Probation::None).0,
                failed_now: tokio::sync::Notify::new(),
            }),
        }
    }

    /// Judge the serving version (generation `generation`) from now on: see [`Probation`].
    pub fn begin_probation(&self, generation: u64) {
        if self.generation() == generation {
            self.shared
                .probation
                .send_replace(Probation::Pending(generation));
        }
    }

    /// The version of `generation` was judged fit: held events follow the failure policy.
    pub fn clear_probation(&self, generation: u64) {
        self.shared.probation.send_if_modified(|p| {
            if *p == Probation::Pending(generation) {
                *p = Probation::Cleared(generation);
                true
            } else {
                false
            }
        });
    }

    /// The generation being judged now, if the serving version is on probation.
    pub fn on_probation(&self) -> Option<u64> {
        match *self.shared.probation.borrow() {
            Probation::Pending(g) if g == self.generation() => Some(g),
            _ => None,
        }
    }

    /// Watch the judgement (a held partition waits on it).
    pub fn probation(&self) -> tokio::sync::watch::Receiver<Probation> {
        self.shared.probation.subscribe()
    }

    /// A partition starts (`true`) or stops holding an event.
    pub fn note_held(&self, held: bool) {
        if held {
            self.shared.held.fetch_add(1, Ordering::Relaxed);
        } else {
            self.shared.held.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Partitions holding an event now.
    pub fn held(&self) -> u64 {
        self.shared.held.load(Ordering::Relaxed)
    }

    /// The plugin serving now.
    pub fn current(&self) -> Arc<Plugin> {
        self.shared
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replace the plugin. Workers switch before their next call; calls in flight finish on the
    /// old one. Returns the plugin that was replaced.
    pub fn swap(&self, plugin: Plugin) -> Arc<Plugin> {
        self.swap_arc(Arc::new(plugin))
    }

    /// [`swap`](Self::swap) to a plugin already loaded (a rollback to the version replaced).
    pub fn swap_arc(&self, plugin: Arc<Plugin>) -> Arc<Plugin> {
        let mut current = self
            .shared
            .current
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let old = std::mem::replace(&mut *current, plugin);
        self.shared.generation.fetch_add(1, Ordering::Release);
        // A new version is not judged until its swap says so; a held event is retried on it.
        self.shared.probation.send_replace(Probation::None);
        self.shared.handled_since_swap.store(0, Ordering::Relaxed);
        self.shared.failed_since_swap.store(0, Ordering::Relaxed);
        tracing::info!(old = %old.name, new = %current.name, path = %current.path.display(), "Plugin swapped");
        old
    }

    /// Count what the serving version did: events handled, calls that failed on an event.
    pub fn note_outcome(&self, handled: u64, failed: u64) {
        if handled > 0 {
            self.shared
                .handled_since_swap
                .fetch_add(handled, Ordering::Relaxed);
        }
        if failed > 0 {
            self.shared
                .failed_since_swap
                .fetch_add(failed, Ordering::Relaxed);
            self.shared.failed_now.notify_one();
        }
    }

    /// Until a call fails (at once if one failed since the last wait).
    pub async fn failed(&self) {
        self.shared.failed_now.notified().await
    }

    /// (events handled, calls failed) since the last swap.
    pub fn outcomes_since_swap(&self) -> (u64, u64) {
        (
            self.shared.handled_since_swap.load(Ordering::Relaxed),
            self.shared.failed_since_swap.load(Ordering::Relaxed),
        )
    }

    /// How many swaps happened so far.
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    /// A worker for one partition (or any sequential caller).
    pub fn worker(&self) -> Worker {
        Worker {
            handle: self.clone(),
            instance: None,
            open: None,
            encoder: BatchEncoder::default(),
            instances_created: 0,
            last_call_end: None,
            swap_pause: None,
            binding: None,
            carried: Journal::default(),
        }
    }
}

/// Calls one plugin sequentially through a reused instance.
pub struct Worker {
    handle: PluginHandle,
    instance: Option<Instance>,
    /// The partition opened on this worker, re-announced to replacement instances.
    open: Option<PartitionContext>,
    encoder: BatchEncoder,
    instances_created: u64,
    /// When the last call returned, and the swap pause measured at the first call on a new
    /// version (from the old version's last call to the new one's first).
    last_call_end: Option<std::time::Instant>,
    swap_pause: Option<Duration>,
    /// What the partition lets effects reach; given to every instance this worker creates.
    binding: Option<Arc<Binding>>,
    /// Effects of the batch's successful calls, kept when their instance was dropped (a trap
    /// on a later event of the batch).
    carried: Journal,
}

impl Worker {
    /// How many instances this worker has created (one, plus one per trap or swap).
    pub fn instances_created(&self) -> u64 {
        self.instances_created
    }

    /// The plugin the next call will run on.
    pub fn plugin(&self) -> Arc<Plugin> {
        self.handle.current()
    }

    /// Let this worker's plugin calls reach the partition's outputs, state and dedupe store.
    pub fn bind(&mut self, binding: Arc<Binding>) {
        if let Some(inst) = self.instance.as_mut() {
            inst.store.data_mut().effects.binding = Some(binding.clone());
        }
        self.binding = Some(binding);
    }

    /// The effects of the events the last [`handle_batch`](Self::handle_batch) handled
    /// (successful calls only), for the partition to commit.
    pub fn take_effects(&mut self) -> Journal {
        let mut journal = std::mem::take(&mut self.carried);
        if let Some(inst) = self.instance.as_mut() {
            let effects = &mut inst.store.data_mut().effects;
            effects.call_failed();
            journal.absorb(std::mem::take(&mut effects.batch));
        }
        journal
    }

    /// Announce a partition to the plugin (`partition-opened`).
    pub async fn open(&mut self, ctx: &PartitionContext) -> Result<(), PluginError> {
        self.open = Some(ctx.clone());
        // A fresh instance is told about the open partition while being created.
        let fresh = self.instance.is_none() || self.stale();
        let inst = self.instance().await?;
        if !fresh {
            let limit = inst.arm(MIN_INIT_TIMEOUT);
            let (plugin, store, exports) = inst.parts();
            let result = bounded(limit, &plugin.ticks, exports.opened(store, ctx)).await;
            self.settle(result)?;
        }
        Ok(())
    }

    /// Tell the plugin the partition is closed (`partition-closed`).
    pub async fn close(&mut self, reason: CloseReason) -> Result<(), PluginError> {
        let Some(ctx) = self.open.take() else {
            return Ok(());
        };
        let Some(inst) = self.instance.as_mut() else {
            return Ok(());
        };
        let limit = inst.arm(MIN_INIT_TIMEOUT);
        let (plugin, store, exports) = inst.parts();
        let result = bounded(limit, &plugin.ticks, exports.closed(store, &ctx, reason)).await;
        self.settle(result)
    }

    /// Tell the plugin about a host-side error on its partition (`partition-error`).
    pub async fn report_error(&mut self, message: &str) -> Result<(), PluginError> {
        let Some(ctx) = self.open.clone() else {
            return Ok(());
        };
        let inst = self.instance().await?;
        let limit = inst.arm(MIN_INIT_TIMEOUT);
        let (plugin, store, exports) = inst.parts();
        let result = bounded(limit, &plugin.ticks, exports.error(store, &ctx, message)).await;
        self.settle(result)
    }

    /// Run `events` (consecutive events of one partition) through the plugin.
    ///
    /// `Ok` means every event was handled. On `Err`, exactly the first `handled` events were
    /// handled; the caller may checkpoint up to them and no further.
    pub async fn handle_batch(
        &mut self,
        ctx: &PartitionContext,
        events: &[Event],
    ) -> Result<(), BatchFailure> {
        // Effects left by an earlier batch the caller did not take are not this batch's.
        drop(self.take_effects());
        if events.is_empty() {
            return Ok(());
        }
        let switching = self.stale();
        let result = self.call_batch(ctx, events, switching).await;
        self.last_call_end = Some(std::time::Instant::now());
        result
    }

    /// The swap pause of the last call, if it was the first on a new version: the time from
    /// the old version's last call returning to the new version's first call starting.
    pub fn take_swap_pause(&mut self) -> Option<Duration> {
        self.swap_pause.take()
    }

    async fn call_batch(
        &mut self,
        ctx: &PartitionContext,
        events: &[Event],
        switching: bool,
    ) -> Result<(), BatchFailure> {
        let fail = |handled, error| BatchFailure { handled, error };
        self.instance().await.map_err(|e| fail(0, e))?;
        if switching {
            self.swap_pause = self.last_call_end.map(|end| end.elapsed());
        }
        let Self {
            instance,
            encoder,
            carried,
            ..
        } = self;
        let Instance {
            plugin,
            store,
            exports,
            ..
        } = instance.as_mut().expect("instance ensured above");
        let plugin = plugin.clone();
        let timeout = plugin.limits.timeout;
        if exports.is_batch() {
            // A batch that fails at `k` after staging effects is called again with its first
            // `k` events alone: their effects are kept, the failed event's are not (the
            // effects of one call cannot be split by event).
            let mut end = events.len();
            let mut failure: Option<(usize, Verdict)> = None;
            loop {
                let call = &events[..end];
                store.data_mut().effects.range = range_of(call);
                let limit = arm(store, &plugin, timeout);
                match bounded(
                    limit,
                    &plugin.ticks,
                    exports.handle_batch(store, ctx, call, encoder),
                )
                .await
                {
                    Ok(Ok(())) => {
                        store.data_mut().effects.call_succeeded();
                        return match failure {
                            None => Ok(()),
                            Some((index, verdict)) => {
                                Err(fail(index, plugin_verdict(&plugin, verdict)))
                            }
                        };
                    }
                    Ok(Err((index, verdict))) => {
                        let index = index as usize;
                        if index >= call.len() {
                            store.data_mut().effects.call_failed();
                            let detail = format!(
                                "batch-error.failed-at is {index} but the batch has {} events",
                                call.len()
                            );
                            return Err(fail(
                                0,
                                PluginError::MalformedVerdict {
                                    plugin: plugin.name.to_string(),
                                    detail,
                                },
                            ));
                        }
                        let staged = !store.data().effects.call.is_empty();
                        store.data_mut().effects.call_failed();
                        if index > 0 && staged {
                            failure = Some((index, verdict));
                            end = index;
                            continue;
                        }
                        return Err(fail(index, plugin_verdict(&plugin, verdict)));
                    }
                    Err(err) => {
                        let error = classify(&plugin, store.data_mut(), err);
                        carried.absorb(std::mem::take(&mut store.data_mut().effects.batch));
                        *instance = None;
                        return Err(fail(0, error));
                    }
                }
            }
        } else {
            for (index, event) in events.iter().enumerate() {
                store.data_mut().effects.range =
                    Some((event.sequence_number, event.sequence_number));
                let limit = arm(store, &plugin, timeout);
                match bounded(
                    limit,
                    &plugin.ticks,
                    exports.handle_event(store, ctx, event),
                )
                .await
                {
                    Ok(Ok(())) => store.data_mut().effects.call_succeeded(),
                    Ok(Err(verdict)) => {
                        store.data_mut().effects.call_failed();
                        return Err(fail(index, plugin_verdict(&plugin, verdict)));
                    }
                    Err(err) => {
                        let error = classify(&plugin, store.data_mut(), err);
                        carried.absorb(std::mem::take(&mut store.data_mut().effects.batch));
                        *instance = None;
                        return Err(fail(index, error));
                    }
                }
            }
            Ok(())
        }
    }

    fn stale(&self) -> bool {
        self.instance
            .as_ref()
            .is_some_and(|i| i.generation != self.handle.generation())
    }

    /// Map a lifecycle call's outcome, dropping the instance after a trap.
    fn settle(&mut self, result: wasmtime::Result<()>) -> Result<(), PluginError> {
        match result {
            Ok(()) => Ok(()),
            Err(err) => {
                let inst = self.instance.take().expect("called with an instance");
                Err(inst.classify_owned(err))
            }
        }
    }

    /// The live instance, creating one if there is none, the last one trapped, or the handle
    /// was swapped since it was created.
    async fn instance(&mut self) -> Result<&mut Instance, PluginError> {
        if self.stale() {
            // Finished with the old plugin: let it know, best effort, then drop it.
            if let (Some(mut old), Some(ctx)) = (self.instance.take(), self.open.as_ref()) {
                let limit = old.arm(MIN_INIT_TIMEOUT);
                let _ = bounded(
                    limit,
                    &old.plugin.ticks,
                    old.exports
                        .closed(&mut old.store, ctx, CloseReason::Shutdown),
                )
                .await;
            }
        }
        if self.instance.is_none() {
            let generation = self.handle.generation();
            let plugin = self.handle.current();
            let open = self.open.as_ref();
            let mut instance = Instance::create(plugin, generation, open).await?;
            instance.store.data_mut().effects.binding = self.binding.clone();
            self.instances_created += 1;
            self.instance = Some(instance);
        }
        Ok(self.instance.as_mut().expect("just ensured"))
    }
}

/// Sequence numbers of a call's first and last events (the sources it may emit for).
fn range_of(events: &[Event]) -> Option<(i64, i64)> {
    Some((
        events.first()?.sequence_number,
        events.last()?.sequence_number,
    ))
}
