//! The partitions this host owns and what each is doing. Written by the serve loop and the
//! batch step; read by resume, swap (a spare instance per owned partition), the stall watchdog,
//! the idle exit and the status. Control state, kept apart from the metrics.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::event::PartitionContext;

/// What an owned partition is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionState {
    Running,
    /// Backing off before calling the plugin again on a failing event.
    Retrying,
    /// Stopped by the `halt` policy; keeps its ownership until the host stops.
    Halted,
    /// The plugin cannot run (it cannot be instantiated or its `init` fails): the partition
    /// waits with backoff and tries again; no event counts as failed meanwhile.
    Paused,
    /// A store the partition needs before its next events (dedupe keys) does not answer: the
    /// partition waits with backoff; nothing is skipped or lost.
    StoreDown,
    /// An event failed its last attempt under a version still within its rollback window: it
    /// waits for the version's verdict (rolled back: retried on the old version; cleared: the
    /// failure policy applies).
    Held,
}

/// One owned partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedPartition {
    pub event_hub: String,
    pub consumer_group: String,
    pub partition: String,
    pub state: PartitionState,
}

/// The table of owned partitions.
#[derive(Debug)]
pub struct Owned {
    /// (event hub, consumer group, partition) → state.
    table: Mutex<BTreeMap<(String, String, String), PartitionState>>,
    /// When a partition last changed state, was opened or closed (activity for the idle exit).
    changed: Mutex<Instant>,
}

impl Default for Owned {
    fn default() -> Self {
        Self {
            table: Mutex::new(BTreeMap::new()),
            changed: Mutex::new(Instant::now()),
        }
    }
}

impl Owned {
    /// What `ctx`'s partition does now; `None` once it is no longer owned.
    pub fn set(&self, ctx: &PartitionContext, state: Option<PartitionState>) {
        let key = (
            ctx.event_hub.clone(),
            ctx.consumer_group.clone(),
            ctx.partition_id.clone(),
        );
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        match state {
            Some(s) => table.insert(key, s),
            None => table.remove(&key),
        };
        drop(table);
        *self.changed.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// Every owned partition, ordered by event hub, consumer group and partition.
    pub fn list(&self) -> Vec<OwnedPartition> {
        self.table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|((hub, group, partition), state)| OwnedPartition {
                event_hub: hub.clone(),
                consumer_group: group.clone(),
                partition: partition.clone(),
                state: *state,
            })
            .collect()
    }

    /// The owned partitions of one event hub and consumer group.
    pub fn of(&self, event_hub: &str, consumer_group: &str) -> Vec<OwnedPartition> {
        let mut list = self.list();
        list.retain(|o| o.event_hub == event_hub && o.consumer_group == consumer_group);
        list
    }

    pub fn is_empty(&self) -> bool {
        self.table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// Time since a partition last changed state, opened or closed.
    pub fn unchanged_for(&self) -> Duration {
        self.changed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
    }
}
