//! The one checkpoint-store fake of the unit tests: a real local store with one scripted twist
//! in how it lists ownerships, for what the host does when the store misbehaves.

use crate::event::PartitionContext;
use azure_core::Result;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;

use super::local::LocalCheckpointStore;
use super::{Checkpoint, CheckpointStore, Ownership, RetryState, RetryStore, Store, VersionStore};

/// How the fake lists ownerships.
pub(crate) enum Listing {
    /// Never answers: each listing waits forever.
    Hang,
    /// The first listing is overtaken by a renewal of the listed claims (as when a stopped
    /// load balancer's last renewal lands during the release).
    RenewFirst,
}

pub(crate) struct FakeStore {
    pub inner: LocalCheckpointStore,
    listing: Listing,
    renewed: AtomicBool,
}

impl FakeStore {
    pub fn new(inner: LocalCheckpointStore, listing: Listing) -> Self {
        Self {
            inner,
            listing,
            renewed: AtomicBool::new(false),
        }
    }
}

#[async_trait]
impl CheckpointStore for FakeStore {
    async fn claim_ownership(&self, o: &[Ownership]) -> Result<Vec<Ownership>> {
        self.inner.claim_ownership(o).await
    }
    async fn list_checkpoints(&self, ns: &str, hub: &str, group: &str) -> Result<Vec<Checkpoint>> {
        self.inner.list_checkpoints(ns, hub, group).await
    }
    async fn list_ownerships(&self, ns: &str, hub: &str, group: &str) -> Result<Vec<Ownership>> {
        match self.listing {
            Listing::Hang => std::future::pending().await,
            Listing::RenewFirst => {
                let listed = self.inner.list_ownerships(ns, hub, group).await?;
                if !self.renewed.swap(true, Ordering::SeqCst) {
                    let renewed = self.inner.claim_ownership(&listed).await?;
                    assert_eq!(renewed.len(), listed.len());
                }
                Ok(listed)
            }
        }
    }
    async fn update_checkpoint(&self, c: Checkpoint) -> Result<()> {
        self.inner.update_checkpoint(c).await
    }
}

#[async_trait]
impl RetryStore for FakeStore {
    async fn load_retry(&self, at: &PartitionContext) -> Result<Option<RetryState>> {
        self.inner.load_retry(at).await
    }
    async fn save_retry(&self, at: &PartitionContext, state: Option<RetryState>) -> Result<()> {
        self.inner.save_retry(at, state).await
    }
}

impl VersionStore for FakeStore {}

impl Store for FakeStore {
    fn describe(&self) -> String {
        "fake".into()
    }
}
