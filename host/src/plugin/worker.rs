//! Calling a plugin: hot-swappable handles, and workers that own a reusable instance.
//!
//! A [`PluginHandle`] names "the plugin for this job"; [`PluginHandle::swap`] replaces the
//! component behind it atomically. Each partition task owns a [`Worker`], which keeps one
//! instance alive across calls and replaces it when the instance trapped or the handle was
//! swapped. A call in flight always finishes on the instance it started on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use wasmtime::{Store, Trap, WasmBacktrace};

use super::contract::{Exports, Verdict};
use super::encode::BatchEncoder;
use super::error::{BatchFailure, PluginError};
use super::runtime::{ticks, Plugin, EPOCH_TICK};
use super::sandbox::HostState;
use crate::effects::journal::{Binding, Journal};
use crate::event::{Event, PartitionContext};

/// `init` and partition hooks get at least this long, even if the call limit is shorter.
pub(crate) const MIN_INIT_TIMEOUT: Duration = Duration::from_secs(5);

/// How many wasm frames a trap report shows.
const BACKTRACE_FRAMES: usize = 6;

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
        }
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

struct Instance {
    plugin: Arc<Plugin>,
    generation: u64,
    store: Store<HostState>,
    exports: Exports,
}

/// The instance `load` made and `init`ed to check the plugin: kept for the first worker, so a
/// (re)started host does not instantiate and `init` twice before its first event.
pub(crate) struct Spare {
    pub(crate) store: Store<HostState>,
    pub(crate) exports: Exports,
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
            let Instance {
                plugin,
                store,
                exports,
                ..
            } = inst;
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
        let Instance {
            plugin,
            store,
            exports,
            ..
        } = inst;
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
        let Instance {
            plugin,
            store,
            exports,
            ..
        } = inst;
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

impl Instance {
    /// A fresh instance: instantiated, `init`ed with the plugin's config and told about the open
    /// partition, all within the init time limit. Any failure here is a fault of the deployment
    /// (the plugin cannot start), never of an event: it comes back as an error whose
    /// [`FailureKind`](super::error::FailureKind) is `Unavailable`.
    async fn create(
        plugin: Arc<Plugin>,
        generation: u64,
        open: Option<&PartitionContext>,
    ) -> Result<Self, PluginError> {
        let spare = plugin.spare.lock().unwrap_or_else(|e| e.into_inner()).pop();
        if let Some(spare) = spare {
            return Self::from_spare(plugin, generation, spare, open).await;
        }
        let mut store = new_store(&plugin);
        let limit = init_limit(&plugin);
        let started = bounded(limit, &plugin.ticks, Self::start(&plugin, &mut store, open)).await;
        let exports = match started {
            Ok(Ok(parts)) => parts,
            Ok(Err(message)) => {
                return Err(PluginError::InitFailed {
                    plugin: plugin.name.to_string(),
                    message,
                })
            }
            Err(err) => {
                let cause = classify(&plugin, store.data_mut(), err);
                return Err(PluginError::Instantiate {
                    plugin: plugin.name.to_string(),
                    detail: cause.to_string(),
                });
            }
        };
        Ok(Self {
            plugin,
            generation,
            store,
            exports,
        })
    }

    /// The spare instance `load` left (instantiated and `init`ed), told about the open partition.
    async fn from_spare(
        plugin: Arc<Plugin>,
        generation: u64,
        spare: Spare,
        open: Option<&PartitionContext>,
    ) -> Result<Self, PluginError> {
        let mut instance = Self {
            plugin,
            generation,
            store: spare.store,
            exports: spare.exports,
        };
        if let Some(ctx) = open {
            let timeout = instance.plugin.limits.timeout.max(MIN_INIT_TIMEOUT);
            let limit = instance.arm(timeout);
            let opened = bounded(
                limit,
                &instance.plugin.ticks,
                instance.exports.opened(&mut instance.store, ctx),
            )
            .await;
            if let Err(err) = opened {
                let cause = instance.classify(err);
                return Err(PluginError::Instantiate {
                    plugin: instance.plugin.name.to_string(),
                    detail: cause.to_string(),
                });
            }
        }
        Ok(instance)
    }

    /// Instantiate, load the exports, call `init` and `partition-opened`. The inner `Err` is
    /// `init` refusing its config (with the plugin's message); the outer one, anything that
    /// failed or trapped.
    async fn start(
        plugin: &Plugin,
        store: &mut Store<HostState>,
        open: Option<&PartitionContext>,
    ) -> wasmtime::Result<Result<Exports, String>> {
        let instance = plugin.pre.instantiate_async(&mut *store).await?;
        let exports = plugin.exports.load(store, &instance).map_err(|(_, e)| e)?;
        if let Err(message) = exports.init(store, &plugin.config).await? {
            return Ok(Err(message));
        }
        if let Some(ctx) = open {
            exports.opened(store, ctx).await?;
        }
        Ok(Ok(exports))
    }

    /// Set the deadline (and fuel) for the next call; returns its wall-clock limit.
    fn arm(&mut self, timeout: Duration) -> Option<Duration> {
        arm(&mut self.store, &self.plugin, timeout)
    }

    fn classify(&mut self, err: wasmtime::Error) -> PluginError {
        classify(&self.plugin, self.store.data_mut(), err)
    }

    fn classify_owned(mut self, err: wasmtime::Error) -> PluginError {
        self.classify(err)
    }
}

/// A fresh store for one instance of `plugin`: limits applied, armed for instantiation and
/// `init`.
pub(crate) fn new_store(plugin: &Plugin) -> Store<HostState> {
    let mut store = Store::new(
        &plugin.engine,
        HostState::new(
            plugin.name.clone(),
            plugin.limits.memory_bytes,
            plugin.memory_peak.clone(),
            plugin.http.clone(),
        ),
    );
    store.limiter(|s| &mut s.limiter);
    // Each epoch tick, a running call yields to the async runtime (so a plugin that computes
    // for its whole timeout does not hold a worker thread of the host, and other tenants' tasks
    // run in between), and it is stopped once it has used its ticks.
    store.epoch_deadline_callback(|mut ctx| {
        let state = ctx.data_mut();
        if state.ticks_left == 0 {
            return Err(Trap::Interrupt.into());
        }
        state.ticks_left -= 1;
        Ok(wasmtime::UpdateDeadline::Yield(1))
    });
    arm(
        &mut store,
        plugin,
        plugin.limits.timeout.max(MIN_INIT_TIMEOUT),
    );
    store
}

/// Set the deadline (and fuel) for the next call. Returns the call's wall-clock limit: the
/// epoch deadline stops wasm code that runs too long, the wall-clock limit also stops a call
/// blocked in a host function (a sleep, a poll); `None` when call deadlines are off.
pub(crate) fn arm(
    store: &mut Store<HostState>,
    plugin: &Plugin,
    timeout: Duration,
) -> Option<Duration> {
    if plugin.fuel_enabled {
        // Fuel can only be set when metering is on; the runtime guarantees that here.
        let _ = store.set_fuel(plugin.limits.fuel.unwrap_or(u64::MAX));
    }
    if plugin.deadlines_enabled {
        store.data_mut().ticks_left = ticks(timeout);
        store.set_epoch_deadline(1);
        Some(timeout)
    } else {
        None
    }
}

/// The time `init` (with instantiation and `partition-opened`) may take.
pub(crate) fn init_limit(plugin: &Plugin) -> Option<Duration> {
    plugin
        .deadlines_enabled
        .then(|| plugin.limits.timeout.max(MIN_INIT_TIMEOUT))
}

/// Run one plugin call within `limit` of wall time, whatever the plugin is doing (computing,
/// sleeping, waiting in a host call). When the limit passes, the call's future is dropped,
/// which abandons the call; the caller must then discard the instance, as after a trap. The
/// timeout is reported as an epoch interrupt, so it classifies as [`PluginError::TimedOut`].
pub(crate) fn bounded<T, F: std::future::Future<Output = wasmtime::Result<T>>>(
    limit: Option<Duration>,
    ticks: &AtomicU64,
    call: F,
) -> Bounded<'_, F> {
    Bounded {
        call,
        limit,
        start: ticks.load(Ordering::Relaxed),
        ticks,
        timer: None,
    }
}

pin_project_lite::pin_project! {
    /// A call with a wall-clock deadline whose timer is only set up if the call ever waits:
    /// most calls run to the end in their first poll (pure wasm, bounded by the epoch
    /// deadline), and they should pay neither for a timer nor for reading the clock. The start
    /// is taken from the runtime's tick counter (an atomic load, 10 ms resolution).
    pub(crate) struct Bounded<'a, F> {
        #[pin]
        call: F,
        limit: Option<Duration>,
        start: u64,
        ticks: &'a AtomicU64,
        timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    }
}

impl<T, F: std::future::Future<Output = wasmtime::Result<T>>> std::future::Future
    for Bounded<'_, F>
{
    type Output = wasmtime::Result<T>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        use std::task::Poll;
        let this = self.project();
        if let Poll::Ready(result) = this.call.poll(cx) {
            return Poll::Ready(result);
        }
        let Some(limit) = *this.limit else {
            return Poll::Pending;
        };
        let (start, ticks) = (*this.start, *this.ticks);
        let timer = this.timer.get_or_insert_with(|| {
            let ran = ticks.load(Ordering::Relaxed).saturating_sub(start);
            let ran = EPOCH_TICK.saturating_mul(u32::try_from(ran).unwrap_or(u32::MAX));
            Box::pin(tokio::time::sleep(limit.saturating_sub(ran)))
        });
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(wasmtime::Error::from(Trap::Interrupt))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Sequence numbers of a call's first and last events (the sources it may emit for).
fn range_of(events: &[Event]) -> Option<(i64, i64)> {
    Some((
        events.first()?.sequence_number,
        events.last()?.sequence_number,
    ))
}

/// Turn a failed call into the error callers branch on.
pub(crate) fn classify(
    plugin: &Plugin,
    state: &mut HostState,
    err: wasmtime::Error,
) -> PluginError {
    let name = plugin.name.to_string();
    if let Some(fault) = err
        .chain()
        .find_map(|e| e.downcast_ref::<super::effects::EffectFault>())
    {
        return PluginError::EffectUnavailable {
            plugin: name,
            message: fault.0.clone(),
        };
    }
    if let Some(requested) = state.limiter.take_hit() {
        return PluginError::MemoryLimit {
            plugin: name,
            limit: state.limiter.limit(),
            requested,
        };
    }
    let trap = err.downcast_ref::<Trap>().copied();
    match trap {
        Some(Trap::Interrupt) => PluginError::TimedOut {
            plugin: name,
            timeout: plugin.limits.timeout,
        },
        Some(Trap::OutOfFuel) => PluginError::OutOfFuel {
            plugin: name,
            fuel: plugin.limits.fuel.unwrap_or(0),
        },
        _ => {
            let message = match trap {
                Some(trap) => trap.to_string(),
                None => err
                    .chain()
                    .last()
                    .map(|cause| cause.to_string())
                    .unwrap_or_else(|| err.to_string()),
            };
            PluginError::Trapped {
                plugin: name,
                message,
                stderr: state.take_stderr_tail(),
                backtrace: err
                    .downcast_ref::<WasmBacktrace>()
                    .map(short_backtrace)
                    .unwrap_or_default(),
            }
        }
    }
}

/// The innermost frames of a trap, demangled, skipping the panic and abort machinery so the
/// frames shown are the plugin's own.
fn short_backtrace(bt: &WasmBacktrace) -> String {
    let names: Vec<String> = bt
        .frames()
        .iter()
        .map(|frame| match frame.func_name() {
            Some(name) => format!("{:#}", rustc_demangle::demangle(name)),
            None => format!("<wasm function {}>", frame.func_index()),
        })
        .collect();
    let is_machinery = |name: &str| {
        const PREFIXES: &[&str] = &[
            "abort",
            "std::",
            "core::",
            "__rustc::",
            "__rust",
            "rust_panic",
            "<std::",
            "<core::",
        ];
        PREFIXES.iter().any(|p| name.starts_with(p))
    };
    let skipped = names.iter().take_while(|n| is_machinery(n)).count();
    let mut out: Vec<String> = names
        .iter()
        .skip(skipped)
        .take(BACKTRACE_FRAMES)
        .enumerate()
        .map(|(i, name)| format!("    {}: {name}", i + skipped))
        .collect();
    let shown = skipped + out.len();
    if skipped > 0 {
        out.insert(0, format!("    ({skipped} panic/abort frames skipped)"));
    }
    if names.len() > shown {
        out.push(format!("    ... {} more frames", names.len() - shown));
    }
    out.join("\n")
}

fn plugin_verdict(plugin: &Plugin, verdict: Verdict) -> PluginError {
    let name = plugin.name.to_string();
    match verdict {
        Verdict::Retryable {
            message,
            retry_after_ms,
        } => PluginError::Retryable {
            plugin: name,
            message,
            retry_after: retry_after_ms.map(|ms| Duration::from_millis(ms.into())),
        },
        Verdict::Rejected(message) => PluginError::Rejected {
            plugin: name,
            message,
        },
    }
}
