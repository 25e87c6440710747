//! Counters of a running host, for the periodic one-line summary and the final report.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a partition is doing, as the summary shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionState {
    Running,
    /// Backing off before calling the plugin again on a failing event.
    Retrying,
    /// Stopped by the `halt` policy; keeps its ownership until the host stops.
    Halted,
}

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
    last_activity: Mutex<Instant>,
    /// When the first and the latest events were handled (for throughput over the busy span).
    handled_span: Mutex<Option<(Instant, Instant)>>,
    /// (event hub, partition) → state, for owned partitions.
    owned: Mutex<BTreeMap<(String, String), PartitionState>>,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            handled: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            checkpoints: AtomicU64::new(0),
            store_errors: AtomicU64::new(0),
            last_activity: Mutex::new(Instant::now()),
            handled_span: Mutex::new(None),
            owned: Mutex::new(BTreeMap::new()),
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
    pub owned: Vec<(String, String, PartitionState)>,
}

impl Stats {
    pub fn add_handled(&self, n: u64) {
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

    pub fn set_state(&self, hub: &str, partition: &str, state: Option<PartitionState>) {
        let mut owned = self.owned.lock().unwrap_or_else(|e| e.into_inner());
        let key = (hub.to_string(), partition.to_string());
        match state {
            Some(s) => {
                owned.insert(key, s);
            }
            None => {
                owned.remove(&key);
            }
        }
        drop(owned);
        self.touch();
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            handled: self.handled.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            checkpoints: self.checkpoints.load(Ordering::Relaxed),
            store_errors: self.store_errors.load(Ordering::Relaxed),
            owned: self
                .owned
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|((h, p), s)| (h.clone(), p.clone(), *s))
                .collect(),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

impl Snapshot {
    /// `handled 12 000 (2 400/s), failures 0, dead-lettered 0, owned 4: events/0 events/1 ...`
    pub fn line(&self, previous: &Snapshot, over: Duration) -> String {
        let rate = (self.handled - previous.handled.min(self.handled)) as f64
            / over.as_secs_f64().max(1e-9);
        let owned: Vec<String> = self
            .owned
            .iter()
            .map(|(h, p, s)| match s {
                PartitionState::Running => format!("{h}/{p}"),
                PartitionState::Retrying => format!("{h}/{p}(retrying)"),
                PartitionState::Halted => format!("{h}/{p}(HALTED)"),
            })
            .collect();
        let mut line = format!(
            "{:.0} events/s, handled {}, failures {}, dead-lettered {}, checkpoints {}, owned {}",
            rate,
            self.handled,
            self.failures,
            self.dead_lettered,
            self.checkpoints,
            self.owned.len()
        );
        if !owned.is_empty() {
            line.push_str(&format!(" ({})", owned.join(" ")));
        }
        if self.store_errors > 0 {
            line.push_str(&format!(", store errors {}", self.store_errors));
        }
        line
    }
}
