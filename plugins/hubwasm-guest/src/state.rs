//! Keyed state of the partition being handled (`[eventhub.state]`), exactly once with respect
//! to the checkpoint.
//!
//! Guarantee: writes of a call are staged and committed together with the position of the last
//! event of the batch, in one transaction, before the checkpoint is written. Reads see the
//! committed state plus the call's own staged writes. A host that takes the partition over
//! loads the state as of its committed position and skips events up to it, so an event's writes
//! are applied exactly once, whatever crashed. Writes of a call that fails are discarded (a
//! batch that fails at index `k` is called again with its first `k` events alone, so their
//! writes are kept and the failed event's are not).

use crate::bindings::hubwasm::plugin::state as wit;
use crate::{reject, retry, EventError};

pub use wit::StateError;

/// Entries per `scan-prefix` call: the most the host returns at once.
const PAGE: u32 = 1000;

/// The value of `key`, if set.
pub fn get(key: &str) -> Option<Vec<u8>> {
    wit::get(key)
}

/// Set `key` to `value`. An `Err` means nothing was written.
pub fn set(key: &str, value: &[u8]) -> Result<(), StateError> {
    wit::set(key, value)
}

/// Remove `key` (nothing happens if it is not set).
pub fn delete(key: &str) {
    wit::delete(key)
}

/// Every entry whose key starts with `prefix`, in key order. Reads pages of 1000 entries as it
/// goes, each after the last key of the one before.
pub fn scan_prefix(prefix: &str) -> ScanPrefix {
    ScanPrefix {
        prefix: prefix.to_owned(),
        after: None,
        page: Vec::new().into_iter(),
        done: false,
    }
}

/// Iterator returned by [`scan_prefix`].
pub struct ScanPrefix {
    prefix: String,
    /// The last key read, where the next page starts.
    after: Option<String>,
    page: std::vec::IntoIter<(String, Vec<u8>)>,
    done: bool,
}

impl Iterator for ScanPrefix {
    type Item = (String, Vec<u8>);

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(entry) = self.page.next() {
            return Some(entry);
        }
        if self.done {
            return None;
        }
        let page = wit::scan_prefix(&self.prefix, self.after.as_deref(), PAGE);
        // A short page is the last one: saves a call that would return nothing.
        self.done = page.len() < PAGE as usize;
        self.after = page.last().map(|(key, _)| key.clone());
        self.page = page.into_iter();
        self.page.next()
    }
}

/// The number stored at `key` by [`add_u64`] (8 little-endian bytes); `None` if unset or not 8
/// bytes long.
pub fn get_u64(key: &str) -> Option<u64> {
    get(key)?.try_into().ok().map(u64::from_le_bytes)
}

/// Add `delta` to the number at `key` (0 if unset or not a number), saturating at `u64::MAX`,
/// and return the new value.
pub fn add_u64(key: &str, delta: u64) -> Result<u64, StateError> {
    let value = get_u64(key).unwrap_or(0).saturating_add(delta);
    set(key, &value.to_le_bytes())?;
    Ok(value)
}

impl From<StateError> for EventError {
    /// A key or value over its limit comes from this event: `rejected`. A full state is the
    /// partition's condition, not the event's: `retryable`, so good events are not dead-lettered
    /// while the operator raises `max_bytes` (or the plugin deletes keys).
    fn from(error: StateError) -> Self {
        match error {
            StateError::KeyTooLarge(limit) => reject(format!(
                "state: key too large: longer than the limit of {limit} bytes"
            )),
            StateError::ValueTooLarge(limit) => reject(format!(
                "state: value too large: longer than the partition's max_value_bytes = {limit}"
            )),
            StateError::Full(how) => retry(format!("state: full: {how}")),
        }
    }
}
