//! The dedupe and state stores a host opened: one per SQLite file or Redis URL, shared by the
//! event hubs that name the same one. The only place that picks a store by its kind, so the
//! stores themselves (`sqlite.rs`, `redis.rs`) and what they implement (`dedupe.rs`,
//! `state.rs`) do not know each other.

use std::sync::Arc;

use super::dedupe::{Dedupe, DedupeError, DedupeStore};
use super::redis::{RedisDedupe, RedisState};
use super::sqlite::{SqliteDedupe, SqliteState};
use super::state::{StateError, StateStore};
use crate::config::{DedupeConfig, DedupeStoreKind, StateConfig};

#[derive(Default)]
pub struct Stores {
    dedupe: Vec<(String, Arc<dyn DedupeStore>)>,
    state: Vec<(String, Arc<dyn StateStore>)>,
}

/// Where a store of `kind` is: its file, or its URL.
fn place(kind: DedupeStoreKind, local: &std::path::Path, url: Option<&str>) -> String {
    match kind {
        DedupeStoreKind::Local => local.display().to_string(),
        DedupeStoreKind::Redis => url.unwrap_or_default().to_string(),
    }
}

impl Stores {
    /// The dedupe an event hub's `[eventhub.dedupe]` asks for, keys kept in `scope`.
    pub fn dedupe(&mut self, config: &DedupeConfig, scope: String) -> Result<Dedupe, DedupeError> {
        let local = config.local_path();
        let place = place(config.store, &local, config.url.as_deref());
        let store = match self.dedupe.iter().find(|(p, _)| *p == place) {
            Some((_, store)) => store.clone(),
            None => {
                let store: Arc<dyn DedupeStore> = match config.store {
                    DedupeStoreKind::Local => Arc::new(SqliteDedupe::open(&local)?),
                    DedupeStoreKind::Redis => Arc::new(RedisDedupe::open(&place)?),
                };
                self.dedupe.push((place, store.clone()));
                store
            }
        };
        Ok(Dedupe {
            store,
            key: config.key.clone(),
            ttl: config.ttl,
            scope,
        })
    }

    /// The store an event hub's `[eventhub.state]` names.
    pub fn state(&mut self, config: &StateConfig) -> Result<Arc<dyn StateStore>, StateError> {
        let local = config.local_path();
        let place = place(config.store, &local, config.url.as_deref());
        if let Some((_, store)) = self.state.iter().find(|(p, _)| *p == place) {
            return Ok(store.clone());
        }
        let store: Arc<dyn StateStore> = match config.store {
            DedupeStoreKind::Local => Arc::new(SqliteState::open(&local)?),
            DedupeStoreKind::Redis => Arc::new(RedisState::open(&place)?),
        };
        self.state.push((place, store.clone()));
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::KeySource;

    #[test]
    fn event_hubs_naming_one_store_share_it() {
        let dir = tempfile::tempdir().unwrap();
        let config = |file: &str| crate::config::DedupeConfig {
            key: Some(KeySource::parse("json:event_id").unwrap()),
            ttl: Duration::from_secs(60),
            store: crate::config::DedupeStoreKind::Local,
            path: Some(dir.path().join(file)),
            url: None,
        };
        let mut stores = Stores::default();
        let a = stores.dedupe(&config("d.sqlite"), "ns/a/g".into()).unwrap();
        let b = stores.dedupe(&config("d.sqlite"), "ns/b/g".into()).unwrap();
        let c = stores
            .dedupe(&config("other.sqlite"), "ns/c/g".into())
            .unwrap();
        assert!(Arc::ptr_eq(&a.store, &b.store));
        assert!(!Arc::ptr_eq(&a.store, &c.store));
        assert_eq!(
            (a.scope.as_str(), b.ttl),
            ("ns/a/g", Duration::from_secs(60))
        );
    }
}
