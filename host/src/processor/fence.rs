//! The ownership fence: a partition stops before its next batch once another instance owns it.
//!
//! Event Hubs ends the old owner's receiver when a new one attaches with a higher owner level
//! (epoch), but the Rust SDK's owner level reaches no endpoint (see `hub/README.md`), and its
//! load balancer only revokes a stolen partition at its next balancing cycle. Until then the
//! old owner would keep handling events the new owner handles again from the checkpoint. The
//! fence reads the partition's ownership record and stops the partition before its next batch
//! once another instance holds it: strictly before every batch (`ownership_check_ms = 0`: the
//! overlap after a steal is the batch in flight, for one store read per batch), or in the
//! background at most once per interval (the default, 1 s: nothing on the hot path, and the
//! overlap is at most that interval's events). It fails open: when
//! the store is slow or down it carries on (the SDK's ownership expiry still holds), since a
//! storage outage must not stop processing.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::checkpoint::Store;
use crate::event::PartitionContext;

/// What a look at the ownership record found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// This instance still owns the partition, or the record could not be read in time.
    Me,
    /// Another instance (named) owns it, or it was released.
    Other(String),
}

/// How long a batch waits for an ownership read in flight. A store that answers slower (an
/// outage, retries) does not hold processing up: the read goes on in the background and the
/// partition carries on, looking again before later batches.
const WAIT_FOR_READ: Duration = Duration::from_millis(250);

type Read = tokio::task::JoinHandle<azure_core::Result<Option<String>>>;

pub struct Fence {
    store: Arc<dyn Store>,
    ctx: PartitionContext,
    instance_id: String,
    check_every: Duration,
    last_check: Option<Instant>,
    /// A read of the ownership record still in flight, and when it started.
    pending: Option<(Instant, Read)>,
}

impl Fence {
    pub fn new(
        store: Arc<dyn Store>,
        ctx: &PartitionContext,
        instance_id: &str,
        check_every: Duration,
    ) -> Self {
        Self {
            store,
            ctx: ctx.clone(),
            instance_id: instance_id.to_string(),
            check_every,
            last_check: None,
            pending: None,
        }
    }

    /// Who owns the partition, as far as the fence knows before the next batch.
    ///
    /// With `check_every` zero (strict) every batch waits for a fresh read (at most
    /// [`WAIT_FOR_READ`]), so a steal costs the batch in flight. Otherwise reads run in the
    /// background, at most one per `check_every`, and never hold a batch up: a steal is seen
    /// within `check_every` plus one read.
    pub async fn owner(&mut self) -> Owner {
        let now = Instant::now();
        if self.check_every.is_zero() {
            if self.pending.is_none() {
                self.pending = Some((now, self.read()));
            }
            let Some((started, mut read)) = self.pending.take() else {
                return Owner::Me;
            };
            return match tokio::time::timeout_at(started + WAIT_FOR_READ, &mut read).await {
                Ok(joined) => self.verdict(joined),
                Err(_) => {
                    self.pending = Some((started, read));
                    Owner::Me
                }
            };
        }
        if let Some((_, read)) = self.pending.as_mut().filter(|(_, r)| r.is_finished()) {
            let joined = read.await;
            self.pending = None;
            if let Owner::Other(owner) = self.verdict(joined) {
                return Owner::Other(owner);
            }
        }
        let due = self
            .last_check
            .is_none_or(|t| now.duration_since(t) >= self.check_every);
        if due && self.pending.is_none() {
            self.last_check = Some(now);
            self.pending = Some((now, self.read()));
        }
        Owner::Me
    }

    fn verdict(
        &self,
        joined: Result<azure_core::Result<Option<String>>, tokio::task::JoinError>,
    ) -> Owner {
        match joined {
            Ok(Ok(Some(owner))) if owner != self.instance_id => Owner::Other(owner),
            Ok(Ok(_)) => Owner::Me,
            Ok(Err(err)) => {
                tracing::debug!(partition = %self.ctx.partition_id, error = %err, "Cannot read ownership; carrying on");
                Owner::Me
            }
            Err(_) => Owner::Me,
        }
    }

    /// Read the partition's owner in the background.
    fn read(&self) -> Read {
        let store = self.store.clone();
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            let listed = store
                .list_ownerships(&ctx.namespace, &ctx.event_hub, &ctx.consumer_group)
                .await?;
            Ok(listed
                .into_iter()
                .find(|o| o.partition_id == ctx.partition_id)
                .and_then(|o| o.owner_id))
        })
    }
}

impl Drop for Fence {
    fn drop(&mut self) {
        if let Some((_, read)) = self.pending.take() {
            read.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::fake::{FakeStore, Listing};
    use crate::checkpoint::local::LocalCheckpointStore;
    use crate::checkpoint::{CheckpointStore, Ownership};

    fn claim(owner: &str) -> Ownership {
        Ownership {
            consumer_group: "$Default".into(),
            event_hub_name: "hub".into(),
            fully_qualified_namespace: "ns".into(),
            partition_id: "3".into(),
            owner_id: Some(owner.into()),
            ..Default::default()
        }
    }

    /// Another instance ("thief") claims the partition over its current record.
    async fn steal(store: &LocalCheckpointStore) {
        let mine = store
            .list_ownerships("ns", "hub", "$Default")
            .await
            .unwrap();
        let mut stolen = mine[0].clone();
        stolen.owner_id = Some("thief".into());
        assert_eq!(store.claim_ownership(&[stolen]).await.unwrap().len(), 1);
    }

    fn ctx() -> PartitionContext {
        PartitionContext {
            namespace: "ns".into(),
            event_hub: "hub".into(),
            consumer_group: "$Default".into(),
            partition_id: "3".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn in_the_background_a_steal_is_seen_within_the_interval_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalCheckpointStore::new(dir.path()));
        store.claim_ownership(&[claim("me")]).await.unwrap();
        let every = Duration::from_secs(1);
        let mut fence = Fence::new(store.clone(), &ctx(), "me", every);
        assert_eq!(fence.owner().await, Owner::Me, "the first read starts");
        steal(&store).await;
        // The first read may have seen either owner; within the interval no new read starts.
        tokio::time::sleep(Duration::from_millis(10)).await;
        let _ = fence.owner().await;
        tokio::time::advance(every).await;
        let start = Instant::now();
        let mut seen = Owner::Me;
        for _ in 0..100 {
            seen = fence.owner().await;
            if seen != Owner::Me {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(seen, Owner::Other("thief".into()));
        assert!(
            start.elapsed() < Duration::from_millis(100),
            "no batch waited"
        );
    }

    #[tokio::test]
    async fn strictly_a_steal_is_seen_before_the_next_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalCheckpointStore::new(dir.path()));
        store.claim_ownership(&[claim("me")]).await.unwrap();
        let mut fence = Fence::new(store.clone(), &ctx(), "me", Duration::from_secs(3600));
        assert_eq!(fence.owner().await, Owner::Me);
        steal(&store).await;
        // Within the check interval the record is not read again.
        assert_eq!(fence.owner().await, Owner::Me);
        let mut every_batch = Fence::new(store.clone(), &ctx(), "me", Duration::ZERO);
        assert_eq!(every_batch.owner().await, Owner::Other("thief".into()));
    }

    #[tokio::test]
    async fn no_record_means_carry_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalCheckpointStore::new(dir.path()));
        let mut fence = Fence::new(store, &ctx(), "me", Duration::ZERO);
        assert_eq!(fence.owner().await, Owner::Me);
    }

    #[tokio::test(start_paused = true)]
    async fn a_store_that_does_not_answer_holds_one_batch_at_most_briefly() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(FakeStore::new(
            LocalCheckpointStore::new(dir.path()),
            Listing::Hang,
        ));
        let mut fence = Fence::new(store, &ctx(), "me", Duration::ZERO);
        let start = Instant::now();
        assert_eq!(fence.owner().await, Owner::Me);
        assert_eq!(
            start.elapsed(),
            WAIT_FOR_READ,
            "the first batch waits the bound"
        );
        // The read is still in flight: later batches do not wait for it at all.
        for _ in 0..10 {
            assert_eq!(fence.owner().await, Owner::Me);
        }
        assert_eq!(start.elapsed(), WAIT_FOR_READ);
    }
}
