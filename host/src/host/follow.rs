//! Hosts converge on their consumer group's version: following the version record beside the
//! checkpoints, swapping when the plugin file is replaced, and judging a swapped-in version
//! over its rollback window (rolling it back automatically when it fails too often).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::shutdown::Shutdown;

use super::{now_ms, HostHandle, HubHandle};
use crate::checkpoint::VersionRecord;

/// How often a version under judgement records this host's counts and reads the other hosts'
/// (a failure here is looked at at once, with the others' counts as last read).
const FLEET_TICK: Duration = Duration::from_secs(1);

impl HostHandle {
    /// Follow the consumer group's version record: when another host swapped or rolled back,
    /// load the same file (it must still have the recorded hash) and swap to it here too.
    pub(super) fn follow(&self, stop: Shutdown) {
        for index in 0..self.inner.hubs.len() {
            let this = self.clone();
            let mut stop = stop.clone();
            tokio::spawn(async move {
                let hub = &this.inner.hubs[index];
                let mut tick = tokio::time::interval(hub.follow_every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                // A digest that could not be followed is not tried again until the record
                // changes (the error is logged once).
                let mut refused: Option<String> = None;
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = stop.wait() => return,
                    }
                    let record = match this.inner.store.load_version(hub.group()).await {
                        Ok(Some(record)) => record,
                        Ok(None) => continue,
                        Err(err) => {
                            tracing::debug!(event_hub = %hub.event_hub, error = %err, "Cannot read the plugin version record");
                            continue;
                        }
                    };
                    let wanted = record
                        .sha256
                        .clone()
                        .unwrap_or_else(|| record.digest.clone());
                    if record.base_digest != hub.base_digest
                        || wanted == hub.plugin.current().sha256()
                        || record.digest == hub.plugin.current().digest()
                        || refused.as_deref() == Some(&wanted)
                    {
                        continue;
                    }
                    let _one_at_a_time = hub.swapping.lock().await;
                    match this.load_recorded(hub, &record).await {
                        Ok(plugin) => {
                            let why = format!(
                                "followed {} ({}) by {}",
                                record.reason, record.path, record.by
                            );
                            this.put(hub, plugin, why, false).await;
                            // A new version is judged on every host, over the rest of its
                            // window; a rollback is not judged.
                            this.judge_rest_of_window(hub, &record, &wanted);
                            refused = None;
                        }
                        Err(err) => {
                            tracing::error!(
                                event_hub = %hub.event_hub,
                                consumer_group = %hub.consumer_group,
                                by = %record.by,
                                error = %err,
                                "The consumer group switched plugin version but this host cannot \
                                 fetch or load it; it keeps its version"
                            );
                            refused = Some(wanted);
                        }
                    }
                }
            });
        }
    }

    /// `[eventhub.swap] watch`: poll the serving version's file once a second; when it changed
    /// and then stayed the same for a second (a copy has finished), swap it in, checked like
    /// any swap.
    pub(super) fn watch_files(&self, stop: Shutdown) {
        for index in 0..self.inner.hubs.len() {
            if !self.inner.hubs[index].watch {
                continue;
            }
            let this = self.clone();
            let mut stop = stop.clone();
            tokio::spawn(async move {
                let hub = &this.inner.hubs[index];
                let stamp = |path: &std::path::Path| {
                    std::fs::metadata(path)
                        .ok()
                        .map(|m| (m.len(), m.modified().ok()))
                };
                let mut path = hub.plugin.current().path().to_path_buf();
                let mut seen = stamp(&path);
                let mut pending: Option<Option<(u64, Option<SystemTime>)>> = None;
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = stop.wait() => return,
                    }
                    let serving = hub.plugin.current().path().to_path_buf();
                    if serving != path {
                        // Swapped by other means: watch the new file from now on.
                        path = serving;
                        seen = stamp(&path);
                        pending = None;
                        continue;
                    }
                    let now = stamp(&path);
                    if now == seen || now.is_none() {
                        pending = None;
                        continue;
                    }
                    if pending != Some(now) {
                        pending = Some(now); // changed: wait until it stays the same
                        continue;
                    }
                    pending = None;
                    seen = now;
                    let _one_at_a_time = hub.swapping.lock().await;
                    let read = {
                        let runtime = this.inner.runtime.clone();
                        let path = path.clone();
                        tokio::task::spawn_blocking(move || runtime.read_component(&path)).await
                    };
                    let component = match read {
                        Ok(Ok(bytes)) => crate::artifact::Component::new(
                            hub.plugin.current().name(),
                            path.display().to_string(),
                            bytes,
                        ),
                        Ok(Err(err)) => {
                            tracing::error!(event_hub = %hub.event_hub, path = %path.display(), error = %err, "The plugin file changed but cannot be read; the running version is unchanged");
                            continue;
                        }
                        Err(_) => continue,
                    };
                    match this
                        .swap_locked(hub, component, None, "file replaced")
                        .await
                    {
                        Ok(_) => {}
                        Err(err) => tracing::error!(
                            event_hub = %hub.event_hub,
                            path = %path.display(),
                            error = %err,
                            "The plugin file changed but the new version was refused; the \
                             running version is unchanged"
                        ),
                    }
                }
            });
        }
    }

    /// Load the version a record names: fetched from the group's store by its digest and
    /// checked against it.
    pub(super) async fn load_recorded(
        &self,
        hub: &HubHandle,
        record: &VersionRecord,
    ) -> Result<Arc<crate::plugin::Plugin>, String> {
        crate::artifact::load_recorded(
            &self.inner.runtime,
            self.inner.store.as_ref(),
            hub.group(),
            record,
            &hub.spec,
            self.inner.max_component_bytes,
        )
        .await
        .map(Arc::new)
    }

    /// Judge the version just swapped in over its rollback window: while it is judged, an event
    /// that fails its last attempt under it is held (see [`crate::plugin::Probation`]). Every
    /// host of the group records its counts for the swap (`swap`, a
    /// [`crate::checkpoint::swap_id`]) in the store and judges on the sum: the version is
    /// rolled back once at least `min_failures` calls failed at or above `failure_rate`, or, at
    /// the window's end, if it failed at that rate while holding events; otherwise it is
    /// cleared and held events follow the failure policy.
    pub(super) fn watch_for_rollback(&self, hub: &HubHandle, swap: String) {
        let window = hub.rollback.window;
        self.judge(hub, swap, window);
    }

    /// Judge a version the group swapped in at `at_ms` over what is left of its window (a host
    /// that follows, or starts, after the swap); nothing when the window is over.
    pub(super) fn judge_rest_of_window(
        &self,
        hub: &HubHandle,
        record: &VersionRecord,
        sha256: &str,
    ) {
        if !hub.rollback.automatic || record.reason.contains("rollback") {
            return;
        }
        let elapsed = Duration::from_millis(now_ms().saturating_sub(record.at_ms));
        let window = hub.rollback.window.saturating_sub(elapsed);
        if !window.is_zero() {
            self.judge(
                hub,
                crate::checkpoint::swap_id(sha256, record.at_ms),
                window,
            );
        }
    }

    /// [`watch_for_rollback`](Self::watch_for_rollback) over `window`.
    pub(super) fn judge(&self, hub: &HubHandle, swap: String, window: Duration) {
        let this = self.clone();
        let event_hub = hub.event_hub.clone();
        let group = hub.consumer_group.clone();
        let policy = hub.rollback;
        let generation = hub.plugin.generation();
        hub.plugin.begin_probation(generation);
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let ends = started + window;
            let mut fleet = tokio::time::interval(FLEET_TICK);
            let mut saved: Option<crate::checkpoint::VersionOutcome> = None;
            // The other hosts' counts as last read: (handled, failed, held, hosts).
            let mut others = (0, 0, 0, 0);
            loop {
                let Ok(hub) = this.find(&event_hub, Some(&group)) else {
                    return;
                };
                // Woken by a failure here (judged at once on the others' last counts), by the
                // fleet tick (record this host's counts, read the others'), or by the end of the
                // window, after which the judge always decides and returns.
                let (read_fleet, over) = tokio::select! {
                    _ = hub.plugin.failed() => (false, false),
                    _ = fleet.tick() => (true, false),
                    _ = tokio::time::sleep_until(ends) => (true, true),
                };
                if hub.plugin.generation() != generation {
                    return; // swapped again: that swap judges itself
                }
                let (handled, failed) = hub.plugin.outcomes_since_swap();
                let mine = crate::checkpoint::VersionOutcome {
                    swap: swap.clone(),
                    instance: this.inner.instance_id.clone(),
                    handled,
                    failed,
                    held: hub.plugin.held(),
                };
                if read_fleet {
                    let store = this.inner.store.as_ref();
                    if saved.as_ref() != Some(&mine) {
                        match store.save_outcome(hub.group(), &mine).await {
                            Ok(()) => saved = Some(mine.clone()),
                            Err(err) => {
                                tracing::debug!(event_hub = %event_hub, error = %err, "Cannot record this host's counts for the new version")
                            }
                        }
                    }
                    if let Ok(all) = store.load_outcomes(hub.group(), &swap).await {
                        // Stores key a host's record by its name as a file name.
                        let me = crate::checkpoint::instance_file_name(&mine.instance);
                        others = all
                            .iter()
                            .filter(|o| crate::checkpoint::instance_file_name(&o.instance) != me)
                            .fold((0, 0, 0, 0), |(h, f, held, n), o| {
                                (h + o.handled, f + o.failed, held + o.held, n + 1)
                            });
                    }
                }
                let (handled, failed, held, hosts) = (
                    mine.handled + others.0,
                    mine.failed + others.1,
                    mine.held + others.2,
                    1 + others.3,
                );
                let rate = failed as f64 / (handled + failed).max(1) as f64;
                let failing = rate >= policy.failure_rate && failed > 0;
                let verdict = if failing && failed >= policy.min_failures {
                    Some("")
                } else if over && failing && held > 0 {
                    Some(", with events held")
                } else {
                    None
                };
                if let Some(extra) = verdict {
                    let _one_at_a_time = hub.swapping.lock().await;
                    if hub.plugin.generation() != generation {
                        return;
                    }
                    let why = format!(
                        "automatic rollback: {failed} of {} calls failed within {:.1} s of the \
                         swap across {hosts} host(s){extra} (limit {:.0} %)",
                        handled + failed,
                        started.elapsed().as_secs_f64(),
                        policy.failure_rate * 100.0
                    );
                    match this.roll_back(hub, why.clone()).await {
                        Ok(_) => {
                            tracing::warn!(event_hub = %event_hub, consumer_group = %group, "{why}")
                        }
                        Err(err) => {
                            tracing::error!(event_hub = %event_hub, error = %err, "Automatic rollback failed");
                            hub.plugin.clear_probation(generation);
                        }
                    }
                    return;
                }
                if over {
                    hub.plugin.clear_probation(generation);
                    tracing::info!(
                        event_hub = %event_hub,
                        consumer_group = %group,
                        handled,
                        failed,
                        hosts,
                        "The new version passed its rollback window; failures follow the failure policy again"
                    );
                    return;
                }
            }
        });
    }
}
