//! Checkpoint stores: where partition ownership and checkpoints live, shared by every host
//! instance of a consumer group.
//!
//! Every store implements the SDK's own [`CheckpointStore`] trait (the SDK's `EventProcessor`
//! balances partitions through it), plus [`RetryStore`]: the retry count of the event a
//! partition is stuck on, kept beside the checkpoint so that a host taking the partition over
//! continues the count instead of starting again; and [`VersionStore`]: the plugin version the
//! consumer group runs after a hot swap.
//!
//! - [`blob`]: Azure Blob Storage, in the layout of the official Python/.NET/JS stores
//!   (`<namespace>/<eventhub>/<consumergroup>/checkpoint/<partition>`, lowercased), so hubwasm
//!   shares a container with the official processors.
//! - [`local`]: a directory on this machine, with atomic conditional updates, so several host
//!   processes on one machine can share it.

use crate::event::PartitionContext;
use async_trait::async_trait;
use azure_core::Result;
pub use azure_messaging_eventhubs::models::{Checkpoint, Ownership};
pub use azure_messaging_eventhubs::CheckpointStore;

pub mod blob;
#[cfg(test)]
pub(crate) mod fake;
pub mod local;
pub mod resilient;

use blob::BlobCheckpointStore;

/// Retry state of the event a partition is stuck on: the host has called the plugin on the
/// event with this sequence number `attempts` times, and every call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryState {
    pub sequence_number: i64,
    pub attempts: u32,
    /// Set while the partition is paused before this event because the plugin cannot start
    /// (a deployment fault, which never counts as an attempt): why, for `hubwasm status`.
    pub paused: Option<String>,
}

impl RetryState {
    /// `attempts` failed calls on the event `sequence_number`.
    pub fn failed(sequence_number: i64, attempts: u32) -> Self {
        Self {
            sequence_number,
            attempts,
            paused: None,
        }
    }

    /// The longest pause reason a store keeps (the whole message is in the host's log).
    pub const MAX_PAUSE_REASON: usize = 240;

    /// A pause reason as stores keep it: one line of printable ASCII, at most
    /// [`Self::MAX_PAUSE_REASON`] characters (Blob metadata allows nothing else).
    pub fn pause_reason(message: &str) -> String {
        let mut out: String = message
            .chars()
            .map(|c| if c.is_ascii_graphic() { c } else { ' ' })
            .collect::<String>()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if out.len() > Self::MAX_PAUSE_REASON {
            out.truncate(Self::MAX_PAUSE_REASON - 3);
            out.push_str("...");
        }
        out
    }
}

/// Where a partition's [`RetryState`] is kept (beside its checkpoint).
#[async_trait]
pub trait RetryStore: Send + Sync {
    /// The retry state of a partition, if one is recorded.
    async fn load_retry(&self, at: &PartitionContext) -> Result<Option<RetryState>>;

    /// Record (`Some`) or clear (`None`) the retry state of a partition.
    async fn save_retry(&self, at: &PartitionContext, state: Option<RetryState>) -> Result<()>;
}

/// The plugin version a consumer group runs, kept beside its checkpoints: a hot swap on one
/// host writes it, every other host of the group follows it, and a host that starts (or takes
/// a partition over) runs it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VersionRecord {
    /// Where the component came from (an upload, a file of the swapping host, a registry
    /// reference): for people; no host reads it.
    pub path: String,
    /// The first 12 hex digits of its SHA-256, as logs and status show versions.
    pub digest: String,
    /// Its whole SHA-256 (hex): the name of the component object stored beside this record,
    /// which every host fetches and checks before running it. Absent in records of hubwasm
    /// before components travelled through the store; such a record is not followed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The plugin's name (logs and metrics), when it is not the file stem of `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The hash of the configured plugin the swap started from. A host configured with another
    /// plugin (the config changed since) runs its config and ignores the record.
    pub base_digest: String,
    /// `swap`, `rollback`, `automatic rollback: ...`.
    pub reason: String,
    /// The instance that made the change.
    pub by: String,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// Where a consumer group's [`VersionRecord`] is kept. The defaults keep nothing (a store
/// made for one test); the real stores keep it beside the checkpoints.
#[async_trait]
pub trait VersionStore: Send + Sync {
    async fn load_version(&self, _group: GroupName<'_>) -> Result<Option<VersionRecord>> {
        Ok(None)
    }

    async fn save_version(&self, _group: GroupName<'_>, _record: &VersionRecord) -> Result<()> {
        Ok(())
    }

    /// Keep a component's bytes under their SHA-256 (hex) beside the group's version record,
    /// so every host of the group can fetch the version a swap recorded. Writing the same
    /// object twice is harmless (the name is the content).
    async fn save_component(
        &self,
        _group: GroupName<'_>,
        _sha256: &str,
        _bytes: &[u8],
    ) -> Result<()> {
        Err(azure_core::Error::with_message(
            azure_core::error::ErrorKind::Other,
            "this checkpoint store keeps no plugin components",
        ))
    }

    /// The component stored under `sha256`, if the store has it and it is at most `limit`
    /// bytes (a larger object is an error, and is not read). The caller checks the digest.
    async fn load_component(
        &self,
        _group: GroupName<'_>,
        _sha256: &str,
        _limit: u64,
    ) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }

    /// Record this host's counts for their swap, replacing its last ones.
    async fn save_outcome(&self, _group: GroupName<'_>, _outcome: &VersionOutcome) -> Result<()> {
        Ok(())
    }

    /// Every host's counts for the swap `swap`.
    async fn load_outcomes(
        &self,
        _group: GroupName<'_>,
        _swap: &str,
    ) -> Result<Vec<VersionOutcome>> {
        Ok(Vec::new())
    }
}

/// One host's counts for a swapped-in version during its rollback window: the group's hosts
/// judge the version on the sum of them all, so a fleet of small hosts rolls a bad version back
/// as fast as one large host would.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VersionOutcome {
    /// The swap these counts are of ([`swap_id`]).
    #[serde(default)]
    pub swap: String,
    /// The host's instance id.
    pub instance: String,
    /// Events the version handled on that host.
    pub handled: u64,
    /// Calls on events that failed.
    pub failed: u64,
    /// Partitions holding an event the version failed to the end.
    pub held: u64,
}

/// A swap as outcome records name it: the version's SHA-256 and the swap's time, so counts of
/// an earlier swap to the same version are not mixed in. Only hex digits and `-`.
pub fn swap_id(sha256: &str, at_ms: u64) -> String {
    format!("{sha256}-{at_ms}")
}

fn is_swap_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 96
        && id
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f' | b'-'))
}

/// An instance id as a file or blob name: letters, digits, `-`, `_`, `.`; anything else `_`.
pub(crate) fn instance_file_name(instance: &str) -> String {
    let name: String = instance
        .chars()
        .take(128)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "_".into()
    } else {
        name
    }
}

/// A digest read from a record is checked before it names a file or blob.
pub(crate) fn check_sha256(text: &str) -> Result<()> {
    check(is_sha256_hex(text), text, "a SHA-256 in hex")
}

pub(crate) fn check_swap_id(id: &str) -> Result<()> {
    check(is_swap_id(id), id, "a swap id")
}

/// `text` (shown cut to 100 characters) as an error unless it is `ok`.
fn check(ok: bool, text: &str, what: &str) -> Result<()> {
    if ok {
        return Ok(());
    }
    let shown: String = text.chars().take(100).collect();
    Err(azure_core::Error::with_message(
        azure_core::error::ErrorKind::DataConversion,
        format!("{shown:?} is not {what}"),
    ))
}

/// A consumer group as a store names it.
#[derive(Debug, Clone, Copy)]
pub struct GroupName<'a> {
    pub namespace: &'a str,
    pub event_hub: &'a str,
    pub consumer_group: &'a str,
}

/// A SHA-256 in hex as object names use it: 64 lowercase hex digits, nothing else (a record
/// read from a store is checked before its digest names a file or blob).
pub fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A stored component bigger than the reader's bound.
pub(crate) fn component_too_large(name: &str, size: u64, limit: u64) -> azure_core::Error {
    azure_core::Error::with_message(
        azure_core::error::ErrorKind::DataConversion,
        format!(
            "the stored plugin component {name} has {size} bytes, more than the {limit} this host \
             accepts ([admin] max_component_bytes)"
        ),
    )
}

/// Each partition's checkpointed sequence number in a consumer group (partitions without a
/// checkpoint, or whose checkpoint has no sequence number, are absent).
pub async fn checkpointed(
    store: &dyn Store,
    namespace: &str,
    event_hub: &str,
    consumer_group: &str,
) -> Result<std::collections::HashMap<String, i64>> {
    Ok(store
        .list_checkpoints(namespace, event_hub, consumer_group)
        .await?
        .into_iter()
        .filter_map(|c| Some((c.partition_id, c.sequence_number?)))
        .collect())
}

/// A store the consumer host can run on.
pub trait Store: CheckpointStore + RetryStore + VersionStore + Send + Sync {
    /// Where the store is, for logs and `hubwasm status` (never contains secrets).
    fn describe(&self) -> String;
}

/// The Blob store for a `[checkpoints] store = "blob"` config.
pub async fn open_blob(
    config: &crate::config::BlobContainerConfig,
) -> std::result::Result<std::sync::Arc<dyn Store>, String> {
    let container = crate::azure_blob::open(config).await?;
    Ok(std::sync::Arc::new(BlobCheckpointStore::new(container)))
}
