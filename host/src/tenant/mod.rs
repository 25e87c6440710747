//! Tenants at run time: what each tenant may use of the shared host, and what it used.
//!
//! Every plugin call of a tenant is admitted by its [`Tenant`] first ([`Tenant::admit`]):
//! - when the host runs several tenants, a tenant whose failures storm waits out a pause (so a
//!   plugin that traps on every event, loops until its timeout or allocates to its limit leaves
//!   the cores to the others; with one tenant there is nobody to leave them to, and the
//!   partitions' own retry backoff is enough);
//! - at most `max_in_flight` calls of the tenant run at once (a semaphore);
//! - the events/s and MB/s limits are kept by delaying the call ([`rate`]): backpressure,
//!   never loss; the events wait in the partition's buffer and the SDK's prefetch.
//!
//! and reports back when it ended ([`Tenant::finished`]), which feeds the storm detection and
//! the usage counters the admin API shows.

pub mod rate;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::config::{RunConfig, TenantLimits};
use rate::{Rate, RateLimiter};

/// A failed call that ran longer than this (a timeout, memory grown to the limit) pauses its
/// tenant at once, for [`SLOW_FAILURE_FACTOR`] times its length.
pub const SLOW_FAILURE: Duration = Duration::from_millis(50);
/// With this factor, failing work takes at most a fifth of the time of a call slot.
pub const SLOW_FAILURE_FACTOR: u32 = 4;
/// Consecutive failed calls (across the tenant's partitions) that make a storm.
pub const STORM_AFTER: u32 = 5;
/// The pause after a storm starts at this and doubles while failures go on ...
pub const STORM_PAUSE: Duration = Duration::from_millis(100);
/// ... up to this.
pub const STORM_PAUSE_MAX: Duration = Duration::from_secs(30);

/// One tenant's share of the host.
#[derive(Debug)]
pub struct Tenant {
    pub name: String,
    pub limits: TenantLimits,
    in_flight: Option<Arc<Semaphore>>,
    rate: Option<Mutex<RateLimiter>>,
    storm: Mutex<Storm>,
    /// Whether failure storms pause the tenant (only when it shares the host with others).
    storm_guard: bool,
    usage: Usage,
    /// The largest memory any instance of the tenant's plugins grew to, in bytes.
    pub memory_peak: Arc<AtomicU64>,
    /// The counters at the last [`Tenant::tick`] and the rates over the second before it.
    last: Mutex<LastSecond>,
}

#[derive(Debug)]
struct LastSecond {
    at: Instant,
    events: u64,
    bytes: u64,
    busy_ns: u64,
    rates: (f64, f64, f64),
}

#[derive(Debug)]
struct Storm {
    /// Failed calls in a row, across the tenant's partitions.
    streak: u32,
    /// No call of the tenant starts before this.
    until: Option<Instant>,
    backoff: Backoff,
}

/// Counters since the start.
#[derive(Debug, Default)]
struct Usage {
    calls: AtomicU64,
    events: AtomicU64,
    bytes: AtomicU64,
    failures: AtomicU64,
    /// Time spent inside the tenant's plugin calls (run time, summed over calls).
    busy_ns: AtomicU64,
    /// Time calls waited for the rate limit.
    throttled_ns: AtomicU64,
    /// Calls that waited for the rate limit.
    throttled_calls: AtomicU64,
    /// Time calls waited out a storm pause.
    paused_ns: AtomicU64,
    /// Storm pauses begun.
    storms: AtomicU64,
    /// Calls running now.
    running: AtomicU64,
}

/// What the admin API shows of a tenant's usage.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UsageSnapshot {
    pub calls: u64,
    pub events: u64,
    pub bytes: u64,
    pub failures: u64,
    /// Seconds spent inside the tenant's plugin calls.
    pub busy_secs: f64,
    /// Seconds calls waited for the rate limit, and how many calls waited.
    pub throttled_secs: f64,
    pub throttled_calls: u64,
    /// Seconds calls waited out storm pauses, and how many pauses began.
    pub storm_paused_secs: f64,
    pub storms: u64,
    /// Calls running now.
    pub in_flight: u64,
    /// Over the last second: events and megabytes per second into the plugins, and the
    /// share of one core spent in the tenant's plugin calls (2.0 = two cores).
    pub events_per_sec: f64,
    pub mb_per_sec: f64,
    pub cpu_share: f64,
    /// The largest memory any instance of the tenant's plugins grew to, in bytes.
    pub memory_peak_bytes: u64,
}

/// A call the tenant admitted; hand it back to [`Tenant::finished`].
#[derive(Debug)]
pub struct Admission {
    _slot: Option<OwnedSemaphorePermit>,
    started: std::time::Instant,
}

impl Tenant {
    /// A tenant that shares the host with others (failure storms pause it).
    pub fn new(name: &str, limits: TenantLimits) -> Self {
        Self::with_storm_guard(name, limits, true)
    }

    /// A tenant; `storm_guard` says whether failure storms pause it.
    pub fn with_storm_guard(name: &str, limits: TenantLimits, storm_guard: bool) -> Self {
        let rate = Rate {
            events_per_sec: limits.events_per_sec,
            bytes_per_sec: limits.mb_per_sec.map(|mb| mb * 1e6),
        };
        Self {
            name: name.to_string(),
            limits,
            in_flight: limits
                .max_in_flight
                .map(|n| Arc::new(Semaphore::new(n as usize))),
            rate: rate
                .is_limited()
                .then(|| Mutex::new(RateLimiter::new(rate))),
            storm: Mutex::new(Storm {
                streak: 0,
                until: None,
                backoff: Backoff::new(STORM_PAUSE, STORM_PAUSE_MAX),
            }),
            storm_guard,
            usage: Usage::default(),
            memory_peak: Arc::new(AtomicU64::new(0)),
            last: Mutex::new(LastSecond {
                at: Instant::now(),
                events: 0,
                bytes: 0,
                busy_ns: 0,
                rates: (0.0, 0.0, 0.0),
            }),
        }
    }

    /// Work out the rates since the last tick (the host calls this once a second).
    pub fn tick(&self) {
        let u = &self.usage;
        let (events, bytes, busy) = (
            u.events.load(Ordering::Relaxed),
            u.bytes.load(Ordering::Relaxed),
            u.busy_ns.load(Ordering::Relaxed),
        );
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let secs = last.at.elapsed().as_secs_f64().max(1e-3);
        last.rates = (
            events.saturating_sub(last.events) as f64 / secs,
            bytes.saturating_sub(last.bytes) as f64 / 1e6 / secs,
            busy.saturating_sub(last.busy_ns) as f64 / 1e9 / secs,
        );
        last.at = Instant::now();
        last.events = events;
        last.bytes = bytes;
        last.busy_ns = busy;
    }

    /// Wait until a call of `events` events and `bytes` body bytes may start: with a free
    /// slot, after any storm pause, at its turn under the rate limit. Cancel-safe: dropping
    /// the future gives the slot back (a booked turn stays booked, which only slows the
    /// tenant).
    pub async fn admit(&self, events: usize, bytes: u64) -> Admission {
        let slot = match &self.in_flight {
            // The semaphore is never closed, so acquiring only fails if it were.
            Some(sem) => sem.clone().acquire_owned().await.ok(),
            None => None,
        };
        // Looked at with the slot held: a pause that began while this call waited for the slot
        // (the call before it failed) holds this one too.
        loop {
            let paused_until = self.storm.lock().unwrap_or_else(|e| e.into_inner()).until;
            let now = Instant::now();
            match paused_until {
                Some(until) if until > now => {
                    self.usage
                        .paused_ns
                        .fetch_add(nanos(until - now), Ordering::Relaxed);
                    tokio::time::sleep_until(until).await;
                }
                _ => break,
            }
        }
        if let Some(rate) = &self.rate {
            let now = Instant::now();
            let start =
                rate.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .book(now, events as u64, bytes);
            if start > now {
                self.usage
                    .throttled_ns
                    .fetch_add(nanos(start - now), Ordering::Relaxed);
                self.usage.throttled_calls.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep_until(start).await;
            }
        }
        self.usage.running.fetch_add(1, Ordering::Relaxed);
        Admission {
            _slot: slot,
            started: std::time::Instant::now(),
        }
    }

    /// The admitted call ended: `handled` events succeeded, then it `failed` (or not).
    pub fn finished(
        &self,
        admission: Admission,
        events: usize,
        bytes: u64,
        handled: usize,
        failed: bool,
    ) {
        let took = admission.started.elapsed();
        drop(admission);
        let u = &self.usage;
        u.running.fetch_sub(1, Ordering::Relaxed);
        u.calls.fetch_add(1, Ordering::Relaxed);
        u.events.fetch_add(events as u64, Ordering::Relaxed);
        u.bytes.fetch_add(bytes, Ordering::Relaxed);
        u.busy_ns.fetch_add(nanos(took), Ordering::Relaxed);
        let mut storm = self.storm.lock().unwrap_or_else(|e| e.into_inner());
        if !failed {
            if handled > 0 {
                storm.streak = 0;
                storm.until = None;
                storm.backoff.reset();
            }
            return;
        }
        u.failures.fetch_add(1, Ordering::Relaxed);
        if !self.storm_guard {
            return;
        }
        storm.streak = storm.streak.saturating_add(1);
        let mut pause = Duration::ZERO;
        if took >= SLOW_FAILURE {
            pause = took
                .saturating_mul(SLOW_FAILURE_FACTOR)
                .min(STORM_PAUSE_MAX);
        }
        if storm.streak >= STORM_AFTER {
            pause = pause.max(storm.backoff.next_delay());
        }
        if pause > Duration::ZERO {
            let until = Instant::now() + pause;
            if storm.until.is_none_or(|u| u < until) {
                if storm.until.is_none_or(|u| u < Instant::now()) {
                    u.storms.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        tenant = %self.name,
                        failed_in_a_row = storm.streak,
                        pause_ms = pause.as_millis() as u64,
                        "Tenant's plugin calls keep failing; pausing the tenant's calls so the \
                         others keep their share"
                    );
                }
                storm.until = Some(until);
            }
        }
    }

    pub fn usage(&self) -> UsageSnapshot {
        let u = &self.usage;
        let secs = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64 / 1e9;
        let (events_per_sec, mb_per_sec, cpu_share) =
            self.last.lock().unwrap_or_else(|e| e.into_inner()).rates;
        UsageSnapshot {
            events_per_sec,
            mb_per_sec,
            cpu_share,
            memory_peak_bytes: self.memory_peak.load(Ordering::Relaxed),
            calls: u.calls.load(Ordering::Relaxed),
            events: u.events.load(Ordering::Relaxed),
            bytes: u.bytes.load(Ordering::Relaxed),
            failures: u.failures.load(Ordering::Relaxed),
            busy_secs: secs(&u.busy_ns),
            throttled_secs: secs(&u.throttled_ns),
            throttled_calls: u.throttled_calls.load(Ordering::Relaxed),
            storm_paused_secs: secs(&u.paused_ns),
            storms: u.storms.load(Ordering::Relaxed),
            in_flight: u.running.load(Ordering::Relaxed),
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Every tenant of a host, by name.
#[derive(Debug, Default, Clone)]
pub struct Tenants {
    by_name: BTreeMap<String, Arc<Tenant>>,
}

impl Tenants {
    /// The config's tenants, and `default` (unlimited) where event hubs name no tenant. Storm
    /// pauses apply when there are several.
    pub fn from_config(config: &RunConfig) -> Self {
        let names = config.tenant_names();
        let shared = names.len() > 1;
        let by_name = names
            .into_iter()
            .map(|name| {
                let limits = config.tenant(&name).map(|t| t.limits).unwrap_or_default();
                let tenant = Arc::new(Tenant::with_storm_guard(&name, limits, shared));
                (name, tenant)
            })
            .collect();
        Self { by_name }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Tenant>> {
        self.by_name.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Tenant>> {
        self.by_name.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limited(limits: TenantLimits) -> Tenant {
        Tenant::new("t", limits)
    }

    #[tokio::test(start_paused = true)]
    async fn in_flight_calls_are_bounded() {
        let tenant = Arc::new(limited(TenantLimits {
            max_in_flight: Some(1),
            ..TenantLimits::default()
        }));
        let first = tenant.admit(1, 10).await;
        let t = tenant.clone();
        let second = tokio::spawn(async move { t.admit(1, 10).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!second.is_finished(), "the second call waits for the slot");
        assert_eq!(tenant.usage().in_flight, 1);
        tenant.finished(first, 1, 10, 1, false);
        let second = second.await.unwrap();
        tenant.finished(second, 1, 10, 1, false);
        let usage = tenant.usage();
        assert_eq!(
            (usage.calls, usage.events, usage.bytes, usage.in_flight),
            (2, 2, 20, 0)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_limit_delays_calls_and_counts_the_wait() {
        let tenant = limited(TenantLimits {
            events_per_sec: Some(1000.0),
            ..TenantLimits::default()
        });
        let t0 = Instant::now();
        for _ in 0..20 {
            let a = tenant.admit(100, 0).await;
            tenant.finished(a, 100, 0, 100, false);
        }
        // 2 000 events at 1 000/s: the last batch starts after 1.9 s (less the burst).
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(1800) && took <= Duration::from_millis(1900),
            "{took:?}"
        );
        let usage = tenant.usage();
        assert!(usage.throttled_calls >= 17, "{usage:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_storm_of_failures_pauses_the_tenant_and_a_success_ends_it() {
        let tenant = limited(TenantLimits::default());
        for _ in 0..STORM_AFTER {
            let a = tenant.admit(1, 1).await;
            tenant.finished(a, 1, 1, 0, true);
        }
        let usage = tenant.usage();
        assert_eq!((usage.failures, usage.storms), (u64::from(STORM_AFTER), 1));
        let t0 = Instant::now();
        let a = tenant.admit(1, 1).await;
        assert_eq!(
            t0.elapsed(),
            STORM_PAUSE,
            "the next call waits out the pause"
        );
        tenant.finished(a, 1, 1, 1, false);
        let t1 = Instant::now();
        let a = tenant.admit(1, 1).await;
        assert_eq!(t1.elapsed(), Duration::ZERO, "a success ended the storm");
        tenant.finished(a, 1, 1, 1, false);
    }

    /// Alone on its host, a tenant is never paused: its partitions' retry backoff is enough.
    #[tokio::test(start_paused = true)]
    async fn a_tenant_alone_is_not_paused_by_its_failures() {
        let tenant = Tenant::with_storm_guard("solo", TenantLimits::default(), false);
        for _ in 0..STORM_AFTER * 2 {
            let a = tenant.admit(1, 1).await;
            tenant.finished(a, 1, 1, 0, true);
        }
        let t0 = Instant::now();
        let a = tenant.admit(1, 1).await;
        assert_eq!(t0.elapsed(), Duration::ZERO);
        tenant.finished(a, 1, 1, 1, false);
        let usage = tenant.usage();
        assert_eq!(
            (usage.failures, usage.storms),
            (u64::from(STORM_AFTER) * 2, 0)
        );
    }
}
