//! A tenant's rate limit in events/s and bytes/s, as a schedule rather than a bucket of tokens:
//! each admitted batch moves the earliest start of the next one by its cost (events / rate or
//! bytes / rate, whichever is longer). Callers wait for their start, so the limit is
//! backpressure: events are delayed, never dropped. A burst allowance lets a tenant that was
//! idle start at once without ever running above the rate over a second.

use std::time::Duration;

use tokio::time::Instant;

/// Events/s and bytes/s, each optional.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub events_per_sec: Option<f64>,
    pub bytes_per_sec: Option<f64>,
}

impl Rate {
    /// Whether any limit is set.
    pub fn is_limited(&self) -> bool {
        self.events_per_sec.is_some() || self.bytes_per_sec.is_some()
    }

    /// How long `events` events of `bytes` bytes take at this rate.
    pub fn cost(&self, events: u64, bytes: u64) -> Duration {
        let secs = |n: u64, rate: Option<f64>| rate.map_or(0.0, |r| n as f64 / r);
        let secs = secs(events, self.events_per_sec).max(secs(bytes, self.bytes_per_sec));
        // Rates are validated positive and finite; a cost beyond a day is capped, not a panic.
        Duration::try_from_secs_f64(secs)
            .unwrap_or(Duration::MAX)
            .min(Duration::from_secs(86_400))
    }
}

/// The schedule of one tenant's admissions.
#[derive(Debug)]
pub struct RateLimiter {
    rate: Rate,
    /// The earliest start of the next admission (its cost is paid after it).
    next: Option<Instant>,
    /// How far behind `now` the schedule may lag (the burst an idle tenant may use at once).
    burst: Duration,
}

impl RateLimiter {
    /// A burst of 100 ms: long enough to start a batch at once after idling, short enough that
    /// no second sees more than 10 % above the rate.
    pub const BURST: Duration = Duration::from_millis(100);

    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            next: None,
            burst: Self::BURST,
        }
    }

    /// Book `events` events of `bytes` bytes: the instant they may start (now or later). The
    /// caller waits until then; the booking is kept even if it does not (the events are
    /// delivered again and booked again, which only slows the tenant).
    pub fn book(&mut self, now: Instant, events: u64, bytes: u64) -> Instant {
        let earliest = now.checked_sub(self.burst).unwrap_or(now);
        let start = self.next.map_or(now, |n| n.max(earliest));
        self.next = Some(start + self.rate.cost(events, bytes));
        start.max(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn the_slower_of_the_two_limits_sets_the_cost() {
        let rate = Rate {
            events_per_sec: Some(1000.0),
            bytes_per_sec: Some(1_000_000.0),
        };
        assert_eq!(rate.cost(100, 1_000), MS(100)); // events bound
        assert_eq!(rate.cost(10, 500_000), MS(500)); // bytes bound
        let events_only = Rate {
            events_per_sec: Some(10_000.0),
            bytes_per_sec: None,
        };
        assert_eq!(events_only.cost(1000, u64::MAX), MS(100));
        assert_eq!(events_only.cost(u64::MAX, 0), Duration::from_secs(86_400));
    }

    /// A limiter on events alone.
    fn events_limiter(per_sec: f64) -> RateLimiter {
        RateLimiter::new(Rate {
            events_per_sec: Some(per_sec),
            bytes_per_sec: None,
        })
    }

    /// Batches booked back to back start one cost apart: over any long span the admitted
    /// events match the rate, whatever the batch sizes.
    #[test]
    fn back_to_back_bookings_keep_to_the_rate() {
        let mut limiter = events_limiter(1000.0);
        let t0 = Instant::now();
        let mut now = t0;
        let mut admitted = 0u64;
        for i in 0..200u64 {
            let n = 1 + (i * 37) % 150;
            let start = limiter.book(now, n, 0);
            assert!(start >= now);
            now = start; // the caller waits for its start, then asks again at once
            admitted += n;
        }
        let took = now.duration_since(t0).as_secs_f64();
        let rate = admitted as f64 / took;
        assert!((rate - 1000.0).abs() / 1000.0 < 0.02, "{rate} events/s");
    }

    /// After idling, a tenant starts at once, but the idle time is not saved up beyond the
    /// burst allowance.
    #[test]
    fn idle_time_is_not_saved_up_beyond_the_burst() {
        let mut limiter = events_limiter(1000.0);
        let t0 = Instant::now();
        assert_eq!(limiter.book(t0, 100, 0), t0);
        let later = t0 + Duration::from_secs(10);
        // 100 ms of saved-up time plus the current booking: two batches of 100 go at once, the
        // third waits its turn.
        assert_eq!(limiter.book(later, 100, 0), later);
        assert_eq!(limiter.book(later, 100, 0), later);
        assert_eq!(limiter.book(later, 100, 0), later + MS(100));
    }
}
