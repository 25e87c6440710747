//! The store as the SDK's `EventProcessor` sees it: storage errors are reported and retried
//! here instead of being returned.
//!
//! The SDK's `EventProcessor::run` returns on the first store error (a failed
//! `claim_ownership` or listing). A storage outage must not stop the host: partitions it owns
//! keep being processed by their own tasks, so this wrapper keeps retrying the call with
//! backoff (reporting each failure) until storage answers again. Meanwhile ownership is not
//! renewed; if the outage outlasts the expiry, another host may take a partition over, which
//! can deliver events twice but never loses one.

use azure_core::Result;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{Checkpoint, CheckpointStore, Ownership, Store};
use crate::backoff::Backoff;
use crate::processor::stats::Stats;

/// Wraps a [`Store`] for the SDK's processor.
pub struct Resilient {
    inner: Arc<dyn Store>,
    stats: Arc<Stats>,
    max_backoff: Duration,
}

impl Resilient {
    pub fn new(inner: Arc<dyn Store>, stats: Arc<Stats>) -> Self {
        Self {
            inner,
            stats,
            max_backoff: Duration::from_secs(10),
        }
    }

    async fn retry<T, F, Fut>(&self, what: &str, mut call: F) -> Result<T>
    where
        F: FnMut() -> Fut + Send,
        Fut: std::future::Future<Output = Result<T>> + Send,
        T: Send,
    {
        let mut backoff = Backoff::new(Duration::from_millis(200), self.max_backoff);
        let mut failures = 0u32;
        loop {
            match call().await {
                Ok(value) => {
                    if failures > 0 {
                        tracing::info!(store = %self.inner.describe(), what, failures, "Checkpoint store answers again");
                    }
                    return Ok(value);
                }
                Err(err) => {
                    failures += 1;
                    let wait = backoff.next_delay();
                    self.stats.record(crate::metrics::MetricEvent::StoreError);
                    tracing::warn!(
                        store = %self.inner.describe(),
                        what,
                        error = %err,
                        retry_in_ms = wait.as_millis() as u64,
                        "Checkpoint store failed; owned partitions keep running, retrying"
                    );
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

#[async_trait]
impl CheckpointStore for Resilient {
    async fn claim_ownership(&self, ownerships: &[Ownership]) -> Result<Vec<Ownership>> {
        self.retry("claim ownership", || self.inner.claim_ownership(ownerships))
            .await
    }

    async fn list_checkpoints(&self, ns: &str, hub: &str, group: &str) -> Result<Vec<Checkpoint>> {
        self.retry("list checkpoints", || {
            self.inner.list_checkpoints(ns, hub, group)
        })
        .await
    }

    async fn list_ownerships(&self, ns: &str, hub: &str, group: &str) -> Result<Vec<Ownership>> {
        self.retry("list ownerships", || {
            self.inner.list_ownerships(ns, hub, group)
        })
        .await
    }

    async fn update_checkpoint(&self, checkpoint: Checkpoint) -> Result<()> {
        self.retry("update checkpoint", || {
            self.inner.update_checkpoint(checkpoint.clone())
        })
        .await
    }
}
