//! One plugin instance: its store with the plugin's limits (memory, fuel, the epoch and
//! wall-clock deadlines of every call), how it starts (from a spare or fresh, `init`ed within
//! its time limit), and how a failed call is classified (trap, timeout, memory limit, the
//! plugin's own verdict) with a short wasm backtrace.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Store, Trap, WasmBacktrace};

use super::contract::{Exports, Verdict};
use super::error::PluginError;
use super::loaded::{ticks, Plugin, Spare, EPOCH_TICK};
use super::sandbox::HostState;
use crate::event::PartitionContext;

/// `init` and partition hooks get at least this long, even if the call limit is shorter.
pub(crate) const MIN_INIT_TIMEOUT: Duration = Duration::from_secs(5);

/// How many wasm frames a trap report shows.
const BACKTRACE_FRAMES: usize = 6;

pub(crate) struct Instance {
    pub(crate) plugin: Arc<Plugin>,
    pub(crate) generation: u64,
    pub(crate) store: Store<HostState>,
    pub(crate) exports: Exports,
}

impl Instance {
    /// A fresh instance: instantiated, `init`ed with the plugin's config and told about the open
    /// partition, all within the init time limit. Any failure here is a fault of the deployment
    /// (the plugin cannot start), never of an event: it comes back as an error whose
    /// [`FailureKind`](super::error::FailureKind) is `Unavailable`.
    pub(crate) async fn create(
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
    pub(crate) async fn from_spare(
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
    pub(crate) async fn start(
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
    pub(crate) fn arm(&mut self, timeout: Duration) -> Option<Duration> {
        arm(&mut self.store, &self.plugin, timeout)
    }

    /// The plugin (its tick counter), the store and the exports, borrowed apart for a call.
    pub(crate) fn parts(&mut self) -> (&Plugin, &mut Store<HostState>, &mut Exports) {
        (&self.plugin, &mut self.store, &mut self.exports)
    }

    pub(crate) fn classify(&mut self, err: wasmtime::Error) -> PluginError {
        classify(&self.plugin, self.store.data_mut(), err)
    }

    pub(crate) fn classify_owned(mut self, err: wasmtime::Error) -> PluginError {
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

pub(crate) fn plugin_verdict(plugin: &Plugin, verdict: Verdict) -> PluginError {
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
