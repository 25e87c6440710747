//! Keyed state per partition (`[eventhub.state]`, contract 0.2's `state` import), exactly once
//! with respect to the checkpoint.
//!
//! A partition's state lives in its store together with a *position*: the sequence number of
//! the last event whose writes it holds. The partition loads both when it opens and keeps the
//! entries in memory (reads never wait on the store). A call's writes are staged (see
//! [`super::journal`]) and committed in one store transaction with the new position, *before*
//! the checkpoint is written, and only if the store's position is still the one this host last
//! saw: a host that lost the partition cannot commit over its successor (it stops instead). A
//! host taking the partition over skips events up to the loaded position, so an event's writes
//! are applied once, whatever crashed and whenever.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

/// The longest state key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// At most this many entries per `scan-prefix` call.
pub const MAX_SCAN: usize = 1000;

/// Why the state store could not answer (the partition pauses and retries; nothing is lost).
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state store {store}: {message}")]
    Store { store: String, message: String },
    #[error(
        "state store {store}: the partition's state of {bytes} bytes exceeds max_bytes = {limit}; \
         raise `max_bytes` in [eventhub.state]"
    )]
    TooLarge {
        store: String,
        bytes: usize,
        limit: usize,
    },
}

/// A commit's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// The writes and the position are stored.
    Done,
    /// The store's position is not the one expected: another host committed this partition
    /// since (it owns it now). Nothing was written.
    Fenced,
}

/// One staged write: a value, or `None` to delete the key.
pub type Write = (String, Option<Vec<u8>>);

/// A commit of state: `writes` applied and the position set to `position`, if the stored
/// position is still `expected` (the host that commits still owns the partition).
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    pub expected: Option<i64>,
    pub position: i64,
    pub writes: &'a [Write],
}

/// Where partitions' state is kept.
#[async_trait::async_trait]
pub trait StateStore: Send + Sync {
    /// The partition's position and entries.
    async fn load(&self, scope: &str) -> Result<(Option<i64>, Vec<(String, Vec<u8>)>), StateError>;
    /// Apply the change's writes and set its position, if the stored position is still the
    /// one it expects; all or nothing.
    async fn commit(&self, scope: &str, change: Change<'_>) -> Result<Committed, StateError>;
    /// For logs: what and where the store is.
    fn describe(&self) -> String;
}

/// A partition's committed state, in memory.
#[derive(Debug, Default)]
pub struct Entries {
    pub entries: BTreeMap<String, Vec<u8>>,
    /// Keys and values, in bytes.
    pub bytes: usize,
    /// The position the store holds (as loaded, then as committed by this host).
    pub position: Option<i64>,
}

/// The state of one partition as a plugin call sees it: the committed entries plus limits.
pub struct PartitionState {
    pub store: Arc<dyn StateStore>,
    /// `<namespace>/<event hub>/<consumer group>/<partition>`.
    pub scope: String,
    pub max_value_bytes: usize,
    pub max_bytes: usize,
    pub committed: std::sync::Mutex<Entries>,
}

impl PartitionState {
    /// Load the partition's state from `store`.
    pub async fn load(
        store: Arc<dyn StateStore>,
        scope: String,
        max_value_bytes: usize,
        max_bytes: usize,
    ) -> Result<Self, StateError> {
        let (position, rows) = store.load(&scope).await?;
        let mut committed = Entries {
            position,
            ..Default::default()
        };
        for (k, v) in rows {
            committed.bytes += k.len() + v.len();
            committed.entries.insert(k, v);
        }
        Ok(Self {
            store,
            scope,
            max_value_bytes,
            max_bytes,
            committed: std::sync::Mutex::new(committed),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.committed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The stored position: events up to it are in the state already.
    pub fn position(&self) -> Option<i64> {
        self.lock().position
    }

    /// The committed value of `key`.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.lock().entries.get(key).cloned()
    }

    /// The length of `key`'s committed value, without copying it.
    pub fn value_len(&self, key: &str) -> Option<usize> {
        self.lock().entries.get(key).map(Vec::len)
    }

    /// Committed size in bytes.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Committed entries with `prefix`, after `after`, at most `limit`.
    pub fn scan(&self, prefix: &str, after: Option<&str>, limit: usize) -> Vec<(String, Vec<u8>)> {
        let state = self.lock();
        let start = match after {
            Some(a) if a >= prefix => Bound::Excluded(a.to_string()),
            _ => Bound::Included(prefix.to_string()),
        };
        state
            .entries
            .range((start, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Commit `writes` with `position` (see [`StateStore::commit`]), then apply them here.
    pub async fn commit(&self, position: i64, writes: &[Write]) -> Result<Committed, StateError> {
        let expected = self.position();
        let outcome = self
            .store
            .commit(
                &self.scope,
                Change {
                    expected,
                    position,
                    writes,
                },
            )
            .await?;
        if outcome == Committed::Done {
            let mut state = self.lock();
            for (k, v) in writes {
                if let Some(old) = state.entries.remove(k) {
                    state.bytes -= k.len() + old.len();
                }
                if let Some(v) = v {
                    state.bytes += k.len() + v.len();
                    state.entries.insert(k.clone(), v.clone());
                }
            }
            state.position = Some(position);
        }
        Ok(outcome)
    }
}

/// State kept in this process only: for `hubwasm plugin test`, where nothing must outlive the
/// replay.
#[derive(Default)]
pub struct MemoryState {
    scopes: std::sync::Mutex<std::collections::HashMap<String, Loaded>>,
}

/// A partition's position and entries.
type Loaded = (Option<i64>, BTreeMap<String, Vec<u8>>);

#[async_trait::async_trait]
impl StateStore for MemoryState {
    async fn load(&self, scope: &str) -> Result<(Option<i64>, Vec<(String, Vec<u8>)>), StateError> {
        let scopes = self.scopes.lock().unwrap_or_else(|e| e.into_inner());
        Ok(scopes
            .get(scope)
            .map(|(p, rows)| (*p, rows.clone().into_iter().collect()))
            .unwrap_or_default())
    }

    async fn commit(&self, scope: &str, change: Change<'_>) -> Result<Committed, StateError> {
        let mut scopes = self.scopes.lock().unwrap_or_else(|e| e.into_inner());
        let (stored, rows) = scopes.entry(scope.to_string()).or_default();
        if *stored != change.expected {
            return Ok(Committed::Fenced);
        }
        for (k, v) in change.writes {
            match v {
                Some(v) => rows.insert(k.clone(), v.clone()),
                None => rows.remove(k),
            };
        }
        *stored = Some(change.position);
        Ok(Committed::Done)
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}
