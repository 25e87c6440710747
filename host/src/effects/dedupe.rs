//! The seed's "second checkpoint", with no plugin code: `[eventhub.dedupe]` takes a key from
//! each event (a JSON field of the body, a property, or the message id).
//!
//! A key is *claimed* atomically when its event enters a batch, in the name of that event
//! (`<partition>:<sequence number>`): a second copy anywhere in the consumer group, even one in
//! flight at the same instant on another partition, finds the claim and is skipped (counted as
//! a duplicate and checkpointed past). The claim becomes *committed* when the event was handled,
//! before the checkpoint moves. A redelivery of the claiming event itself (after a crash, a
//! retry or a takeover) finds its own pending claim and is processed; after the commit it is
//! skipped, so its effects do not happen twice. A claim whose event was dead-lettered stays
//! until it expires: the event's outcome stands.

use std::sync::Arc;
use std::time::Duration;

use crate::event::Event;

/// Why the dedupe store could not answer (the partition pauses and retries; nothing is lost).
#[derive(Debug, thiserror::Error)]
pub enum DedupeError {
    #[error("dedupe store {store}: {message}")]
    Store { store: String, message: String },
}

/// A key claimed in the name of one event, for a time: a lease that lapses unless committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub key: String,
    /// The claiming event: `<partition>:<sequence number>`.
    pub owner: String,
    /// How long the claim holds, and the committed key after it.
    pub ttl: Duration,
}

impl Claim {
    pub fn new(key: String, partition_id: &str, sequence_number: i64, ttl: Duration) -> Self {
        Self {
            key,
            owner: format!("{partition_id}:{sequence_number}"),
            ttl,
        }
    }
}

/// Where duplicates are remembered.
#[async_trait::async_trait]
pub trait DedupeStore: Send + Sync {
    /// For each key, whether it is recorded (or claimed) in `scope` and not expired.
    async fn seen(&self, scope: &str, keys: &[String]) -> Result<Vec<bool>, DedupeError>;
    /// Record the keys in `scope` for `ttl` (a key recorded again gets the new expiry).
    async fn record(&self, scope: &str, keys: &[String], ttl: Duration) -> Result<(), DedupeError>;
    /// Claim each key for its event, in order and atomically against every other claimer: true
    /// where the event may be processed (the key was free or expired, or is claimed and not yet
    /// committed by this same event), false where it is a duplicate (committed, or claimed by
    /// another event, including an earlier one of `claims`). A new claim lives for its `ttl`.
    async fn claim(&self, scope: &str, claims: &[Claim]) -> Result<Vec<bool>, DedupeError>;
    /// Make the claims permanent (their events were handled) for their `ttl`: a committed key
    /// is a recorded one.
    async fn commit(&self, scope: &str, claims: &[Claim]) -> Result<(), DedupeError> {
        let mut by_ttl: std::collections::BTreeMap<Duration, Vec<String>> = Default::default();
        for claim in claims {
            by_ttl.entry(claim.ttl).or_default().push(claim.key.clone());
        }
        for (ttl, keys) in by_ttl {
            self.record(scope, &keys, ttl).await?;
        }
        Ok(())
    }
    /// For logs: what and where the store is.
    fn describe(&self) -> String;
}

/// Keys kept in this process only: for `hubwasm plugin test`.
#[derive(Default)]
pub struct MemoryDedupe {
    keys: std::sync::Mutex<std::collections::HashMap<(String, String), Entry>>,
}

/// A key held by [`MemoryDedupe`]: until when, and by which pending claim (`None`: committed).
struct Entry {
    until: std::time::Instant,
    pending: Option<String>,
}

#[async_trait::async_trait]
impl DedupeStore for MemoryDedupe {
    async fn seen(&self, scope: &str, keys: &[String]) -> Result<Vec<bool>, DedupeError> {
        let now = std::time::Instant::now();
        let map = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        Ok(keys
            .iter()
            .map(|k| {
                map.get(&(scope.to_string(), k.clone()))
                    .is_some_and(|entry| entry.until > now)
            })
            .collect())
    }

    async fn record(&self, scope: &str, keys: &[String], ttl: Duration) -> Result<(), DedupeError> {
        let until = std::time::Instant::now() + ttl;
        let mut map = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        for k in keys {
            map.insert(
                (scope.to_string(), k.clone()),
                Entry {
                    until,
                    pending: None,
                },
            );
        }
        Ok(())
    }

    async fn claim(&self, scope: &str, claims: &[Claim]) -> Result<Vec<bool>, DedupeError> {
        let now = std::time::Instant::now();
        let mut map = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        Ok(claims
            .iter()
            .map(|claim| {
                let slot = (scope.to_string(), claim.key.clone());
                match map.get(&slot) {
                    Some(entry) if entry.until > now => {
                        entry.pending.as_deref() == Some(claim.owner.as_str())
                    }
                    _ => {
                        map.insert(
                            slot,
                            Entry {
                                until: now + claim.ttl,
                                pending: Some(claim.owner.clone()),
                            },
                        );
                        true
                    }
                }
            })
            .collect())
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}

pub use crate::config::{KeySource, KEY_SYNTAX};

/// One event hub's dedupe: its store, key, time to live and scope (the consumer group).
pub struct Dedupe {
    pub store: Arc<dyn DedupeStore>,
    /// The event's key the host deduplicates by; `None` when the store only serves the
    /// plugin's `first-seen`.
    pub key: Option<KeySource>,
    pub ttl: Duration,
    /// `<namespace>/<event hub>/<consumer group>`: keys are shared by the hosts of a consumer
    /// group, and by nobody else.
    pub scope: String,
}

/// What [`Dedupe::claim`] found in a batch.
#[derive(Debug, Default)]
pub struct Split {
    /// Indexes (in the batch) of events to skip: their key is committed, or claimed by another
    /// event (elsewhere, or earlier in the batch).
    pub duplicates: Vec<usize>,
}

impl Dedupe {
    /// The claims of `events` (those with a key) on `partition_id`, with their indexes.
    fn claims(&self, partition_id: &str, events: &[Event]) -> Vec<(usize, Claim)> {
        let Some(source) = &self.key else {
            return Vec::new();
        };
        events
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                let key = source.key(e)?;
                Some((
                    i,
                    Claim::new(key, partition_id, e.sequence_number, self.ttl),
                ))
            })
            .collect()
    }

    /// Claim the keys of `batch` (events of partition `partition_id`) and say which events are
    /// duplicates.
    pub async fn claim(&self, partition_id: &str, batch: &[Event]) -> Result<Split, DedupeError> {
        let (indexes, claims): (Vec<usize>, Vec<Claim>) =
            self.claims(partition_id, batch).into_iter().unzip();
        if claims.is_empty() {
            return Ok(Split::default());
        }
        let mine = self.store.claim(&self.scope, &claims).await?;
        let duplicates = indexes
            .into_iter()
            .zip(mine)
            .filter_map(|(i, mine)| (!mine).then_some(i))
            .collect();
        Ok(Split { duplicates })
    }

    /// Commit the claims of events of `partition_id` that were handled.
    pub async fn commit(&self, partition_id: &str, handled: &[Event]) -> Result<(), DedupeError> {
        let claims: Vec<Claim> = self
            .claims(partition_id, handled)
            .into_iter()
            .map(|(_, c)| c)
            .collect();
        if claims.is_empty() {
            return Ok(());
        }
        self.store.commit(&self.scope, &claims).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_a_json_field_a_property_or_the_message_id() {
        let mut e = Event::new(
            br#"{"event_id": "e-1", "value": 7, "nested": {"event_id": "no"}}"#.to_vec(),
            0,
            "0",
        );
        e.message_id = Some("m-1".into());
        e.properties = vec![("tenant".into(), crate::event::PropertyValue::Int(42))];
        let key = |s: &str| KeySource::parse(s).unwrap().key(&e);
        assert_eq!(key("json:event_id").as_deref(), Some("e-1"));
        assert_eq!(key("json:value").as_deref(), Some("7"));
        assert_eq!(key("json:nested"), None, "objects are not keys");
        assert_eq!(key("json:missing"), None);
        assert_eq!(key("property:tenant").as_deref(), Some("42"));
        assert_eq!(key("message-id").as_deref(), Some("m-1"));
        let not_json = Event::new(b"not json".to_vec(), 1, "1");
        assert_eq!(
            KeySource::parse("json:event_id").unwrap().key(&not_json),
            None
        );
        for bad in ["", "json:", "event_id", "xml:a", "message_id"] {
            let err = KeySource::parse(bad).unwrap_err();
            assert!(err.contains("json:<field>"), "{bad}: {err}");
        }
    }
}
