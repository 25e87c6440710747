//! Metrics as typed events with labels: each site records what happened once
//! ([`Stats::record`](crate::processor::stats::Stats::record)), and the summary line, `/status`
//! and `/metrics` (Prometheus text) read from the same place.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::event::PartitionContext;

/// Labels of everything that happens on a partition.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    pub tenant: String,
    pub event_hub: String,
    pub consumer_group: String,
    pub partition: String,
    pub plugin: String,
    /// The plugin component's content hash (first 12 hex digits).
    pub plugin_version: String,
}

/// A failure's labels: the partition's and its kind (`retryable`, `rejected`, `trap`, ...).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    #[prometheus(flatten)]
    pub partition: PartitionLabels,
    pub kind: String,
}

/// Labels of an event hub as one consumer group reads it.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HubLabels {
    pub event_hub: String,
    pub consumer_group: String,
}

/// What happened, with what it happened to.
#[derive(Debug)]
pub enum MetricEvent<'a> {
    /// The plugin handled `n` events in one call that took `took`.
    EventsHandled {
        call: Call<'a>,
        n: u64,
        took: Duration,
    },
    /// A plugin call failed on an event (each retry counts).
    Failure { call: Call<'a>, kind: &'static str },
    /// Events written to the dead-letter sink.
    DeadLettered { call: Call<'a>, n: u64 },
    /// A retry of a failed event was scheduled.
    Retry { call: Call<'a> },
    /// A checkpoint was written.
    Checkpoint { ctx: &'a PartitionContext },
    /// The checkpoint store refused a call (it is retried).
    StoreError,
    /// A partition paused because the plugin cannot start.
    Paused { ctx: &'a PartitionContext },
    /// A partition's first call on a new plugin version, `took` after the old one's last.
    SwapPause {
        ctx: &'a PartitionContext,
        took: Duration,
    },
    /// Events skipped because their dedupe key was recorded (`[eventhub.dedupe]`).
    Duplicates { ctx: &'a PartitionContext, n: u64 },
    /// Events the plugin emitted, acknowledged by their outputs.
    Emitted { ctx: &'a PartitionContext, n: u64 },
    /// A new plugin version took over an event hub.
    Swap {
        event_hub: &'a str,
        consumer_group: &'a str,
    },
}

/// Where a plugin call ran: the partition, and the plugin version that ran it.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub ctx: &'a PartitionContext,
    pub plugin: &'a str,
    pub version: &'a str,
}

impl<'a> Call<'a> {
    pub fn new(ctx: &'a PartitionContext, plugin: &'a crate::plugin::Plugin) -> Self {
        Call {
            ctx,
            plugin: plugin.name(),
            version: plugin.digest(),
        }
    }
}

/// The Prometheus families, registered once.
pub struct Prometheus {
    registry: Registry,
    handled: Family<PartitionLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    dead_lettered: Family<PartitionLabels, Counter>,
    retries: Family<PartitionLabels, Counter>,
    checkpoints: Family<HubPartition, Counter>,
    store_errors: Counter,
    pauses: Family<HubPartition, Counter>,
    duplicates: Family<HubPartition, Counter>,
    emitted: Family<HubPartition, Counter>,
    swaps: Family<HubLabels, Counter>,
    handler_seconds: Family<HubLabels, Histogram>,
    swap_pause_seconds: Family<HubLabels, Histogram>,
    lag: Family<HubPartition, Gauge>,
    checkpoint_age: Family<HubPartition, Gauge<f64, AtomicU64>>,
    /// When each partition's checkpoint was last written here (the age is computed at scrape).
    last_checkpoint: Mutex<HashMap<HubPartition, Instant>>,
    /// The tenant of each event hub's consumer groups, for the partition labels (by hub, then
    /// group, so a lookup borrows the context's names instead of copying them).
    tenant_of: std::sync::RwLock<HashMap<String, HashMap<String, String>>>,
    tenant_events: Family<TenantLabels, Counter>,
    tenant_bytes: Family<TenantLabels, Counter>,
    tenant_failures: Family<TenantLabels, Counter>,
    tenant_storms: Family<TenantLabels, Counter>,
    tenant_busy_seconds: Family<TenantLabels, Counter<f64, AtomicU64>>,
    tenant_throttled_seconds: Family<TenantLabels, Counter<f64, AtomicU64>>,
    tenant_in_flight: Family<TenantLabels, Gauge>,
    tenant_memory_peak_bytes: Family<TenantLabels, Gauge>,
}

/// A tenant.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabels {
    pub tenant: String,
}

/// A partition without the plugin (checkpoints and pauses are the host's, not a version's).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HubPartition {
    pub event_hub: String,
    pub consumer_group: String,
    pub partition: String,
}

impl std::fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Prometheus")
    }
}

/// `let field = register(r, name, help);` for each line (the types come from the struct).
macro_rules! families {
    ($r:ident; $($field:ident: $name:literal, $help:literal;)*) => {
        $(let $field = register($r, $name, $help);)*
    };
}

/// A histogram per event hub registered under `name`, each made by `new` (its buckets).
fn histograms(
    registry: &mut Registry,
    name: &str,
    help: &str,
    new: fn() -> Histogram,
) -> Family<HubLabels, Histogram> {
    let family = Family::new_with_constructor(new);
    registry.register(name, help, family.clone());
    family
}

/// A new metric registered under `name`, handed back to be recorded into.
fn register<M>(registry: &mut Registry, name: &str, help: &str) -> M
where
    M: prometheus_client::registry::Metric + Clone + Default,
{
    let metric = M::default();
    registry.register(name, help, metric.clone());
    metric
}

fn hub_partition(ctx: &PartitionContext) -> HubPartition {
    HubPartition {
        event_hub: ctx.event_hub.clone(),
        consumer_group: ctx.consumer_group.clone(),
        partition: ctx.partition_id.clone(),
    }
}

impl Default for Prometheus {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("hubwasm");
        let r = &mut registry;
        families! { r;
            handled: "events_handled", "Events the plugin handled successfully";
            failures: "failures", "Plugin calls that failed on an event, by kind (each retry counts)";
            dead_lettered: "dead_letters", "Events written to the dead-letter sink";
            retries: "retries", "Retries of failed events scheduled";
            checkpoints: "checkpoints", "Checkpoints written";
            store_errors: "store_errors", "Checkpoint store calls that failed (retried)";
            pauses: "plugin_start_pauses", "Times a partition paused because its plugin could not start";
            duplicates: "duplicates_skipped", "Events skipped before the plugin because their dedupe key was recorded";
            emitted: "events_emitted", "Events the plugin emitted, acknowledged by their outputs";
            swaps: "plugin_swaps", "Plugin versions swapped in";
            lag: "partition_lag", "Events enqueued in the partition after its checkpoint (as of the last /status or /metrics read)";
            checkpoint_age: "checkpoint_age_seconds", "Time since this host last wrote the partition's checkpoint";
            tenant_events: "tenant_events", "Events a tenant's plugins were called with (retries count again)";
            tenant_bytes: "tenant_bytes", "Event body bytes a tenant's plugins were called with";
            tenant_failures: "tenant_failures", "A tenant's plugin calls that failed";
            tenant_storms: "tenant_storm_pauses", "Times a tenant's calls were paused because its failures stormed";
            tenant_busy_seconds: "tenant_busy_seconds", "Time spent inside a tenant's plugin calls";
            tenant_throttled_seconds: "tenant_throttled_seconds", "Time a tenant's calls waited for its rate limit";
            tenant_in_flight: "tenant_in_flight", "A tenant's plugin calls running now";
            tenant_memory_peak_bytes: "tenant_memory_peak_bytes", "The largest memory an instance of a tenant's plugins grew to";
        }
        // 10 µs to ~10 s.
        let handler_seconds = histograms(
            r,
            "handler_seconds",
            "Time of one plugin call (one event, or one batch)",
            || Histogram::new(exponential_buckets(0.00001, 4.0, 11)),
        );
        // 100 µs to ~26 s.
        let swap_pause_seconds = histograms(
            r,
            "swap_pause_seconds",
            "Per partition and swap: from the old version's last call to the new one's first",
            || Histogram::new(exponential_buckets(0.0001, 2.0, 18)),
        );
        Self {
            registry,
            swap_pause_seconds,
            lag,
            checkpoint_age,
            last_checkpoint: Mutex::new(HashMap::new()),
            tenant_of: std::sync::RwLock::new(HashMap::new()),
            tenant_events,
            tenant_bytes,
            tenant_failures,
            tenant_storms,
            tenant_busy_seconds,
            tenant_throttled_seconds,
            tenant_in_flight,
            tenant_memory_peak_bytes,
            handled,
            failures,
            dead_lettered,
            retries,
            checkpoints,
            store_errors,
            pauses,
            duplicates,
            emitted,
            swaps,
            handler_seconds,
        }
    }
}

impl Prometheus {
    /// Say which tenant an event hub's consumer group belongs to (before its first event).
    pub fn set_tenant(&self, event_hub: &str, consumer_group: &str, tenant: &str) {
        self.tenant_of
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(event_hub.into())
            .or_default()
            .insert(consumer_group.into(), tenant.into());
    }

    /// The labels of a call's partition.
    fn partition(&self, call: Call<'_>) -> PartitionLabels {
        let ctx = call.ctx;
        PartitionLabels {
            tenant: self.tenant(ctx),
            event_hub: ctx.event_hub.clone(),
            consumer_group: ctx.consumer_group.clone(),
            partition: ctx.partition_id.clone(),
            plugin: call.plugin.to_string(),
            plugin_version: call.version.chars().take(12).collect(),
        }
    }

    fn tenant(&self, ctx: &PartitionContext) -> String {
        self.tenant_of
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&ctx.event_hub)
            .and_then(|groups| groups.get(&ctx.consumer_group))
            .cloned()
            .unwrap_or_else(|| crate::config::DEFAULT_TENANT.into())
    }

    /// A tenant's usage as its metrics (counters move up to the new totals).
    pub fn set_tenant_usage(&self, tenant: &str, usage: &crate::tenant::UsageSnapshot) {
        let l = TenantLabels {
            tenant: tenant.into(),
        };
        let up = |c: &Counter, to: u64| {
            let have = c.get();
            if to > have {
                c.inc_by(to - have);
            }
        };
        up(&self.tenant_events.get_or_create(&l), usage.events);
        up(&self.tenant_bytes.get_or_create(&l), usage.bytes);
        up(&self.tenant_failures.get_or_create(&l), usage.failures);
        up(&self.tenant_storms.get_or_create(&l), usage.storms);
        let up_f = |c: &Counter<f64, AtomicU64>, to: f64| {
            let have = c.get();
            if to > have {
                c.inc_by(to - have);
            }
        };
        up_f(&self.tenant_busy_seconds.get_or_create(&l), usage.busy_secs);
        up_f(
            &self.tenant_throttled_seconds.get_or_create(&l),
            usage.throttled_secs,
        );
        self.tenant_in_flight
            .get_or_create(&l)
            .set(i64::try_from(usage.in_flight).unwrap_or(i64::MAX));
        self.tenant_memory_peak_bytes
            .get_or_create(&l)
            .set(i64::try_from(usage.memory_peak_bytes).unwrap_or(i64::MAX));
    }

    pub fn record(&self, event: &MetricEvent<'_>) {
        match *event {
            MetricEvent::EventsHandled { call, n, took } => {
                let ctx = call.ctx;
                self.handled.get_or_create(&self.partition(call)).inc_by(n);
                self.handler_seconds
                    .get_or_create(&HubLabels {
                        event_hub: ctx.event_hub.clone(),
                        consumer_group: ctx.consumer_group.clone(),
                    })
                    .observe(took.as_secs_f64());
            }
            MetricEvent::Failure { call, kind } => {
                let p = self.partition(call);
                self.failures
                    .get_or_create(&FailureLabels {
                        partition: p,
                        kind: kind.to_string(),
                    })
                    .inc();
            }
            MetricEvent::DeadLettered { call, n } => {
                self.dead_lettered
                    .get_or_create(&self.partition(call))
                    .inc_by(n);
            }
            MetricEvent::Retry { call } => {
                self.retries.get_or_create(&self.partition(call)).inc();
            }
            MetricEvent::Checkpoint { ctx } => {
                let key = hub_partition(ctx);
                self.checkpoints.get_or_create(&key).inc();
                self.last_checkpoint
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, Instant::now());
            }
            MetricEvent::StoreError => {
                self.store_errors.inc();
            }
            MetricEvent::Duplicates { ctx, n } => {
                self.duplicates.get_or_create(&hub_partition(ctx)).inc_by(n);
            }
            MetricEvent::Emitted { ctx, n } => {
                self.emitted.get_or_create(&hub_partition(ctx)).inc_by(n);
            }
            MetricEvent::Paused { ctx } => {
                self.pauses.get_or_create(&hub_partition(ctx)).inc();
            }
            MetricEvent::SwapPause { ctx, took } => {
                self.swap_pause_seconds
                    .get_or_create(&HubLabels {
                        event_hub: ctx.event_hub.clone(),
                        consumer_group: ctx.consumer_group.clone(),
                    })
                    .observe(took.as_secs_f64());
            }
            MetricEvent::Swap {
                event_hub,
                consumer_group,
            } => {
                self.swaps
                    .get_or_create(&HubLabels {
                        event_hub: event_hub.to_string(),
                        consumer_group: consumer_group.to_string(),
                    })
                    .inc();
            }
        }
    }

    /// A partition's lag, as last read from Event Hubs and the checkpoint store.
    pub fn set_lag(&self, event_hub: &str, consumer_group: &str, partition: &str, lag: i64) {
        self.lag
            .get_or_create(&HubPartition {
                event_hub: event_hub.into(),
                consumer_group: consumer_group.into(),
                partition: partition.into(),
            })
            .set(lag);
    }

    /// The Prometheus text exposition (OpenMetrics text, which Prometheus reads).
    pub fn encode(&self) -> String {
        for (key, at) in self
            .last_checkpoint
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            self.checkpoint_age
                .get_or_create(key)
                .set(at.elapsed().as_secs_f64());
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_labelled_with_its_partition_version_and_kind() {
        let prometheus = Prometheus::default();
        let ctx = PartitionContext::new("ns", "orders", "$Default", "3");
        prometheus.set_tenant("orders", "$Default", "acme");
        let call = Call {
            ctx: &ctx,
            plugin: "filter",
            version: "0123456789abcdef",
        };
        prometheus.record(&MetricEvent::Failure { call, kind: "trap" });
        prometheus.record(&MetricEvent::Failure { call, kind: "trap" });
        let text = prometheus.encode();
        let line = text
            .lines()
            .find(|l| l.starts_with("hubwasm_failures_total{"))
            .unwrap_or_else(|| panic!("{text}"));
        assert_eq!(
            line,
            "hubwasm_failures_total{tenant=\"acme\",event_hub=\"orders\",consumer_group=\"$Default\",\
             partition=\"3\",plugin=\"filter\",plugin_version=\"0123456789ab\",kind=\"trap\"} 2"
        );
    }
}
