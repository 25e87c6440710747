//! What plugin calls did besides their verdict, staged until the partition commits them: emitted
//! events, state writes and `first-seen` keys.
//!
//! Each instance keeps two journals: the running call's, and the batch's (calls of the current
//! batch that succeeded). A call that fails loses its journal; one that succeeds adds it to the
//! batch's, which the partition takes after the batch and commits (outputs acknowledged, state
//! committed with the position, keys recorded) before the checkpoint.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use super::dedupe::DedupeStore;
use super::state::PartitionState;
use crate::event::PropertyValue;

/// The most a call may emit, in bytes of bodies (events queued in memory until it succeeds).
pub const MAX_EMIT_BYTES_PER_CALL: usize = 64 * 1024 * 1024;
/// The largest body one emitted event may have (Event Hubs' premium/dedicated event size).
pub const MAX_EMIT_BODY: usize = 1024 * 1024;

/// An event a plugin emitted.
#[derive(Debug, Clone, PartialEq)]
pub struct Emitted {
    /// Index into the partition's outputs.
    pub output: usize,
    /// The sequence number of the event it was emitted for, and its number among that event's
    /// emitted events (together: the message id).
    pub source: i64,
    pub index: u32,
    pub body: Vec<u8>,
    pub partition_key: Option<String>,
    pub content_type: Option<String>,
    pub properties: Vec<(String, PropertyValue)>,
}

/// Staged effects.
#[derive(Debug, Default)]
pub struct Journal {
    pub emitted: Vec<Emitted>,
    pub emitted_bytes: usize,
    /// Emitted events per source event (to number the next one).
    counts: HashMap<i64, u32>,
    /// State writes: a value, or `None` for a delete. Later writes of a key replace earlier ones.
    pub writes: BTreeMap<String, Option<Vec<u8>>>,
    /// How much the writes change the partition's state size, in bytes.
    pub bytes_delta: i64,
    /// `first-seen` keys answered true, with their time to live.
    pub seen: Vec<(String, Duration)>,
    seen_keys: HashSet<String>,
}

impl Journal {
    pub fn is_empty(&self) -> bool {
        self.emitted.is_empty() && self.writes.is_empty() && self.seen.is_empty()
    }

    /// Add what a successful call staged.
    pub fn absorb(&mut self, call: Journal) {
        self.emitted.extend(call.emitted);
        self.emitted_bytes += call.emitted_bytes;
        for (source, n) in call.counts {
            *self.counts.entry(source).or_default() += n;
        }
        self.writes.extend(call.writes);
        self.bytes_delta += call.bytes_delta;
        for (key, ttl) in call.seen {
            if self.seen_keys.insert(key.clone()) {
                self.seen.push((key, ttl));
            }
        }
    }

    /// The writes, in key order.
    pub fn state_writes(&self) -> Vec<super::state::Write> {
        self.writes
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The `first-seen` keys answered true, grouped by time to live: one store call each.
    pub fn seen_by_ttl(&self) -> BTreeMap<Duration, Vec<String>> {
        let mut by_ttl: BTreeMap<Duration, Vec<String>> = BTreeMap::new();
        for (key, ttl) in &self.seen {
            by_ttl.entry(*ttl).or_default().push(key.clone());
        }
        by_ttl
    }
}

/// What a partition lets its plugin's effects reach.
pub struct Binding {
    /// The configured outputs' names, in the order `Emitted::output` indexes.
    pub outputs: Vec<String>,
    pub state: Option<Arc<PartitionState>>,
    /// The consumer group's dedupe store and scope, for `first-seen`.
    pub first_seen: Option<(Arc<dyn DedupeStore>, String)>,
    /// For messages: `<event hub>/<consumer group>`.
    pub hub: String,
}

/// An instance's effects: the partition's binding and the two journals.
#[derive(Default)]
pub struct Effects {
    pub binding: Option<Arc<Binding>>,
    /// Sequence numbers of the running call's first and last events.
    pub range: Option<(i64, i64)>,
    pub batch: Journal,
    pub call: Journal,
}

impl Effects {
    /// The next number among `source`'s emitted events.
    pub fn next_index(&mut self, source: i64) -> u32 {
        let before = self.batch.counts.get(&source).copied().unwrap_or(0);
        let count = self.call.counts.entry(source).or_default();
        let index = before + *count;
        *count += 1;
        index
    }

    /// A staged or committed value of `key`.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        for journal in [&self.call, &self.batch] {
            if let Some(value) = journal.writes.get(key) {
                return value.clone();
            }
        }
        self.binding.as_ref()?.state.as_ref()?.get(key)
    }

    /// Whether `key` was answered `first-seen` in this batch already.
    pub fn seen_in_batch(&self, key: &str) -> bool {
        self.call.seen_keys.contains(key) || self.batch.seen_keys.contains(key)
    }

    /// Stage a `first-seen` key.
    pub fn stage_seen(&mut self, key: String, ttl: Duration) {
        if self.call.seen_keys.insert(key.clone()) {
            self.call.seen.push((key, ttl));
        }
    }

    /// The call succeeded: keep its effects for the batch.
    pub fn call_succeeded(&mut self) {
        let call = std::mem::take(&mut self.call);
        self.batch.absorb(call);
    }

    /// The call failed: forget its effects.
    pub fn call_failed(&mut self) {
        self.call = Journal::default();
    }

    /// The size of `key`'s entry as the plugin sees it now (staged or committed), in bytes.
    fn entry_size(&self, key: &str) -> i64 {
        let size = |len: Option<usize>| len.map_or(0, |len| (key.len() + len) as i64);
        for journal in [&self.call, &self.batch] {
            if let Some(value) = journal.writes.get(key) {
                return size(value.as_ref().map(Vec::len));
            }
        }
        let committed = self
            .binding
            .as_ref()
            .and_then(|b| b.state.as_ref())
            .and_then(|s| s.value_len(key));
        size(committed)
    }

    /// How the partition's state size changes if `key` takes a value of `len` bytes (`None`:
    /// if it is deleted).
    pub fn size_change(&self, key: &str, len: Option<usize>) -> i64 {
        len.map_or(0, |len| (key.len() + len) as i64) - self.entry_size(key)
    }

    /// Stage a write of `key` (a value, or `None` to delete it) whose [`size_change`] is
    /// `change`.
    ///
    /// [`size_change`]: Self::size_change
    pub fn stage_write(&mut self, key: String, value: Option<Vec<u8>>, change: i64) {
        self.call.bytes_delta += change;
        self.call.writes.insert(key, value);
    }

    /// The partition's state size with the staged writes, in bytes.
    pub fn state_bytes(&self) -> usize {
        let committed = self
            .binding
            .as_ref()
            .and_then(|b| b.state.as_ref())
            .map_or(0, |s| s.bytes() as i64);
        (committed + self.batch.bytes_delta + self.call.bytes_delta).max(0) as usize
    }

    /// Scan staged and committed entries with `prefix` after `after`, at most `limit`.
    pub fn scan(&self, prefix: &str, after: Option<&str>, limit: usize) -> Vec<(String, Vec<u8>)> {
        let Some(state) = self.binding.as_ref().and_then(|b| b.state.as_ref()) else {
            return Vec::new();
        };
        // Committed entries (enough of them to fill the page after staged deletes), overlaid
        // with the staged writes in the range.
        let staged: usize = self.call.writes.len() + self.batch.writes.len();
        let mut merged: BTreeMap<String, Option<Vec<u8>>> = state
            .scan(prefix, after, limit.saturating_add(staged))
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect();
        for journal in [&self.batch, &self.call] {
            for (k, v) in &journal.writes {
                if k.starts_with(prefix) && after.is_none_or(|a| k.as_str() > a) {
                    merged.insert(k.clone(), v.clone());
                }
            }
        }
        merged
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .take(limit)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_seen_keys_are_grouped_by_time_to_live() {
        let mut effects = Effects::default();
        let hour = Duration::from_secs(3600);
        let day = Duration::from_secs(86_400);
        effects.stage_seen("a".into(), hour);
        effects.stage_seen("b".into(), day);
        effects.stage_seen("c".into(), hour);
        effects.stage_seen("a".into(), day); // a repeat keeps its first answer
        effects.call_succeeded();
        let grouped = effects.batch.seen_by_ttl();
        assert_eq!(
            grouped.into_iter().collect::<Vec<_>>(),
            vec![
                (hour, vec!["a".to_string(), "c".to_string()]),
                (day, vec!["b".to_string()])
            ]
        );
    }
}
