//! Writes a partition's checkpoint in the background: processing never waits for storage, a
//! failed write is retried, and only the newest position is written (older ones are implied).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::stats::Stats;
use crate::backoff::Backoff;
use crate::checkpoint::{Checkpoint, Store};
use crate::event::PartitionContext;

#[derive(Default)]
struct State {
    /// The newest position to write: (sequence number, offset).
    latest: Option<(i64, String)>,
    /// The newest position known to be written.
    written: Option<i64>,
    closed: bool,
}

/// A partition's checkpoint writer.
pub struct Checkpointer {
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
    written: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Checkpointer {
    pub fn start(store: Arc<dyn Store>, ctx: &PartitionContext, stats: Arc<Stats>) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let wake = Arc::new(Notify::new());
        let written = Arc::new(Notify::new());
        let task = tokio::spawn(write_loop(
            store,
            ctx.clone(),
            stats,
            state.clone(),
            wake.clone(),
            written.clone(),
        ));
        Self {
            state,
            wake,
            written,
            task,
        }
    }

    /// Ask for the checkpoint to move to this event (which was handled or dead-lettered).
    pub fn set(&self, sequence_number: i64, offset: &str) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        debug_assert!(st
            .latest
            .as_ref()
            .is_none_or(|(s, _)| *s <= sequence_number));
        st.latest = Some((sequence_number, offset.to_string()));
        drop(st);
        self.wake.notify_one();
    }

    /// Wait until the newest position is written, at most `timeout`; false if it was not.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.written.notified();
            tokio::pin!(notified);
            // Register before looking, so a write finishing in between is not missed.
            notified.as_mut().enable();
            {
                let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                match &st.latest {
                    None => return true,
                    Some((seq, _)) if st.written == Some(*seq) => return true,
                    _ => {}
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        self.task.abort();
    }
}

async fn write_loop(
    store: Arc<dyn Store>,
    ctx: PartitionContext,
    stats: Arc<Stats>,
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
    written: Arc<Notify>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
    loop {
        let next = {
            let st = state.lock().unwrap_or_else(|e| e.into_inner());
            if st.closed {
                return;
            }
            match &st.latest {
                Some((seq, offset)) if st.written != Some(*seq) => Some((*seq, offset.clone())),
                _ => None,
            }
        };
        let Some((seq, offset)) = next else {
            wake.notified().await;
            continue;
        };
        let checkpoint = Checkpoint {
            fully_qualified_namespace: ctx.namespace.clone(),
            event_hub_name: ctx.event_hub.clone(),
            consumer_group: ctx.consumer_group.clone(),
            partition_id: ctx.partition_id.clone(),
            offset: Some(offset),
            sequence_number: Some(seq),
        };
        match store.update_checkpoint(checkpoint).await {
            Ok(()) => {
                backoff.reset();
                state.lock().unwrap_or_else(|e| e.into_inner()).written = Some(seq);
                stats.record(crate::metrics::MetricEvent::Checkpoint { ctx: &ctx });
                tracing::debug!(partition = %ctx.partition_id, sequence_number = seq, "Checkpoint written");
                written.notify_waiters();
            }
            Err(err) => {
                stats.record(crate::metrics::MetricEvent::StoreError);
                let wait = backoff.next_delay();
                tracing::warn!(partition = %ctx.partition_id, sequence_number = seq, error = %err, retry_in_ms = wait.as_millis() as u64, "Checkpoint write failed; processing goes on, retrying");
                tokio::time::sleep(wait).await;
            }
        }
    }
}
