//! Once-only processing by keys the plugin chooses, shared by every partition and host of the
//! consumer group (`[eventhub.dedupe]`'s store).
//!
//! Guarantee: [`first_seen`] answers true the first time a key is seen in the consumer group
//! within the ttl. The key is recorded when the call's batch commits (before the checkpoint), so
//! a call that fails and is made again sees its keys as new again; within one call a second
//! `first_seen` of a key answers false. A store that does not answer pauses the partition.

use std::time::Duration;

/// Whether `key` is new in the consumer group (not recorded in the last `ttl`). `ttl` is sent in
/// whole seconds: a fraction counts as a whole second and anything beyond `u32::MAX` seconds is
/// clamped to it.
pub fn first_seen(key: &str, ttl: Duration) -> bool {
    let secs = ttl
        .as_secs()
        .saturating_add(u64::from(ttl.subsec_nanos() > 0));
    crate::bindings::hubwasm::plugin::dedupe::first_seen(
        key,
        u32::try_from(secs).unwrap_or(u32::MAX),
    )
}
