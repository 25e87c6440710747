//! The one backoff every retry loop of the host uses: exponential from `initial`, doubling per
//! attempt, capped at `max`. Each loop keeps its own [`Backoff`] (the delay grows while failures
//! repeat and starts over after a success); [`Backoff::delay`] is the same curve by attempt
//! number, for loops whose attempt count is stored elsewhere (a partition's retry state).

use std::time::Duration;

/// Exponential backoff with a cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Start at `initial`, double on each [`next_delay`](Self::next_delay), never beyond `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.min(max);
        Self {
            initial,
            max,
            next: initial,
        }
    }

    /// The wait before the next attempt; the one after it is twice as long (up to the cap).
    pub fn next_delay(&mut self) -> Duration {
        let wait = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        wait
    }

    /// Start over at the initial delay (after a success).
    pub fn reset(&mut self) {
        self.next = self.initial;
    }

    /// The wait before attempt `attempt + 1`, attempts counted from 1: `initial * 2^(attempt-1)`,
    /// capped. Never overflows, whatever the attempt count.
    pub fn delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(32);
        self.initial
            .saturating_mul(1u32 << doublings.min(31))
            .min(self.max)
    }

    /// Cap a wait that came from elsewhere (a plugin's `retry-after`) at this backoff's maximum.
    pub fn cap(&self, wait: Duration) -> Duration {
        wait.min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn doubles_up_to_the_cap_and_starts_over_after_reset() {
        let mut b = Backoff::new(MS(100), MS(1000));
        let waits: Vec<_> = (0..6).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1000, 1000]);
        b.reset();
        assert_eq!(b.next_delay(), MS(100));
    }

    #[test]
    fn delay_by_attempt_matches_next_and_never_overflows() {
        let b = Backoff::new(MS(200), Duration::from_secs(30));
        let mut stepping = b;
        for attempt in 1..=12 {
            assert_eq!(b.delay(attempt), stepping.next_delay(), "attempt {attempt}");
        }
        assert_eq!(b.delay(0), MS(200));
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(30));
        let huge = Backoff::new(Duration::from_secs(u64::MAX / 4), Duration::MAX);
        assert!(huge.delay(u32::MAX) >= Duration::from_secs(u64::MAX / 4));
    }

    #[test]
    fn an_initial_delay_above_the_cap_is_capped() {
        let mut b = Backoff::new(MS(5000), MS(1000));
        assert_eq!(b.next_delay(), MS(1000));
        assert_eq!(b.delay(1), MS(1000));
        assert_eq!(b.cap(Duration::from_secs(86_400 * 7)), MS(1000));
        assert_eq!(b.cap(MS(10)), MS(10));
    }
}
