//! Counters of a running host, for the periodic one-line summary and the final report.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::metrics::{MetricEvent, Prometheus};

pub use super::owned::{OwnedPartition, PartitionState};

/// Shared counters; cheap to update from every partition task.
#[derive(Debug)]
pub struct Stats {
    started: Instant,
    /// Events the plugin handled successfully.
    pub handled: AtomicU64,
    /// Plugin calls on an event that failed (each retry counts).
    pub failures: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub checkpoints: AtomicU64,
    pub store_errors: AtomicU64,
    /// Times a partition paused because the plugin could not start.
    pub pauses: AtomicU64,
    /// Events skipped as duplicates (`[eventhub.dedupe]`).
    pub duplicates: AtomicU64,
    /// Events the plugin emitted, acknowledged by their outputs.
    pub emitted: AtomicU64,
    last_activity: Mutex<Instant>,
    /// When the first and the latest events were handled (for throughput over the busy span).
    handled_span: Mutex<Option<(Instant, Instant)>>,
    /// Plugin versions swapped in.
    pub swaps: AtomicU64,
    /// The same events with their labels, for `/metrics`.
    prometheus: Prometheus,
    /// The latest swap pauses (at most [`SWAP_PAUSES_KEPT`]), for benchmarks and `/status`.
    swap_pauses: Mutex<std::collections::VecDeque<Duration>>,
    /// (event hub, consumer group) → why its consumer cannot run now (a consumer group that
    /// does not exist), for `/status` and `/readyz`.
    problems: Mutex<BTreeMap<(String, String), String>>,
}

/// Swap pauses kept for percentiles.
pub const SWAP_PAUSES_KEPT: usize = 10_000;

impl Default for Stats {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            handled: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            checkpoints: AtomicU64::new(0),
            store_errors: AtomicU64::new(0),
            pauses: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            emitted: AtomicU64::new(0),
            swaps: AtomicU64::new(0),
            last_activity: Mutex::new(Instant::now()),
            handled_span: Mutex::new(None),
            prometheus: Prometheus::default(),
            swap_pauses: Mutex::new(std::collections::VecDeque::new()),
            problems: Mutex::new(BTreeMap::new()),
        }
    }
}

/// A moment's view of [`Stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub handled: u64,
    pub failures: u64,
    pub dead_lettered: u64,
    pub checkpoints: u64,
    pub store_errors: u64,
    pub pauses: u64,
    pub duplicates: u64,
    pub emitted: u64,
}

impl Stats {
    /// Record what happened: the summary's counters and the labelled Prometheus families.
    pub fn record(&self, event: MetricEvent<'_>) {
        match &event {
            MetricEvent::EventsHandled { n, .. } => self.add_handled(*n),
            MetricEvent::Failure { .. } => {
                self.failures.fetch_add(1, Ordering::Relaxed);
            }
            MetricEvent::DeadLettered { n, .. } => {
                self.dead_lettered.fetch_add(*n, Ordering::Relaxed);
            }
            MetricEvent::Retry { .. } => {}
            MetricEvent::Checkpoint { .. } => {
                self.checkpoints.fetch_add(1, Ordering::Relaxed);
            }
            MetricEvent::StoreError => {
                self.store_errors.fetch_add(1, Ordering::Relaxed);
            }
            MetricEvent::Paused { .. } => {
                self.pauses.fetch_add(1, Ordering::Relaxed);
            }
            MetricEvent::Swap { .. } => {
                self.swaps.fetch_add(1, Ordering::Relaxed);
            }
            MetricEvent::Duplicates { n, .. } => {
                self.duplicates.fetch_add(*n, Ordering::Relaxed);
            }
            MetricEvent::Emitted { n, .. } => {
                self.emitted.fetch_add(*n, Ordering::Relaxed);
            }
            MetricEvent::SwapPause { took, .. } => {
                let mut pauses = self.swap_pauses.lock().unwrap_or_else(|e| e.into_inner());
                if pauses.len() == SWAP_PAUSES_KEPT {
                    pauses.pop_front();
                }
                pauses.push_back(*took);
            }
        }
        self.prometheus.record(&event);
    }

    /// A swap on an event hub (see [`crate::host::HostHandle::swap`]).
    pub fn record_swap(&self, event_hub: &str, consumer_group: &str) {
        self.record(MetricEvent::Swap {
            event_hub,
            consumer_group,
        });
    }

    /// The latest swap pauses, oldest first.
    pub fn swap_pauses(&self) -> Vec<Duration> {
        self.swap_pauses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect()
    }

    /// A partition's lag, for `/metrics`.
    pub fn set_lag(&self, event_hub: &str, consumer_group: &str, partition: &str, lag: i64) {
        self.prometheus
            .set_lag(event_hub, consumer_group, partition, lag);
    }

    /// The tenant an event hub's consumer group belongs to (its metrics carry the label).
    pub fn set_tenant(&self, event_hub: &str, consumer_group: &str, tenant: &str) {
        self.prometheus
            .set_tenant(event_hub, consumer_group, tenant);
    }

    /// A tenant's usage, for `/metrics`.
    pub fn set_tenant_usage(&self, tenant: &str, usage: &crate::tenant::UsageSnapshot) {
        self.prometheus.set_tenant_usage(tenant, usage);
    }

    /// `/metrics`: the Prometheus text exposition.
    pub fn prometheus_text(&self) -> String {
        self.prometheus.encode()
    }

    fn add_handled(&self, n: u64) {
        self.handled.fetch_add(n, Ordering::Relaxed);
        let now = Instant::now();
        let mut span = self.handled_span.lock().unwrap_or_else(|e| e.into_inner());
        *span = Some((span.map_or(now, |s| s.0), now));
        drop(span);
        self.touch();
    }

    /// Time from the first handled event to the latest.
    pub fn busy_span(&self) -> Duration {
        self.handled_span
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map_or(Duration::ZERO, |(first, last)| last - first)
    }

    pub fn touch(&self) {
        *self.last_activity.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// Time since an event was last handled (or a partition opened or closed).
    pub fn idle_for(&self) -> Duration {
        self.last_activity
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
    }

    /// Record (`Some`) or clear why an event hub's consumer cannot run.
    pub fn set_problem(&self, event_hub: &str, consumer_group: &str, problem: Option<String>) {
        let mut problems = self.problems.lock().unwrap_or_else(|e| e.into_inner());
        let key = (event_hub.to_string(), consumer_group.to_string());
        match problem {
            Some(p) => {
                problems.insert(key, p);
            }
            None => {
                problems.remove(&key);
            }
        }
    }

    /// Why an event hub's consumer cannot run now, if it cannot.
    pub fn problem(&self, event_hub: &str, consumer_group: &str) -> Option<String> {
        self.problems
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(event_hub.to_string(), consumer_group.to_string()))
            .cloned()
    }

    /// Whether any event hub's consumer cannot run.
    pub fn has_problems(&self) -> bool {
        !self
            .problems
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            handled: self.handled.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            checkpoints: self.checkpoints.load(Ordering::Relaxed),
            store_errors: self.store_errors.load(Ordering::Relaxed),
            pauses: self.pauses.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            emitted: self.emitted.load(Ordering::Relaxed),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

impl Snapshot {
    /// `handled 12 000 (2 400/s), failures 0, dead-lettered 0, owned 4: events/0 events/1 ...`
    pub fn line(&self, previous: &Snapshot, over: Duration, owned: &[OwnedPartition]) -> String {
        let rate = (self.handled - previous.handled.min(self.handled)) as f64
            / over.as_secs_f64().max(1e-9);
        // The consumer group is named only when this host serves several on one event hub.
        let groups: std::collections::BTreeSet<(&str, &str)> = owned
            .iter()
            .map(|o| (o.event_hub.as_str(), o.consumer_group.as_str()))
            .collect();
        let several = |hub: &str| groups.iter().filter(|(h, _)| *h == hub).count() > 1;
        let names: Vec<String> = owned
            .iter()
            .map(|o| {
                let name = if several(&o.event_hub) {
                    format!("{}[{}]/{}", o.event_hub, o.consumer_group, o.partition)
                } else {
                    format!("{}/{}", o.event_hub, o.partition)
                };
                match o.state {
                    PartitionState::Running => name,
                    PartitionState::Retrying => format!("{name}(retrying)"),
                    PartitionState::Halted => format!("{name}(HALTED)"),
                    PartitionState::Paused => format!("{name}(PAUSED: plugin cannot start)"),
                    PartitionState::StoreDown => format!("{name}(PAUSED: dedupe store down)"),
                    PartitionState::Held => format!("{name}(HELD: new version under judgement)"),
                }
            })
            .collect();
        let mut line = format!(
            "{:.0} events/s, handled {}, failures {}, dead-lettered {}, checkpoints {}, owned {}",
            rate,
            self.handled,
            self.failures,
            self.dead_lettered,
            self.checkpoints,
            owned.len()
        );
        if !names.is_empty() {
            line.push_str(&format!(" ({})", names.join(" ")));
        }
        if self.pauses > 0 {
            line.push_str(&format!(", plugin-start pauses {}", self.pauses));
        }
        if self.store_errors > 0 {
            line.push_str(&format!(", store errors {}", self.store_errors));
        }
        if self.duplicates > 0 {
            line.push_str(&format!(", duplicates skipped {}", self.duplicates));
        }
        if self.emitted > 0 {
            line.push_str(&format!(", emitted {}", self.emitted));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::PartitionContext;

    fn ctx(group: &str, partition: &str) -> PartitionContext {
        PartitionContext {
            namespace: "ns".into(),
            event_hub: "events".into(),
            consumer_group: group.into(),
            partition_id: partition.into(),
        }
    }

    #[test]
    fn two_consumer_groups_on_one_hub_keep_their_own_rows() {
        let owned = super::super::owned::Owned::default();
        owned.set(&ctx("a", "0"), Some(PartitionState::Running));
        owned.set(&ctx("b", "0"), Some(PartitionState::Halted));
        let list = owned.list();
        assert_eq!(list.len(), 2, "{list:?}");
        let line = Snapshot::default().line(&Snapshot::default(), Duration::from_secs(1), &list);
        assert!(line.contains("owned 2"), "{line}");
        assert!(line.contains("events[a]/0"), "{line}");
        assert!(line.contains("events[b]/0(HALTED)"), "{line}");
        // Releasing one group's partition leaves the other's row alone.
        owned.set(&ctx("a", "0"), None);
        let list = owned.list();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].consumer_group, "b");
        assert_eq!(list[0].state, PartitionState::Halted);
    }

    #[test]
    fn a_paused_partition_says_so_in_the_summary() {
        let owned = super::super::owned::Owned::default();
        owned.set(&ctx("$Default", "3"), Some(PartitionState::Paused));
        let line =
            Snapshot::default().line(&Snapshot::default(), Duration::from_secs(1), &owned.list());
        assert!(line.contains("events/3(PAUSED"), "{line}");
    }
}
