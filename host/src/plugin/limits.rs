//! Per-plugin resource limits and the store limiter that enforces the memory limit.

use std::time::Duration;

use serde::Deserialize;

/// Limits of one plugin. Each tenant's plugin may have its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest linear memory the plugin may grow to, in bytes.
    #[serde(default = "Limits::default_memory")]
    pub memory_bytes: u64,
    /// Longest a single call may run (enforced by epoch interruption).
    #[serde(default = "Limits::default_timeout", with = "millis")]
    pub timeout: Duration,
    /// Optional instruction budget per call ("fuel"); needs a runtime with fuel enabled.
    pub fuel: Option<u64>,
}

impl Limits {
    /// 128 MiB: room for interpreters (Python, JavaScript) while stopping runaways early.
    pub const DEFAULT_MEMORY: u64 = 128 << 20;
    /// 5 s per call.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

    fn default_memory() -> u64 {
        Self::DEFAULT_MEMORY
    }
    fn default_timeout() -> Duration {
        Self::DEFAULT_TIMEOUT
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: Self::DEFAULT_MEMORY,
            timeout: Self::DEFAULT_TIMEOUT,
            fuel: None,
        }
    }
}

mod millis {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// Enforces [`Limits::memory_bytes`] and remembers when the limit was hit, so a trap can be
/// reported as "memory limit" rather than a generic trap.
pub(crate) struct MemoryLimiter {
    limit: u64,
    hit: Option<u64>,
    /// The largest memory granted, shared by the instances of a plugin (a tenant's usage).
    peak: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
}

/// Tables hold one pointer per element; this bound is far above what real plugins use.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl MemoryLimiter {
    pub(crate) fn new(
        limit: u64,
        peak: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
    ) -> Self {
        Self {
            limit,
            hit: None,
            peak,
        }
    }

    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// The size requested when the limit was hit, if it was hit since the last call.
    pub(crate) fn take_hit(&mut self) -> Option<u64> {
        self.hit.take()
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.limit {
            self.hit = Some(desired as u64);
            // An error (not `Ok(false)`) traps right at the `memory.grow`, so the plugin cannot
            // swallow the failure and the backtrace shows who asked.
            wasmtime::bail!(
                "memory limit of {} bytes exceeded (asked for {desired} bytes)",
                self.limit
            );
        }
        if let Some(peak) = &self.peak {
            peak.fetch_max(desired as u64, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
