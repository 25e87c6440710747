//! The stop signal: a [`Stop`] sets it once; every task holds a [`Shutdown`] that says whether
//! it is set, waits for it, or sleeps unless it comes first. A dropped `Stop` counts as set:
//! nobody is left to let the task go on.

use std::time::Duration;

use tokio::sync::watch;

/// Sets the signal.
#[derive(Debug)]
pub struct Stop(watch::Sender<bool>);

/// Whether the host (or one part of it) is stopping; cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A new signal, not set.
pub fn channel() -> (Stop, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Stop(tx), Shutdown(rx))
}

impl Stop {
    /// Set the signal (again is harmless).
    pub fn stop(&self) {
        let _ = self.0.send(true);
    }

    /// Another view of this signal.
    pub fn shutdown(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

impl Shutdown {
    /// Whether the signal is set (or its `Stop` is gone).
    pub fn is_set(&self) -> bool {
        *self.0.borrow() || self.0.has_changed().is_err()
    }

    /// Until the signal is set.
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|set| *set).await;
    }

    /// Sleep for `wait` unless the signal comes first; true if it came.
    pub async fn sleep(&mut self, wait: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(wait) => false,
            _ = self.wait() => true,
        }
    }
}

/// An embedder's own `watch` channel (`true` = stop) as the signal.
impl From<watch::Receiver<bool>> for Shutdown {
    fn from(rx: watch::Receiver<bool>) -> Self {
        Shutdown(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_sleep_ends_early_when_stopped_and_a_dropped_stop_counts_as_set() {
        let (stop, mut shutdown) = channel();
        assert!(!shutdown.is_set());
        assert!(!shutdown.sleep(Duration::from_secs(1)).await, "not stopped");
        let mut waiting = shutdown.clone();
        let sleeper = tokio::spawn(async move { waiting.sleep(Duration::from_secs(3600)).await });
        tokio::task::yield_now().await;
        stop.stop();
        assert!(sleeper.await.unwrap(), "woken by the signal");
        assert!(shutdown.is_set());

        let (stop, mut other) = channel();
        drop(stop);
        assert!(other.is_set());
        other.wait().await;
    }
}
